"""`scenestream train`: generate (or load) the training set, train avfusion, export the engine.

Without `--data` it trains on generated scenes (train and val splits, cached under `--cache`),
then evaluates the exported engine on the held-out split and writes `metrics.json` and
`MODEL_CARD.md` next to it. With `--data DIR` it trains on your clips (`DIR/labels.csv`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch

from engines.avfusion.export import HOP_S, write_engine_dir
from engines.avfusion.model import AVFusion, AVFusionConfig, count_parameters, gflops_per_window
from engines.training.data import WindowSet, build_set
from engines.training.progress import ProgressBar
from engines.training.trainer import TrainConfig, TrainResult, train
from stream.cli import UserError
from stream.windows import AudioSpec, VideoSpec, WindowSpec

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache/scenestream/train")
TRAIN_WINDOWS = 16000
DEFAULT_MINUTES = 24.0  # the training loop's wall-time cap; generation and export come on top


def window_spec(cfg: AVFusionConfig) -> WindowSpec:
    """The windows avfusion consumes (the same numbers its manifest declares)."""
    return WindowSpec(
        length_s=cfg.samples / cfg.sample_rate,
        hop_s=HOP_S,
        video=VideoSpec(frames=cfg.frames, fps=cfg.fps, height=cfg.height, width=cfg.width),
        audio=AudioSpec(sample_rate=cfg.sample_rate, samples=cfg.samples),
    )


def generated_sets(
    spec: WindowSpec, seed: int, cache: Path, n_train: int, n_val: int
) -> tuple[WindowSet, WindowSet]:
    """Train and val splits of the scene generator, cached."""
    workers = min(2, os.cpu_count() or 1)
    sets = []
    for split, n, s in (("train", n_train, seed), ("val", n_val, seed + 1)):
        bar = ProgressBar(f"generate {split}", n)
        data = build_set(
            spec,
            n,
            seed=s,
            split=split,
            cache_dir=cache,
            workers=workers,
            progress=bar,
        )
        bar.close(len(data))
        sets.append(data)
    return sets[0], sets[1]


def user_sets(directory: Path, spec: WindowSpec) -> tuple[WindowSet, WindowSet]:
    """Train and val from a directory of clips + labels.csv."""
    from engines.training.user_data import load_user_dir, split_user_sets

    return split_user_sets(load_user_dir(directory, spec))


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream train`."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.monotonic()
    cfg = AVFusionConfig()
    spec = window_spec(cfg)
    seed = int(args.seed)
    if args.data is not None:
        train_set, val_set = user_sets(Path(args.data), spec)
    else:
        cache = Path(args.cache) if args.cache else DEFAULT_CACHE
        n_train = getattr(args, "windows", None) or TRAIN_WINDOWS
        n_val = max(n_train // 8, 64)
        train_set, val_set = generated_sets(spec, seed, cache, n_train, n_val)
    if len(train_set) == 0:
        raise UserError("no training windows")
    torch.manual_seed(seed)
    model = AVFusion(cfg)
    settings = TrainConfig(
        epochs=args.epochs or TrainConfig().epochs,
        minutes=DEFAULT_MINUTES if args.minutes is None else args.minutes,
        seed=seed,
        batch=min(TrainConfig().batch, len(train_set)),
    )
    out = Path(args.out)
    # Checkpoints live with the cache, not in the engine directory that ships.
    checkpoints = (Path(args.cache) if args.cache else DEFAULT_CACHE) / "checkpoints"
    result = train(model, train_set, val_set, settings, checkpoints)
    write_engine_dir(model, out)
    _write_training_record(out, model, settings, result, len(train_set), len(val_set))
    print(
        f"trained avfusion: best val macro-F1 {result.best_val_f1:.4f} at epoch "
        f"{result.best_epoch} ({result.stopped}, {result.seconds / 60:.1f} min); "
        f"engine written to {out}"
    )
    if args.data is None:
        from engines.evaluation.cli import evaluate_bundle

        evaluate_bundle(out, seed=seed)
    print(f"total {(time.monotonic() - started) / 60:.1f} min")
    return 0


def _write_training_record(
    out: Path,
    model: AVFusion,
    settings: TrainConfig,
    result: TrainResult,
    n_train: int,
    n_val: int,
) -> None:
    record = {
        "config": model.cfg.to_dict(),
        "train": {
            "windows": n_train,
            "val_windows": n_val,
            "epochs": settings.epochs,
            "batch": settings.batch,
            "lr": settings.lr,
            "weight_decay": settings.weight_decay,
            "patience": settings.patience,
            "modality_dropout": settings.modality_dropout,
            "kind_balance": settings.kind_balance,
            "seed": settings.seed,
            "minutes_limit": settings.minutes,
        },
        "result": {
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_f1,
            "epochs_run": result.epochs_run,
            "stopped": result.stopped,
            "minutes": result.seconds / 60,
            "history": result.history,
        },
        "parameters": count_parameters(model),
        "gflops_per_window": gflops_per_window(model),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
