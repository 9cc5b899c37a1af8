"""Time-aligned audio+video windows: what an engine sees (the contract between the service's
ingest, which cuts them, and the engines, which score them).

`WindowSpec` says what one engine wants (length, hop, frames, size, sample rate); `Window` is one
cut of a stream, on the capture clock (Unix seconds at the camera/microphone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """Video an engine wants per window: `frames` RGB frames of `height`x`width`, at `fps`."""

    frames: int
    fps: float
    height: int
    width: int


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """Audio an engine wants per window: `samples` mono float32 samples at `sample_rate`."""

    sample_rate: int
    samples: int


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The window an engine consumes, every `hop_s` seconds, covering `length_s` seconds."""

    length_s: float
    hop_s: float
    video: VideoSpec | None = None
    audio: AudioSpec | None = None
    # What the engine's scores describe: the whole window ("window": events are dated at its
    # midpoint) or the moment it ends ("end": events are dated at its end).
    labels_at: Literal["window", "end"] = "window"

    def event_time(self, start: float, end: float) -> float:
        """The capture time an event seen in the window `[start, end]` is dated at."""
        return event_time(self.labels_at, start, end)


def event_time(labels_at: Literal["window", "end"], start: float, end: float) -> float:
    """Where an event seen in `[start, end]` is dated: the end for scores that describe the
    window's end, the midpoint for scores that describe the whole window."""
    return end if labels_at == "end" else (start + end) / 2


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """One cut `[start, end]` of a stream for one engine, on the capture clock.

    A modality the engine wants but the stream lacks (audio-only publisher, or with nothing in
    the window when the maximum wait ran out) is listed in `missing` and its array is filled with
    zeros, so engines always receive full shapes. `gaps` are capture-clock stretches inside the
    window with no media: lost packets, and the tail of a modality that was late at the cut.
    """

    stream: str
    engine: str
    seq: int
    start: float
    end: float
    video: npt.NDArray[np.uint8] | None  # [T, H, W, 3]
    frame_times: npt.NDArray[np.float64] | None  # [T] capture times of the frames
    audio: npt.NDArray[np.float32] | None  # [S]
    gaps: tuple[tuple[float, float], ...] = ()
    missing: frozenset[str] = field(default_factory=frozenset)
    cut_at: float = 0.0  # time.monotonic() when cut: queue latency starts here
    av_skew_s: float = 0.0  # |audio clock - video clock| at the cut, for the skew histogram
