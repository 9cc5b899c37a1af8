"""Assembling a `Scene` from segments: one path for scripts and for the training generator."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from engines.lab.scenes.audio import Ambience
from engines.lab.scenes.mix import AudioMix, Reverb
from engines.lab.scenes.scene import Look, Scene
from engines.lab.scenes.segments import Context, Parts, add_segment
from engines.lab.scenes.video import horizon_of

SegmentSpec = tuple[str, float, float, Mapping[str, Any]]


def compose_scene(
    name: str,
    duration_s: float,
    *,
    rng: np.random.Generator,
    split: str,
    look: Look,
    ambience: Ambience | None,
    segments: Iterable[SegmentSpec],
    reverb: Reverb | None = None,
    level: float = 0.2,
    snr_db: tuple[float, float] = (-5.0, 20.0),
) -> Scene:
    """Build every segment, then set gains so the loudest source sits at RMS `level`.

    Sources keep their SNR against the background (unit RMS before scaling): the background is
    placed at `level / max(source gain)`, so nothing but a rare impact peak reaches clipping.
    """
    ctx = Context(rng, split, horizon_of(look.backdrop), snr_db)
    parts = Parts()
    for kind, a, b, params in segments:
        add_segment(ctx, parts, kind, a, b, params)
    loudest = max([1.0, *(g for _, g in parts.sources)])
    bg = level / loudest
    mix = AudioMix(
        ambience, bg if ambience is not None else 0.0,
        tuple((src, g * bg) for src, g in parts.sources), reverb,
    )  # fmt: skip
    return Scene(name, duration_s, look, parts.vehicles, mix, parts.labels, parts.impacts)
