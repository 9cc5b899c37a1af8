"""`Scene`: one concrete, fully parameterised scene implementing `SceneRenderer`.

A scene is a backdrop and camera (`Look`), moving objects with lamps (`Vehicle`), a soundtrack
(`AudioMix`) and the label intervals of its sounds. Its truth is derived once from exactly those
parts (`truth.derive_truth`), so what is labelled is what is drawn and played.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.base import LabelInterval
from engines.lab.scenes.mix import AudioMix
from engines.lab.scenes.sprites import Vehicle, draw_body, lamp_glow
from engines.lab.scenes.truth import Impact, derive_truth
from engines.lab.scenes.video import F32, F64, Backdrop, backdrop_image, grid, margins

NOISE_BANK_FRAMES = 16


@dataclass(frozen=True, slots=True)
class Look:
    """Camera and light: backdrop, exposure gain and colour tint, shake, sensor noise."""

    backdrop: Backdrop
    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shake: float = 0.0  # amplitude, fraction of the frame
    shake_hz: tuple[float, float] = (1.3, 3.1)
    shake_phase: tuple[float, float] = (0.0, 0.0)
    noise: float = 0.0  # sensor noise standard deviation (0..1 scale)
    seed: int = 0

    def shake_at(self, t: F64) -> tuple[F64, F64]:
        """Camera offset (x, y) in frame fractions at times `t`."""
        a = self.shake
        f1, f2 = self.shake_hz
        p1, p2 = self.shake_phase
        dx = a * (np.sin(2 * math.pi * f1 * t + p1) + 0.5 * np.sin(2 * math.pi * f2 * t + p2))
        dy = a * (np.sin(2 * math.pi * f2 * t + p1) + 0.5 * np.sin(2 * math.pi * f1 * t + p2))
        return dx / 1.5, dy / 1.5


@functools.lru_cache(maxsize=8)
def _noise_bank(h: int, w: int) -> F32:
    return np.random.default_rng(7).standard_normal((NOISE_BANK_FRAMES, h, w, 3), np.float32)


class Scene:
    """A deterministic scene: the same (parameters, time) always renders the same output."""

    def __init__(
        self,
        name: str,
        duration_s: float,
        look: Look,
        vehicles: Sequence[Vehicle],
        mix: AudioMix,
        sound_labels: Sequence[LabelInterval],
        impacts: Sequence[Impact] = (),
    ) -> None:
        self._name = name
        self._duration = duration_s
        self.look = look
        self.vehicles = tuple(sorted(vehicles, key=lambda v: v.motion.s0))
        self.mix = mix
        prims, stops = list(sound_labels), []
        for v in self.vehicles:
            p, s = v.primitives()
            prims += p
            stops += s
        self._truth = [
            iv
            for iv in derive_truth(prims, stops, impacts)
            if iv.start_s < duration_s and iv.end_s > 0
        ]

    @property
    def name(self) -> str:
        return self._name

    @property
    def duration_s(self) -> float:
        return self._duration

    @property
    def truth(self) -> list[LabelInterval]:
        return list(self._truth)

    def render_video(self, t: float, height: int, width: int) -> npt.NDArray[np.uint8]:
        """The RGB frame at scene time `t`."""
        frame: npt.NDArray[np.uint8] = self.render_clip(np.array([t]), height, width)[0]
        return frame

    def render_audio(self, t0: float, samples: int, sample_rate: int) -> npt.NDArray[np.float32]:
        """Mono samples from `t0`; sample `k` is at `k / sample_rate`, so chunks join exactly."""
        return self.mix.render(t0, samples, sample_rate)

    def render_clip(self, times: F64, height: int, width: int) -> npt.NDArray[np.uint8]:
        """Frames `[T, H, W, 3]` at `times`, drawn together (vectorised over time)."""
        times = np.asarray(times, dtype=np.float64)
        shake = self.look.shake_at(times)
        frames = self._backdrop(shake, height, width)
        g = grid(height, width)
        for v in self.vehicles:
            draw_body(frames, v, times, shake, g)
        frames *= np.float32(self.look.gain) * np.asarray(self.look.tint, dtype=np.float32)
        for v in self.vehicles:
            lamp_glow(frames, v, times, shake, g)
        if self.look.noise > 0:
            bank = _noise_bank(height, width)
            idx = (np.round(times * 30).astype(np.int64) + self.look.seed) % NOISE_BANK_FRAMES
            frames += np.float32(self.look.noise) * bank[idx]
        np.clip(frames, 0.0, 1.0, out=frames)
        out: npt.NDArray[np.uint8] = (frames * 255.0 + 0.5).astype(np.uint8)
        return out

    def _backdrop(self, shake: tuple[F64, F64], h: int, w: int) -> F32:
        img = backdrop_image(self.look.backdrop, h, w)
        mh, mw = margins(h, w)
        oy = np.clip(np.round(shake[1] * h).astype(int), -mh, mh)
        ox = np.clip(np.round(shake[0] * w).astype(int), -mw, mw)
        out = np.empty((len(ox), h, w, 3), dtype=np.float32)
        for i, (dy, dx) in enumerate(zip(oy, ox, strict=True)):
            out[i] = img[mh - dy : mh - dy + h, mw - dx : mw - dx + w]
        return out
