"""`scenestream average --out DIR ENGINE_DIR ENGINE_DIR [...]`: one engine from the mean of the
weights of avfusion engines fine-tuned from one release (`engines.lab.training.average`).

The averaged model is calibrated like a trained one (per-label thresholds on the generated
validation split, `engines.lab.training.calibrate`), exported (`model.pt`, `model.onnx`,
`engine.toml`), and evaluated on the held-out split (`metrics.json`, `MODEL_CARD.md`). Its
`training.json` is the last engine's, with the thresholds and an `average` entry (the engines
and their weights). Compare it with `scenestream evaluate --engine DIR --compare avfusion
--set all`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from engines.errors import UserError
from engines.lab.export import write_engine_dir
from engines.lab.training.average import average_states
from engines.lab.training.calibrate import event_thresholds
from engines.lab.training.data import build_set
from engines.lab.training.recipe import DEFAULT_CACHE, calibrated_thresholds, window_spec
from engines.runtime.nets.avfusion import AVFusion, load_checkpoint


def _load(engine_dir: Path) -> AVFusion:
    path = engine_dir / "model.pt"
    if not path.is_file():
        raise UserError(f"{engine_dir}: no model.pt (an avfusion engine directory)")
    if not (engine_dir / "training.json").is_file():
        raise UserError(f"{engine_dir}: no training.json (an engine `scenestream train` wrote)")
    try:
        return load_checkpoint(path)
    except (OSError, RuntimeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not an avfusion checkpoint ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream average`."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    dirs = [Path(d) for d in args.engines]
    if len(dirs) < 2:
        raise UserError("average needs at least two engine directories")
    weights = args.weights
    if weights is not None and len(weights) != len(dirs):
        raise UserError(f"--weights: {len(weights)} given for {len(dirs)} engines")
    models = [_load(d) for d in dirs]
    if any(m.cfg != models[0].cfg for m in models):
        raise UserError("the engines differ in shapes: only fine-tunes of one release average")
    try:
        state = average_states([m.state_dict() for m in models], weights)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    model = models[0]
    model.load_state_dict(state)
    model.eval()
    cache = Path(args.cache) if args.cache else DEFAULT_CACHE
    val = build_set(window_spec(model.cfg), args.val_windows, seed=1, split="val", cache_dir=cache)
    window = calibrated_thresholds(model, val)
    out = Path(args.out)
    write_engine_dir(model, out, thresholds=event_thresholds(window))
    record = json.loads((dirs[-1] / "training.json").read_text())
    record["thresholds_val_best_f1"] = window
    record["average"] = {
        "engines": [str(d) for d in dirs],
        "weights": list(weights) if weights is not None else [1.0] * len(dirs),
        "val_windows": len(val),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"averaged {len(dirs)} engines into {out}")
    if not args.no_eval:
        from engines.lab.evaluation.suite import evaluate_bundle

        evaluate_bundle(out)
    return 0
