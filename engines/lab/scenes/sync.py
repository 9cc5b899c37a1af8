"""`sync`: the A/V test pattern. A square moves on a known path; every 2 s a white flash + click.

Both marks sit at the same scene instant, so a receiver that puts audio and video on one capture
clock sees them line up; the square's position is a known function of time, so a receiver can
check that each frame carries the capture time it was drawn at.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.base import LabelInterval

MARK_PERIOD_S = 2.0  # a flash + click at every multiple of this
FLASH_S = 1 / 30  # one frame at 30 fps
CLICK_S = 0.005
PATH_PERIOD_S = 4.0  # the square goes left to right and back in this long
BACKGROUND = 40
SQUARE_FRACTION = 0.125  # side of the square, as a fraction of the frame height
SQUARE_RGB = (230, 40, 40)
TONE_HZ = 440.0
TONE_LEVEL = 0.05
CLICK_LEVEL = 0.9


def square_center(t: float) -> tuple[float, float]:
    """The square's centre at scene time `t`, as (x, y) fractions of width and height."""
    phase = (t / PATH_PERIOD_S) % 1.0
    triangle = 2 * phase if phase < 0.5 else 2 - 2 * phase
    return 0.1 + 0.8 * triangle, 0.5


def in_flash(t: float) -> bool:
    """Whether the video frame at scene time `t` is a white flash."""
    offset = t - MARK_PERIOD_S * math.floor(t / MARK_PERIOD_S + 1e-9)
    return -1e-9 <= offset < FLASH_S - 1e-6


def mark_times(start: float, end: float) -> list[float]:
    """Scene times of the sync marks in `[start, end)`."""
    first = math.ceil(start / MARK_PERIOD_S - 1e-9)
    marks = []
    k = first
    while k * MARK_PERIOD_S < end:
        marks.append(k * MARK_PERIOD_S)
        k += 1
    return marks


class SyncScene:
    """The `sync` test pattern (endless, deterministic; `seed` only shifts the tone phase)."""

    def __init__(self, seed: int = 0) -> None:
        self._phase = (seed % 360) * math.pi / 180

    @property
    def name(self) -> str:
        return "sync"

    @property
    def duration_s(self) -> float:
        return math.inf

    @property
    def truth(self) -> list[LabelInterval]:
        return []  # a pattern, not a scene: it carries none of the labels

    def render_video(self, t: float, height: int, width: int) -> npt.NDArray[np.uint8]:
        """A dark frame with the red square at `square_center(t)`, or all white on a mark."""
        if in_flash(t):
            return np.full((height, width, 3), 255, dtype=np.uint8)
        frame = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
        side = max(2, round(height * SQUARE_FRACTION))
        cx, cy = square_center(t)
        x0 = min(max(0, round(cx * width - side / 2)), width - side)
        y0 = min(max(0, round(cy * height - side / 2)), height - side)
        frame[y0 : y0 + side, x0 : x0 + side] = SQUARE_RGB
        return frame

    def render_audio(self, t0: float, samples: int, sample_rate: int) -> npt.NDArray[np.float32]:
        """A quiet tone, with a full-scale click of `CLICK_S` starting at every mark."""
        t = t0 + np.arange(samples, dtype=np.float64) / sample_rate
        out = TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * t + self._phase)
        offset = t - MARK_PERIOD_S * np.floor(t / MARK_PERIOD_S + 1e-9)
        out[(offset >= -1e-9) & (offset < CLICK_S)] = CLICK_LEVEL
        return out.astype(np.float32)
