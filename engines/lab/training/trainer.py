"""The training loop: AdamW, warm-up + cosine learning rate, masked multi-label BCE, validation
every epoch, checkpoints, early stopping and a wall-time limit.

The schedule runs on *progress* = the larger of steps done / steps planned and time used / time
allowed, so a run cut short by the wall-time limit (a busy machine) still anneals its learning
rate to the end instead of stopping at full rate.

Augmentation (`augment`, on by default): per training row a random audio gain (a shift of
the log-mel, floored like the front end: −12…+6 dB), SpecAugment-style masks (one band of up to
8 mel bins, one span of up to 6 frames = 60 ms, so a short impact survives), per batch a video
left-right mirror (no label depends on direction), and for 40 % of the rows a moving camera
(`camera_motion`: vibration, shake or a pan, whole frames shifted by a few pixels). The last one
came from the cross-generator evaluation: a parked car filmed by a camera that jitters by 1–2 px
fired `approaching_object` (0.9+), and 1–2 px of jitter added to windows that scored < 0.2 made
12–17 % of them fire; only growth may mean approaching.

Sampling (`sampling.py`): scene kinds balanced (rare distractors drawn more often), and windows
that break a label co-occurrence of the generator (flashing lights without an approach) drawn
up to 4x as often.

Modality dropout: with probability `modality_dropout` a training window loses its audio (the
log-mel of silence) or its video (black frames), and the labels that need the lost modality are
cleared. The live service fills a missing modality with zeros, so the model must know what
"nothing there" means, and it teaches the fused labels to require both modalities. With
`lost_picture` (`train --lost-picture`) the picture is lost as black, a flat colour or one frame
frozen (`lost_picture()`, a third each): what a still picture shows (a light bar, a big car) is
then not a flash or an approach without a change. It is off by default, so the from-scratch
recipe (`make model`) is unchanged; the release was fine-tuned with it and the audio branch
frozen, which cut `flashing_lights` on frozen pictures from 7.3 % to 1 % of their positives
(README, "Engines").

With `filter_augment` (`train --filter-augment`) each training row's log-mel also passes
through a random smooth filter (`random_filter`: ±6 dB across the mel axis), so a label cannot
rest on one synthesizer's balance of harmonics.

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
from engines.lab.scenes.base import AUDIO_LABELS, FUSED_LABELS, LABELS, VIDEO_LABELS
from engines.lab.training.data import WindowSet
from engines.lab.training.progress import ProgressBar
from engines.lab.training.sampling import kind_weights, shortcut_weights
from engines.runtime.nets.avfusion import AVFusion, save_checkpoint
from engines.runtime.nets.logmel import LOG_FLOOR

logger = logging.getLogger(__name__)

SILENT_LOGMEL = float(np.log(LOG_FLOOR))


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


@dataclass(slots=True)
class TrainResult:
    """What happened; the best model's weights are loaded into the model on return."""

    best_epoch: int = -1
    best_val_f1: float = -math.inf  # selection score: val macro-F1 (or -val loss, see train)
    epochs_run: int = 0
    stopped: str = "max epochs"
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _label_mask(names: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor([1.0 if label in names else 0.0 for label in LABELS])


NEEDS_AUDIO = _label_mask(AUDIO_LABELS + FUSED_LABELS)
NEEDS_VIDEO = _label_mask(VIDEO_LABELS + FUSED_LABELS)


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


FLAT_LEVELS = (60, 170)  # a flat decoder frame's channel values (uint8), drawn per channel


def lost_picture(video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What `video` uint8 `[B, T, H, W, 3]` looks like without a live picture, per row: black,
    a flat colour, or one of its frames repeated over the whole window (a third each)."""
    b, t = video.shape[:2]
    if b == 0:
        return video
    style = torch.randint(0, 3, (b,), generator=gen)  # black, flat, frozen
    flat = torch.randint(*FLAT_LEVELS, (b, 1, 1, 1, 3), generator=gen, dtype=torch.uint8)
    frame = torch.randint(0, t, (b,), generator=gen)
    frozen = video[torch.arange(b), frame][:, None].expand_as(video)
    out = torch.zeros_like(video)
    out = torch.where((style == 1).view(b, 1, 1, 1, 1), flat.expand_as(video), out)
    return torch.where((style == 2).view(b, 1, 1, 1, 1), frozen, out)


def drop_modalities(
    video: torch.Tensor,
    logmel: torch.Tensor,
    labels: torch.Tensor,
    p: float,
    gen: torch.Generator,
    lost: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Silence audio / take the picture away on random rows and clear the labels that needed
    them. The picture goes black (what the service fills in), or with `lost` as `lost_picture`
    has it: black, a flat decoder colour, or one frame of the window frozen (a stalled decoder,
    a stream that has not started): nothing in it changes, so nothing in it flashes, grows or
    collides, whatever the frame shows."""
    if p <= 0:
        return video, logmel, labels
    n = labels.shape[0]
    draw = torch.rand(n, generator=gen)
    no_audio = draw < p
    no_video = (draw >= p) & (draw < 2 * p)
    video, logmel, labels = video.clone(), logmel.clone(), labels.clone()
    logmel[no_audio] = SILENT_LOGMEL
    video[no_video] = lost_picture(video[no_video], gen) if lost else 0
    labels[no_audio] *= 1.0 - NEEDS_AUDIO
    labels[no_video] *= 1.0 - NEEDS_VIDEO
    return video, logmel, labels


GAIN_DB = (-12.0, 6.0)
FREQ_MASK = 8  # mel bins, at most
TIME_MASK = 6  # log-mel frames (10 ms), at most


def augment_batch(
    video: torch.Tensor, logmel: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random gain and SpecAugment masks per row of `logmel` `[B, 1, M, F]`; a mirror of the
    whole batch of `video` uint8 `[B, T, H, W, 3]`. Labels are unchanged by all of them."""
    b = logmel.shape[0]
    _, _, mels, frames = logmel.shape
    db = torch.empty(b).uniform_(*GAIN_DB, generator=gen)
    shift = (db * (2.0 * np.log(10.0) / 20.0)).view(b, 1, 1, 1)  # power: 20 log10 → ln
    logmel = torch.clamp(logmel + shift, min=SILENT_LOGMEL)
    fill = logmel.mean(dim=(2, 3), keepdim=True)
    m_w = torch.randint(0, FREQ_MASK + 1, (b,), generator=gen)
    m_0 = (torch.rand(b, generator=gen) * (mels - m_w)).long()
    t_w = torch.randint(0, TIME_MASK + 1, (b,), generator=gen)
    t_0 = (torch.rand(b, generator=gen) * (frames - t_w)).long()
    mel_i = torch.arange(mels).view(1, mels)
    frame_i = torch.arange(frames).view(1, frames)
    fmask = (mel_i >= m_0[:, None]) & (mel_i < (m_0 + m_w)[:, None])  # [B, M]
    tmask = (frame_i >= t_0[:, None]) & (frame_i < (t_0 + t_w)[:, None])  # [B, F]
    mask = (fmask[:, :, None] | tmask[:, None, :])[:, None]
    logmel = torch.where(mask, fill.expand_as(logmel), logmel)
    # The whole batch mirrored half of the time (a uint8 copy). No photometric jitter here: the
    # generator varies exposure, tint and noise already, and a float round trip of the frames
    # cost as much as a training step on 2 cores.
    if torch.rand(1, generator=gen).item() < 0.5:
        video = video.flip(dims=(3,))
    return video, logmel


FILTER_DB = 6.0  # random filter: each control point's gain within ±FILTER_DB
FILTER_POINTS = (3, 6)  # control points across the mel axis, both ends included (inclusive)
DB_TO_LN_POWER = float(np.log(10.0) / 10.0)


def random_filter(logmel: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """`logmel` `[B, 1, M, F]` with each row passed through its own smooth random filter: a gain
    curve across the mel axis, linear between 3-6 control points (the ends and random interior
    bins) each within ±`FILTER_DB` (FilterAugment's linear type, Nam et al., ICASSP 2022). The
    same sound through another loudspeaker, at another distance or through a wall tilts its
    spectrum like this; the labels do not change. Floored like the front end."""
    b, _, mels, _ = logmel.shape
    bins = np.arange(mels, dtype=np.float64)
    curves = np.empty((b, mels), np.float32)
    for i in range(b):
        k = int(torch.randint(FILTER_POINTS[0], FILTER_POINTS[1] + 1, (1,), generator=gen))
        inner = torch.rand(k - 2, generator=gen).double().numpy() * (mels - 1)
        xs = np.concatenate([[0.0], np.sort(inner), [mels - 1.0]])
        db = (torch.rand(k, generator=gen).double().numpy() * 2.0 - 1.0) * FILTER_DB
        curves[i] = np.interp(bins, xs, db) * DB_TO_LN_POWER
    return torch.clamp(logmel + torch.from_numpy(curves).view(b, 1, mels, 1), min=SILENT_LOGMEL)


MOTION_FRACTION = 0.4  # of training rows: the camera moves during the window
JITTER_PX = 2  # vibration: each frame independently up to this far, in whole pixels
SHAKE_PX = (0.5, 3.0)  # shake: a sinusoid's amplitude ...
SHAKE_HZ = (1.0, 4.0)  # ... and frequency
PAN_PX = 1.0  # pan: at most this many pixels per frame, in a straight line


def camera_motion(video: torch.Tensor, gen: torch.Generator, fps: float) -> torch.Tensor:
    """`video` uint8 `[B, T, H, W, 3]` with, for `MOTION_FRACTION` of the rows, each frame
    shifted as a moving camera would shift it: vibration (independent jumps of up to
    `JITTER_PX`), shake (a sinusoid per axis) or a slow pan. Shifts are whole pixels and the
    edges are replicated, so it stays uint8. Where things are changes, not how big they are
    or whether they flash: no label changes."""
    b, t, h, w, _ = video.shape
    rows = (torch.rand(b, generator=gen) < MOTION_FRACTION).nonzero().squeeze(1)
    n = len(rows)
    if n == 0:
        return video
    style = torch.randint(0, 3, (n, 1, 1), generator=gen)  # vibration, shake, pan
    k = torch.arange(t, dtype=torch.float32)
    jitter = torch.randint(-JITTER_PX, JITTER_PX + 1, (n, 2, t), generator=gen).float()
    amp = torch.empty(n, 2, 1).uniform_(*SHAKE_PX, generator=gen)
    hz = torch.empty(n, 2, 1).uniform_(*SHAKE_HZ, generator=gen)
    phase = torch.empty(n, 2, 1).uniform_(0.0, 2 * math.pi, generator=gen)
    shake = amp * torch.sin(2 * math.pi * hz * k / fps + phase)
    pan = torch.empty(n, 2, 1).uniform_(-PAN_PX, PAN_PX, generator=gen) * (k - (t - 1) / 2)
    offset = torch.where(style == 0, jitter, torch.where(style == 1, shake, pan)).round().long()
    ys = (torch.arange(h).view(1, 1, h) + offset[:, 0, :, None]).clamp(0, h - 1)  # [n, T, H]
    xs = (torch.arange(w).view(1, 1, w) + offset[:, 1, :, None]).clamp(0, w - 1)  # [n, T, W]
    ni = torch.arange(n).view(n, 1, 1, 1)
    ti = torch.arange(t).view(1, t, 1, 1)
    out = video.clone()
    out[rows] = video[rows][ni, ti, ys[:, :, :, None], xs[:, :, None, :]]
    return out


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
