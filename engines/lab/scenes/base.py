"""What a scene is to its users: the synthetic camera, training, evaluation and tests.

A `SceneRenderer` draws video and audio for any capture time, at any resolution and sample
rate, so that the live sender renders 640x480@30 while training renders straight at the
engine's input size. Ground truth is a list of labelled intervals on the scene's own timeline
(seconds from its start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engines.labels import AUDIO_LABELS, FUSED_LABELS, LABELS, VIDEO_LABELS

__all__ = [
    "AUDIO_LABELS",
    "FUSED_LABELS",
    "LABELS",
    "VIDEO_LABELS",
    "LabelInterval",
    "SceneRenderer",
]


@dataclass(frozen=True, slots=True)
class LabelInterval:
    """`label` is active on `[start_s, end_s)` of the scene's timeline."""

    label: str
    start_s: float
    end_s: float


class SceneRenderer(Protocol):
    """A deterministic scene: the same (seed, time) always renders the same pixels and samples."""

    @property
    def name(self) -> str: ...

    @property
    def duration_s(self) -> float:
        """Length of one pass; `inf` for endless scenes."""
        ...

    @property
    def truth(self) -> list[LabelInterval]: ...

    def render_video(self, t: float, height: int, width: int) -> npt.NDArray[np.uint8]:
        """The RGB frame `[height, width, 3]` at scene time `t` seconds."""
        ...

    def render_audio(self, t0: float, samples: int, sample_rate: int) -> npt.NDArray[np.float32]:
        """Mono samples in [-1, 1] starting at scene time `t0`."""
        ...
