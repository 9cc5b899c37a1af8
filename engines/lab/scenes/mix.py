"""Mixing a scene's sounds: background bed + sources at their SNR, through a room reverb.

Reverb is a convolution with an exponentially decaying noise tail. To stay stateless, a chunk
renders its dry sources from `tail` samples earlier and keeps only the chunk's own samples, so
the result is identical however the timeline is cut into calls.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.audio import F32, F64, I64, Ambience, AudioSource

MAX_TAIL_S = 0.4


@dataclass(frozen=True, slots=True)
class Reverb:
    """A room: decay time `rt60_s` and the reverberant share `wet` of the sound."""

    rt60_s: float
    wet: float
    seed: int


@functools.lru_cache(maxsize=64)
def impulse_response(reverb: Reverb, sr: int) -> F64:
    """Direct path 1.0 followed by a decaying noise tail, capped at `MAX_TAIL_S`."""
    n = max(2, round(min(reverb.rt60_s, MAX_TAIL_S) * sr))
    rng = np.random.default_rng([reverb.seed, sr])
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / reverb.rt60_s)
    tail *= reverb.wet / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail


@functools.lru_cache(maxsize=64)
def _ir_spectrum(reverb: Reverb, sr: int, n_fft: int) -> npt.NDArray[np.complex128]:
    return np.fft.rfft(impulse_response(reverb, sr), n_fft)


@dataclass(frozen=True, slots=True)
class AudioMix:
    """A scene's soundtrack: `ambience` at `ambience_gain`, plus each source at its gain."""

    ambience: Ambience | None
    ambience_gain: float
    sources: tuple[tuple[AudioSource, float], ...]
    reverb: Reverb | None = None

    def render(self, t0: float, samples: int, sr: int) -> F32:
        """`samples` mono samples from scene time `t0`, soft-limited into (-1, 1)."""
        k0 = round(t0 * sr)
        k = k0 + np.arange(samples, dtype=np.int64)
        out = np.zeros(samples)
        if self.ambience is not None and self.ambience_gain > 0:
            out += self.ambience_gain * self.ambience.render(k, sr)
        tail = 0
        if self.reverb is not None:
            tail = len(impulse_response(self.reverb, sr)) - 1
        kd = k0 - tail + np.arange(samples + tail, dtype=np.int64)
        dry = self._dry(kd, sr)
        if dry is not None:
            if self.reverb is not None:
                n_fft = 1 << int(np.ceil(np.log2(len(dry) + tail + 1)))
                wet = np.fft.irfft(np.fft.rfft(dry, n_fft) * _ir_spectrum(self.reverb, sr, n_fft))
                dry = wet[: len(dry)]
            out += dry[tail:]
        # A soft limiter (memoryless, so chunking cannot change it) instead of hard clipping.
        return np.tanh(out).astype(np.float32)

    def _dry(self, k: I64, sr: int) -> F64 | None:
        """Sum of the sources over sample indices `k`, rendering only where each is active."""
        t_lo, t_hi = k[0] / sr, (k[-1] + 1) / sr
        dry: F64 | None = None
        for src, gain in self.sources:
            if src.end <= t_lo or src.start >= t_hi or gain <= 0:
                continue
            i0 = max(0, int(np.floor(src.start * sr)) - int(k[0]))
            i1 = min(len(k), int(np.ceil(src.end * sr)) - int(k[0]) + 1)
            if i1 <= i0:
                continue
            if dry is None:
                dry = np.zeros(len(k))
            dry[i0:i1] += gain * src.render(k[i0:i1], sr)
        return dry
