"""`scenestream evaluate --engine NAME [--set NAME|DIR]`: window- and event-level metrics.

`--set` is a generated split (`heldout`: unseen backgrounds and voices; `val`; `train`) or a
directory of your clips with `labels.csv` (see `engines/lab/training/user_data.py`). The engine
runs through the service's runtime path on the chosen (or best available) backend. Prints the
markdown table; `--json` / `--markdown` write them. The work is `engines.lab.evaluation.suite`.
"""

from __future__ import annotations

import argparse

from engines.errors import UserError
from engines.lab.evaluation.scoring import load_scorer
from engines.lab.evaluation.suite import evaluate, render, write
from engines.runtime.interface import EngineError, ManifestError


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream evaluate`."""
    try:
        scorer = load_scorer(args.engine, backend=args.backend)
    except (EngineError, ManifestError) as exc:
        raise UserError(str(exc)) from exc
    try:
        result = evaluate(scorer, args.set_name, args.windows)
    finally:
        scorer.close()
    write(result, args.json, args.markdown)
    print(render(result))
    return 0
