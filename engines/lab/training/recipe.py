"""The avfusion training recipe: generate (or load) the sets, train, export the engine.

Without `--data` it trains on generated scenes (train and val splits, cached under `--cache`),
then evaluates the exported engine on the held-out split and writes `metrics.json` and
`MODEL_CARD.md` next to it. With `--data DIR` it trains on your clips (`DIR/labels.csv`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from engines.lab.export import HOP_S
from engines.lab.training.data import WindowSet, build_set
from engines.lab.training.progress import ProgressBar
from engines.lab.training.trainer import TrainConfig, TrainResult
from engines.runtime.nets.avfusion import (
    AVFusion,
    AVFusionConfig,
    count_parameters,
    gflops_per_window,
)
from engines.window import AudioSpec, VideoSpec, WindowSpec

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
    from engines.lab.training.user_data import load_user_dir, split_user_sets

    return split_user_sets(load_user_dir(directory, spec))


def write_training_record(
    out: Path,
    model: AVFusion,
    settings: TrainConfig,
    result: TrainResult,
    n_train: int,
    n_val: int,
    thresholds: dict[str, float] | None = None,
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
            "augment": settings.augment,
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
        "thresholds_val_best_f1": thresholds or {},
        "parameters": count_parameters(model),
        "gflops_per_window": gflops_per_window(model),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
