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

from engines.lab.evaluation.report import distractor_rows
from engines.lab.export import HOP_S
from engines.lab.scenes.base import FUSED_LABELS
from engines.lab.training.calibrate import best_f1_thresholds
from engines.lab.training.data import WindowSet, build_set
from engines.lab.training.progress import ProgressBar
from engines.lab.training.sampling import SHORTCUT_MAX_WEIGHT
from engines.lab.training.trainer import TrainConfig, TrainResult, predict
from engines.runtime.nets.avfusion import (
    AVFusion,
    AVFusionConfig,
    count_parameters,
    gflops_per_window,
)
from engines.window import AudioSpec, VideoSpec, WindowSpec

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache/scenestream/train")
TRAIN_WINDOWS = 40000
VAL_WINDOWS = 1200  # at most; 1/8 of the training windows for small runs
DEFAULT_MINUTES = 25.0  # the training loop's wall-time cap; generation and export come on top
# Generating the training windows is capped too (the set is then what was made by then): the
# scene generator draws every window at 256x192, ~0.1 s of a core each on an idle machine and
# several times that on a busy one, so on a shared 2-core box a window count alone could not
# promise `make model` inside an hour.
GENERATE_MINUTES = 20.0


def window_spec(cfg: AVFusionConfig) -> WindowSpec:
    """The windows avfusion consumes (the same numbers its manifest declares)."""
    return WindowSpec(
        length_s=cfg.samples / cfg.sample_rate,
        hop_s=HOP_S,
        video=VideoSpec(frames=cfg.frames, fps=cfg.fps, height=cfg.height, width=cfg.width),
        audio=AudioSpec(sample_rate=cfg.sample_rate, samples=cfg.samples),
    )


def generated_sets(
    spec: WindowSpec,
    seed: int,
    cache: Path,
    n_train: int,
    n_val: int,
    train_minutes: float | None = GENERATE_MINUTES,
) -> tuple[WindowSet, WindowSet]:
    """Train and val splits of the scene generator, cached. Val first (always complete: the
    thresholds are calibrated on it), then train within `train_minutes`."""
    workers = min(2, os.cpu_count() or 1)
    sets: dict[str, WindowSet] = {}
    for split, n, s, minutes in (
        ("val", n_val, seed + 1, None),
        ("train", n_train, seed, train_minutes),
    ):
        bar = ProgressBar(f"generate {split}", n)
        data = build_set(
            spec,
            n,
            seed=s,
            split=split,
            cache_dir=cache,
            workers=workers,
            progress=bar,
            minutes=minutes,
        )
        bar.close(len(data))
        sets[split] = data
    return sets["train"], sets["val"]


def user_sets(directory: Path, spec: WindowSpec) -> tuple[WindowSet, WindowSet]:
    """Train and val from a directory of clips + labels.csv."""
    from engines.lab.training.user_data import load_user_dir, split_user_sets

    return split_user_sets(load_user_dir(directory, spec))


def calibrated_thresholds(model: AVFusion, val_set: WindowSet) -> dict[str, float]:
    """Per-label window thresholds: best F1 on the validation split, never on an evaluation set
    (`calibrate.best_f1_thresholds`; the fused labels from their floors and within the
    distractor false-positive rate)."""
    return best_f1_thresholds(
        val_set.labels, predict(model, val_set), val_set.care, model.cfg.labels,
        acted_on=FUSED_LABELS, distractors=distractor_rows(val_set.kinds),
    )  # fmt: skip


def write_training_record(
    out: Path,
    model: AVFusion,
    settings: TrainConfig,
    result: TrainResult,
    n_train: int,
    n_val: int,
    thresholds: dict[str, float] | None = None,
    init: str | None = None,
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
            "shortcuts": settings.shortcuts,  # sampling.shortcut_weights
            "shortcut_max_weight": SHORTCUT_MAX_WEIGHT if settings.shortcuts else None,
            "augment": settings.augment,
            "freeze": list(settings.freeze),  # branches kept from `init`
            "lost_picture": settings.lost_picture,  # dropped pictures black, flat or frozen
            "filter_augment": settings.filter_augment,  # random smooth filter on the log-mel
            "lens": settings.lens,  # frames zoomed and blurred by a random lens
            "seed": settings.seed,
            "minutes_limit": settings.minutes,
            "init": init,  # the checkpoint fine-tuned from, or None (from scratch)
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
