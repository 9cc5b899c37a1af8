"""The training loop: AdamW, warm-up + cosine learning rate, masked multi-label BCE, validation
every epoch, checkpoints, early stopping and a wall-time limit.

The schedule runs on *progress* = the larger of steps done / steps planned and time used / time
allowed, so a run cut short by the wall-time limit (a busy machine) still anneals its learning
rate to the end instead of stopping at full rate.

Augmentation and modality dropout (`augment.py`): what each training batch goes through
before the model sees it (on by default; `lost_picture`, `filter_augment` and `lens` are
opt-in).

Sampling (`sampling.py`): scene kinds balanced (rare distractors drawn more often), and windows
that break a label co-occurrence of the generator (flashing lights without an approach) drawn
up to 4x as often.

`freeze` (`train --freeze audio|video`, with `--init`) keeps a branch of the checkpoint as it
is, so a fine-tune for one modality's labels cannot move the other's features.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from engines.lab.evaluation.metrics import label_scores, macro_f1
from engines.lab.scenes.base import LABELS
from engines.lab.training.augment import (
    augment_batch,
    camera_motion,
    drop_modalities,
    lens,
    random_filter,
)
from engines.lab.training.data import WindowSet
from engines.lab.training.progress import ProgressBar
from engines.lab.training.sampling import kind_weights, shortcut_weights
from engines.runtime.nets.avfusion import AVFusion, save_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimisation settings (the defaults ship the bundled model)."""

    epochs: int = 18
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 4  # epochs without a val macro-F1 gain of min_delta
    min_delta: float = 1e-3
    minutes: float | None = None  # wall-time limit for the loop
    seed: int = 0
    modality_dropout: float = 0.1
    kind_balance: float = 0.75  # sample kinds ∝ count^(1 - kind_balance): rare distractors more
    shortcuts: bool = True  # draw windows that break generator label co-occurrences more often
    augment: bool = True  # audio gain, SpecAugment masks, video mirror, camera motion
    freeze: tuple[str, ...] = ()  # branches kept as they are ("audio", "video"): a fine-tune
    lost_picture: bool = False  # dropped pictures: black, flat or frozen (not only black)
    filter_augment: bool = False  # each row's log-mel through a random smooth filter
    lens: bool = False  # a share of rows' frames zoomed and blurred by one random lens


@dataclass(slots=True)
class TrainResult:
    """What happened; the best model's weights are loaded into the model on return."""

    best_epoch: int = -1
    best_val_f1: float = -math.inf  # selection score: val macro-F1 (or -val loss, see train)
    epochs_run: int = 0
    stopped: str = "max epochs"
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def batch_tensors(
    data: WindowSet, idx: npt.NDArray[np.intp]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video uint8, log-mel fp32, labels, care for the rows `idx` (sorted: memmap locality)."""
    idx = np.sort(idx)
    return (
        torch.from_numpy(np.ascontiguousarray(data.video[idx])),
        torch.from_numpy(np.asarray(data.logmel[idx], dtype=np.float32)),
        torch.from_numpy(data.labels[idx]),
        torch.from_numpy(data.care[idx]),
    )


BRANCHES = ("audio", "video")


def frozen_branches(model: AVFusion, names: Sequence[str]) -> list[nn.Module]:
    """The branches `names` of `model` with their weights frozen (no gradient, so the optimiser
    never sees them); the caller keeps them in eval mode so their batch-norm statistics stay
    too. A fine-tune aimed at one modality's labels then cannot drift the other's features: the
    lost-picture fine-tune moved `horn`, `alarm` and `speech` until the audio branch was kept."""
    unknown = sorted(set(names) - set(BRANCHES))
    if unknown:
        raise ValueError(f"cannot freeze {unknown}: the branches are {list(BRANCHES)}")
    out: list[nn.Module] = []
    for name in dict.fromkeys(names):
        branch: nn.Module = getattr(model, name)
        for q in branch.parameters():
            q.requires_grad_(False)
        out.append(branch)
    return out


def learning_rate(peak: float, progress: float, warmup: float = 0.1) -> float:
    """Linear warm-up to `peak` over the first `warmup` of progress, then cosine to 2% of it."""
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    x = min((progress - warmup) / (1 - warmup), 1.0)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * x)))


def predict(model: AVFusion, data: WindowSet, batch: int = 256) -> npt.NDArray[np.float32]:
    """Sigmoid scores `[N, L]` from cached features (eval mode, no grad)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(data), batch):
            idx = np.arange(i, min(i + batch, len(data)))
            video, logmel, _, _ = batch_tensors(data, idx)
            out.append(torch.sigmoid(model.forward_logmel(video, logmel)).numpy())
    return np.concatenate(out)


def validate(model: AVFusion, data: WindowSet) -> tuple[float, float]:
    """(macro-F1, mean BCE) on a set, skipping undecidable label entries."""
    scores = predict(model, data)
    per_label = label_scores(data.labels, scores, LABELS, care=data.care)
    eps = 1e-6
    bce = -(data.labels * np.log(scores + eps) + (1 - data.labels) * np.log(1 - scores + eps))
    return macro_f1(per_label), float((bce * data.care).sum() / max(data.care.sum(), 1.0))


class _Loop:
    """One training run's moving parts: optimiser, generators, clock, schedule progress."""

    def __init__(self, model: AVFusion, train_set: WindowSet, cfg: TrainConfig) -> None:
        self.model, self.data, self.cfg = model, train_set, cfg
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.steps = max(len(train_set) // cfg.batch, 1)
        self.frozen = frozen_branches(model, cfg.freeze)
        trained = [q for q in model.parameters() if q.requires_grad]
        self.opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.loss_fn = nn.BCEWithLogitsLoss(reduction="none")
        self.sampling = kind_weights(train_set.kinds, cfg.kind_balance)
        if cfg.shortcuts:
            self.sampling = shortcut_weights(
                self.sampling, train_set.labels, train_set.care, LABELS
            )
        self.budget_s = cfg.minutes * 60 if cfg.minutes else math.inf
        self.started = time.monotonic()
        self.done_steps = 0

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.budget_s

    def step(self, idx: npt.NDArray[np.intp]) -> float:
        """One optimiser step on the rows `idx`; returns the loss."""
        cfg = self.cfg
        video, logmel, labels, care = batch_tensors(self.data, idx)
        if cfg.augment:
            video, logmel = augment_batch(video, logmel, self.gen)
            video = camera_motion(video, self.gen, self.model.cfg.fps)
            if cfg.filter_augment:
                logmel = random_filter(logmel, self.gen)
            if cfg.lens:
                video = lens(video, self.gen)
        video, logmel, labels = drop_modalities(
            video, logmel, labels, cfg.modality_dropout, self.gen, lost=cfg.lost_picture
        )
        logits = self.model.forward_logmel(video, logmel)
        loss = (self.loss_fn(logits, labels) * care).sum() / care.sum()
        progress = max(
            self.done_steps / (cfg.epochs * self.steps),
            (time.monotonic() - self.started) / self.budget_s,
        )
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(cfg.lr, progress)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.done_steps += 1
        return float(loss.item())

    def epoch(self, bar: ProgressBar) -> tuple[int, float]:
        """One pass of `steps` kind-balanced batches; (steps run, smoothed loss)."""
        self.model.train()
        for branch in self.frozen:
            branch.eval()  # its normalisation statistics stay as they were too
        order = self.rng.choice(
            len(self.data), size=(self.steps, self.cfg.batch), p=self.sampling, replace=True
        )
        running, done = 0.0, 0
        for done, idx in enumerate(order, start=1):
            value = self.step(idx)
            running = 0.95 * running + 0.05 * value if done > 1 else value
            bar.update(done, f"loss {running:.4f}")
            if self.out_of_time():
                break
        return done, running


def train(
    model: AVFusion,
    train_set: WindowSet,
    val_set: WindowSet,
    cfg: TrainConfig,
    checkpoint_dir: Path,
) -> TrainResult:
    """Train in place; checkpoints `last.pt` every epoch and `best.pt` on improvement."""
    torch.manual_seed(cfg.seed)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    loop = _Loop(model, train_set, cfg)
    result, bad_epochs = TrainResult(), 0
    best_state: dict[str, Any] | None = None
    for epoch in range(1, cfg.epochs + 1):
        bar = ProgressBar(f"epoch {epoch}/{cfg.epochs}", loop.steps)
        done, running = loop.epoch(bar)
        val_f1, val_loss = validate(model, val_set)
        bar.close(done, f"loss {running:.4f} val loss {val_loss:.4f} val macro-F1 {val_f1:.4f}")
        result.history.append(
            {"epoch": epoch, "train_loss": running, "val_loss": val_loss, "val_f1": val_f1}
        )
        result.epochs_run = epoch
        save_checkpoint(model, checkpoint_dir / "last.pt", {"epoch": epoch})
        # A validation set with no positive label has no F1: select on its loss instead.
        score = val_f1 if math.isfinite(val_f1) else -val_loss
        if score > result.best_val_f1 + cfg.min_delta:
            result.best_val_f1, result.best_epoch, bad_epochs = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            save_checkpoint(model, checkpoint_dir / "best.pt", {"epoch": epoch})
        else:
            bad_epochs += 1
        if bad_epochs >= cfg.patience:
            result.stopped = f"early stop: no val gain in {cfg.patience} epochs"
            break
        if loop.out_of_time():
            result.stopped = f"time limit ({cfg.minutes} min)"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.monotonic() - loop.started
    return result
