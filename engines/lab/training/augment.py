"""What a training batch goes through before the model sees it: modality dropout and
augmentation. Labels change only where a modality is dropped; every other perturbation is one
no label depends on.

Augmentation (`augment`, on by default): per training row a random audio gain (a shift of
the log-mel, floored like the front end: −12…+6 dB), SpecAugment-style masks (one band of up to
8 mel bins, one span of up to 6 frames = 60 ms, so a short impact survives), per batch a video
left-right mirror (no label depends on direction), and for 40 % of the rows a moving camera
(`camera_motion`: vibration, shake or a pan, whole frames shifted by a few pixels). The last one
came from the cross-generator evaluation: a parked car filmed by a camera that jitters by 1–2 px
fired `approaching_object` (0.9+), and 1–2 px of jitter added to windows that scored < 0.2 made
12–17 % of them fire; only growth may mean approaching.

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
rest on one synthesizer's balance of harmonics. It is off by default: a fine-tune
of the release's sound branch with it lost cross-generator F1 on `siren` and `alarm` (README,
"what remains").

With `lens` (`train --lens`) 30 % of the rows are seen through a random lens (`lens()`): a crop
up to 1.3x smaller than the frame, resized back up, and a Gaussian blur of up to 1.2 px, the
same for every frame of the row, so growth rates and flash timing are untouched. Lamps and
vehicles then come bigger and softer than the generator draws them. Off by default: a
fine-tune of the release's picture branch with it moved the picture labels by nothing
measurable off-generator and lost in-generator (README, "what remains").
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engines.lab.scenes.base import AUDIO_LABELS, FUSED_LABELS, LABELS, VIDEO_LABELS
from engines.runtime.nets.logmel import LOG_FLOOR

SILENT_LOGMEL = float(np.log(LOG_FLOOR))


def _label_mask(names: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor([1.0 if label in names else 0.0 for label in LABELS])


NEEDS_AUDIO = _label_mask(AUDIO_LABELS + FUSED_LABELS)
NEEDS_VIDEO = _label_mask(VIDEO_LABELS + FUSED_LABELS)


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


LENS_FRACTION = 0.3  # of training rows: seen through another lens
LENS_ZOOM = (1.0, 1.3)  # crop this much smaller than the frame, resized back up
LENS_BLUR_PX = (0.0, 1.2)  # Gaussian blur's sigma, in output pixels


def lens(video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """`video` uint8 `[B, T, H, W, 3]` with, for `LENS_FRACTION` of the rows, every frame seen
    through one random lens: a crop `LENS_ZOOM` times smaller than the frame (anywhere in it)
    resized back up, then a Gaussian blur of `LENS_BLUR_PX`. Every frame of a row gets the same
    crop and blur, so growth rates and flash timing are kept: no label changes. Objects and
    lamps come out bigger and softer than the generator draws them."""
    b, t, h, w, _ = video.shape
    rows = (torch.rand(b, generator=gen) < LENS_FRACTION).nonzero().squeeze(1)
    n = len(rows)
    if n == 0:
        return video
    zoom = torch.empty(n).uniform_(*LENS_ZOOM, generator=gen)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - 1 / zoom)  # crop centre, [-1, 1] coords
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - 1 / zoom)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    frames = video[rows].permute(0, 1, 4, 2, 3).reshape(n * t, 3, h, w).float()
    grid = torch.nn.functional.affine_grid(
        theta.repeat_interleave(t, dim=0), [n * t, 3, h, w], align_corners=False
    )
    frames = torch.nn.functional.grid_sample(frames, grid, mode="bilinear", align_corners=False)
    sigma = torch.empty(n).uniform_(*LENS_BLUR_PX, generator=gen).repeat_interleave(t)
    frames = _gaussian_blur(frames, sigma)
    out = video.clone()
    out[rows] = (
        frames.round().clamp(0, 255).to(torch.uint8).reshape(n, t, 3, h, w).permute(0, 1, 3, 4, 2)
    )
    return out


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """`images` `[N, C, H, W]` float, each blurred with its own `sigma` (0 leaves it as it is);
    separable (one grouped convolution per axis), edges replicated."""
    n, c, h, w = images.shape
    k = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (k / sigma.clamp(min=1e-3).view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*C, K]
    x = torch.nn.functional.pad(images, (radius,) * 4, mode="replicate").reshape(
        1, n * c, h + 2 * radius, w + 2 * radius
    )
    x = torch.nn.functional.conv2d(x, kernel.view(n * c, 1, 1, -1), groups=n * c)
    x = torch.nn.functional.conv2d(x, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return x.reshape(n, c, h, w)
