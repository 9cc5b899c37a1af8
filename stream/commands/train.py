"""`scenestream train`: generate (or load) the training set, train avfusion, export the engine.

Without `--data` it trains on generated scenes (train and val splits, cached under `--cache`),
then evaluates the exported engine on the held-out split and writes `metrics.json` and
`MODEL_CARD.md` next to it. With `--data DIR` it trains on your clips (`DIR/labels.csv`). The
recipe is `engines.lab.training.recipe`.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from engines.errors import UserError
from engines.lab.export import write_engine_dir
from engines.lab.training.calibrate import event_thresholds
from engines.lab.training.recipe import (
    DEFAULT_CACHE,
    DEFAULT_MINUTES,
    TRAIN_WINDOWS,
    VAL_WINDOWS,
    calibrated_thresholds,
    generated_sets,
    user_sets,
    window_spec,
    write_training_record,
)
from engines.lab.training.trainer import TrainConfig, train
from engines.runtime.nets.avfusion import AVFusion, AVFusionConfig


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream train`."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.monotonic()
    init = getattr(args, "init", None)
    lr = _peak_lr(getattr(args, "lr", None), fine_tune=init is not None)  # checked before work
    freeze = tuple(getattr(args, "freeze", None) or ())
    if freeze and init is None:
        raise UserError("--freeze keeps a branch of the --init checkpoint: give --init too")
    cfg = AVFusionConfig()
    spec = window_spec(cfg)
    seed = int(args.seed)
    if args.data is not None:
        train_set, val_set = user_sets(Path(args.data), spec)
    else:
        cache = Path(args.cache) if args.cache else DEFAULT_CACHE
        n_train = getattr(args, "windows", None) or TRAIN_WINDOWS
        n_val = min(max(n_train // 8, 64), VAL_WINDOWS)
        train_set, val_set = generated_sets(spec, seed, cache, n_train, n_val)
    if len(train_set) == 0:
        raise UserError("no training windows")
    torch.manual_seed(seed)
    model = AVFusion(cfg)
    if init is not None:
        model.load_state_dict(_initial_weights(Path(init), cfg))
    settings = TrainConfig(
        epochs=args.epochs or TrainConfig().epochs,
        minutes=DEFAULT_MINUTES if args.minutes is None else args.minutes,
        seed=seed,
        batch=min(TrainConfig().batch, len(train_set)),
        lr=lr,
        freeze=freeze,
        lost_picture=bool(getattr(args, "lost_picture", False)),
        filter_augment=bool(getattr(args, "filter_augment", False)),
        lens=bool(getattr(args, "lens", False)),
    )
    out = Path(args.out)
    # Checkpoints live with the cache, not in the engine directory that ships.
    checkpoints = (Path(args.cache) if args.cache else DEFAULT_CACHE) / "checkpoints"
    result = train(model, train_set, val_set, settings, checkpoints)
    window = calibrated_thresholds(model, val_set)
    write_engine_dir(model, out, thresholds=event_thresholds(window))
    write_training_record(
        out, model, settings, result, len(train_set), len(val_set), window,
        init=str(init) if init is not None else None,
    )  # fmt: skip
    print(
        f"trained avfusion: best val macro-F1 {result.best_val_f1:.4f} at epoch "
        f"{result.best_epoch} ({result.stopped}, {result.seconds / 60:.1f} min); "
        f"engine written to {out}"
    )
    if args.data is None:
        from engines.lab.evaluation.suite import evaluate_bundle

        evaluate_bundle(out, seed=seed)
    print(f"total {(time.monotonic() - started) / 60:.1f} min")
    return 0


def _peak_lr(given: float | None, *, fine_tune: bool) -> float:
    """`--lr` when given, else the recipe's: fine-tuning starts from a trained optimum, so a
    third of the from-scratch peak rate."""
    if given is None:
        return TrainConfig().lr / 3 if fine_tune else TrainConfig().lr
    if not 0 < given < 1:
        raise UserError(f"--lr {given}: a peak learning rate is above 0 and below 1")
    return given


def _initial_weights(path: Path, cfg: AVFusionConfig) -> dict[str, torch.Tensor]:
    """The weights of a previous avfusion checkpoint (`model.pt`) of the same shapes, or of
    one from before the long frame difference (its stem gains zero weights for it)."""
    from engines.runtime.nets.avfusion import load_checkpoint, with_long_diff

    if not path.is_file():
        raise UserError(f"--init {path}: no such checkpoint file")
    try:
        previous = load_checkpoint(path)
    except (OSError, RuntimeError, KeyError, TypeError) as exc:
        raise UserError(f"--init {path}: not an avfusion checkpoint ({exc})") from exc
    widened = len(previous.cfg.frame_lags) < len(cfg.frame_lags)
    if widened and replace(previous.cfg, long_diff=cfg.long_diff) == cfg:
        return with_long_diff(previous, cfg.long_diff)
    if previous.cfg != cfg:
        raise UserError(f"--init {path}: its shapes differ from this recipe's ({previous.cfg})")
    return previous.state_dict()
