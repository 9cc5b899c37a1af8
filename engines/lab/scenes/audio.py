"""Scene sounds as functions of absolute sample index, so consecutive chunks join seamlessly.

Every source renders `render(k, sr)` for integer sample indices `k` (sample `k` is at `k / sr`
seconds of scene time) with a nominal RMS of about 1 while active; the mixer scales it to its
SNR against the background. Nothing keeps state between calls: a 20 ms live chunk and a 1 s
training window of the same scene give the same samples.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
TWO_PI = 2.0 * math.pi
FADE_S = 0.02
AMBIENCE_KINDS = ("street", "rain", "crowd", "wind", "hum")
AMBIENCE_LOOP_S = 8.0


class AudioSource(Protocol):
    """One sound in the scene, silent outside `[start, end)`."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...

    def render(self, k: I64, sr: int) -> F64:
        """Samples at indices `k` (time `k / sr`), about unit RMS while active."""
        ...


def _fade(local: F64, length: float) -> F64:
    """Linear 20 ms ramps in and out, so sources never click on or off."""
    return np.clip(np.minimum(local, length - local) / FADE_S, 0.0, 1.0)


def _harmonics(phase: F64, amps: tuple[float, ...], f_max: float, sr: int) -> F64:
    """Sum of harmonics of `phase`, dropping those that would alias, at unit RMS."""
    out = np.zeros_like(phase)
    power = 0.0
    for i, a in enumerate(amps, start=1):
        if i * f_max < 0.48 * sr:
            out += a * np.sin(i * phase)
            power += a * a / 2.0
    return out / math.sqrt(power) if power > 0 else out


@dataclass(frozen=True, slots=True)
class Siren:
    """Emergency siren: `wail` (slow sine sweep), `yelp` (fast saw sweep) or `hilo` (two tones).

    Phase is the closed-form integral of the instantaneous frequency, so the sweep is exact at
    any sample index.
    """

    start: float
    end: float
    style: str
    f_lo: float
    f_hi: float
    period: float
    phase: float = 0.0

    def render(self, k: I64, sr: int) -> F64:
        local = k / sr - self.start
        u = local / self.period + self.phase
        lo, hi, p = self.f_lo, self.f_hi, self.period
        if self.style == "wail":
            cycles = 0.5 * (lo + hi) * local - 0.5 * (hi - lo) * p / TWO_PI * np.cos(TWO_PI * u)
        elif self.style == "yelp":
            cycles = p * (lo * u + (hi - lo) * 0.5 * (np.floor(u) + (u - np.floor(u)) ** 2))
        else:  # hilo
            fr = u - np.floor(u)
            whole = np.floor(u) * 0.5 * (lo + hi)
            cycles = p * (whole + lo * np.minimum(fr, 0.5) + hi * np.maximum(fr - 0.5, 0.0))
        wave = _harmonics(TWO_PI * cycles, (1.0, 0.4, 0.25), hi, sr)
        return wave * _fade(local, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Horn:
    """Car horn: two detuned buzzy tones, continuous or honked in on/off bursts."""

    start: float
    end: float
    f0: float
    ratio: float
    on_s: float
    off_s: float

    def render(self, k: I64, sr: int) -> F64:
        t = k / sr
        local = t - self.start
        amps = (1.0, 0.5, 0.33, 0.25, 0.2)
        wave = _harmonics(TWO_PI * self.f0 * t, amps, self.f0, sr)
        wave += _harmonics(TWO_PI * self.f0 * self.ratio * t, amps, self.f0 * self.ratio, sr)
        gate = np.ones_like(local)
        if self.off_s > 0:
            cycle = self.on_s + self.off_s
            pos = np.mod(local, cycle)
            gate = np.clip(np.minimum(pos, self.on_s - pos) / FADE_S, 0.0, 1.0)
        return wave / math.sqrt(2.0) * gate * _fade(local, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Alarm:
    """Alarm: an electric `bell` (rapid damped inharmonic strikes) or a gated `beeper` tone."""

    start: float
    end: float
    style: str
    f0: float
    rate: float

    def render(self, k: I64, sr: int) -> F64:
        t = k / sr
        local = t - self.start
        if self.style == "bell":
            since = np.mod(local, 1.0 / self.rate)
            env = np.exp(-since / 0.03)
            wave = np.zeros_like(t)
            for ratio, amp in ((1.0, 1.0), (2.76, 0.6), (5.4, 0.4)):
                if ratio * self.f0 < 0.48 * sr:
                    wave += amp * np.sin(TWO_PI * ratio * self.f0 * t)
            wave *= env * 2.0
        else:
            pos = np.mod(local * self.rate, 1.0)
            gate = np.clip(np.minimum(pos, 0.5 - pos) * 100.0 / self.rate, 0.0, 1.0)
            wave = _harmonics(TWO_PI * self.f0 * t, (1.0, 0.0, 0.3), self.f0, sr) * gate * 1.4
        return wave * _fade(local, self.end - self.start)


@functools.lru_cache(maxsize=8)
def _noise_table(sr: int) -> F64:
    """A fixed white-noise table, indexed by sample offset from an impact's start."""
    return np.random.default_rng(12345 + sr).standard_normal(sr)


@dataclass(frozen=True, slots=True)
class Impact:
    """An impact: a broadband crack and a low thump, decaying within about half a second."""

    t_s: float
    thump_hz: float
    decay_s: float
    brightness: float

    @property
    def start(self) -> float:
        return self.t_s

    @property
    def end(self) -> float:
        return self.t_s + 0.6

    def render(self, k: I64, sr: int) -> F64:
        k0 = round(self.t_s * sr)
        off = k - k0
        local = np.maximum(off, 0) / sr
        noise = _noise_table(sr)[np.clip(off, 0, sr - 1)]
        crack = self.brightness * noise * np.exp(-local / (0.3 * self.decay_s))
        thump = np.sin(TWO_PI * self.thump_hz * local) * np.exp(-local / self.decay_s)
        return np.where(off >= 0, 4.0 * (crack + 1.5 * thump), 0.0)


@dataclass(frozen=True, slots=True)
class Clip:
    """One recorded sound (a speech utterance) played from `start`."""

    start: float
    samples_16k: F32 = field(repr=False)

    @property
    def end(self) -> float:
        return self.start + len(self.samples_16k) / 16000.0

    def render(self, k: I64, sr: int) -> F64:
        data = resampled(self.samples_16k, sr)
        idx = k - round(self.start * sr)
        ok = (idx >= 0) & (idx < len(data))
        return np.where(ok, data[np.clip(idx, 0, len(data) - 1)], 0.0).astype(np.float64)


_RESAMPLED: dict[tuple[int, int], tuple[F32, F32]] = {}
_RESAMPLED_MAX = 512


def resampled(x: F32, sr: int) -> F32:
    """`x` (16 kHz) at `sr`, by FFT resampling, cached per clip and rate.

    The cache entry keeps `x` itself, so an id reused after garbage collection never matches.
    """
    if sr == 16000:
        return x
    key = (id(x), sr)
    hit = _RESAMPLED.get(key)
    if hit is not None and hit[0] is x:
        return hit[1]
    n_out = round(len(x) * sr / 16000)
    spec = np.fft.rfft(x)
    out = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    m = min(len(spec), len(out))
    out[:m] = spec[:m]
    y = (np.fft.irfft(out, n_out) * (n_out / len(x))).astype(np.float32)
    if len(_RESAMPLED) >= _RESAMPLED_MAX:
        _RESAMPLED.clear()  # bounded: a long-running sender rebuilds at most a few clips
    _RESAMPLED[key] = (x, y)
    return y


@dataclass(frozen=True, slots=True)
class Ambience:
    """A background sound bed (`AMBIENCE_KINDS` or `sounds.noises.NOISE_KINDS`), periodic over
    `AMBIENCE_LOOP_S` seconds."""

    kind: str
    seed: int

    def render(self, k: I64, sr: int) -> F64:
        if self.kind in AMBIENCE_KINDS:
            buf = ambience_buffer(self.kind, self.seed, sr)
        else:  # the noise families (`sounds.noises.NOISE_KINDS`)
            from engines.lab.scenes.sounds.noises import noise_buffer

            buf = noise_buffer(self.kind, self.seed, sr)
        return buf[np.mod(k, len(buf))].astype(np.float64)


def _shaped(rng: np.random.Generator, n: int, sr: int, gains: F64 | None = None) -> F64:
    """Periodic noise with spectral magnitude `gains` (over rfftfreq), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    if gains is not None:
        spec *= gains
    return unit_rms(np.fft.irfft(spec, n))


def _periodic_mod(rng: np.random.Generator, t: F64, lo_hz: float, hi_hz: float, n: int) -> F64:
    """Sum of `n` sinusoids with whole cycles per loop (keeps the loop seamless), in [-1, 1]."""
    out = np.zeros_like(t)
    for _ in range(n):
        cycles = max(1, round(rng.uniform(lo_hz, hi_hz) * AMBIENCE_LOOP_S))
        out += np.sin(TWO_PI * cycles / AMBIENCE_LOOP_S * t + rng.uniform(0, TWO_PI))
    return out / max(1e-9, float(np.max(np.abs(out))))


@functools.lru_cache(maxsize=128)
def ambience_buffer(kind: str, seed: int, sr: int) -> F32:
    """The loop for one background variant at `sr` (built once, then indexed)."""
    rng = np.random.default_rng([seed, sr, AMBIENCE_KINDS.index(kind)])
    n = round(AMBIENCE_LOOP_S * sr)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    t = np.arange(n) / sr
    fs = np.maximum(f, 1.0)
    if kind == "street":
        tilt = rng.uniform(0.4, 0.8)
        x = _shaped(rng, n, sr, fs**-tilt * (fs > 30) * (1 + 4 * (fs < rng.uniform(120, 250))))
        x *= 1.0 + rng.uniform(0.2, 0.6) * _periodic_mod(rng, t, 0.1, 0.4, 2)
    elif kind == "rain":
        drops = (rng.random(n) < rng.uniform(30, 90) / sr) * rng.uniform(-1, 1, n)
        hiss = rng.standard_normal(n) + 3.0 * drops
        x = _reshape(hiss, np.clip(fs / rng.uniform(800, 2000), 0, 1) * (fs < 7000))
    elif kind == "crowd":
        band = (fs > rng.uniform(150, 300)) * (fs < rng.uniform(2500, 3500)) / np.sqrt(fs)
        x = _shaped(rng, n, sr, band)
        x *= 1.0 + 0.5 * _periodic_mod(rng, t, 2.0, 7.0, 8)
    elif kind == "wind":
        x = _shaped(rng, n, sr, fs**-1.0 * (fs < rng.uniform(300, 600)))
        x *= 1.0 + 0.8 * _periodic_mod(rng, t, 0.125, 0.6, 3)
    else:  # hum
        mains = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1.0) / h * np.sin(TWO_PI * mains * h * t) for h in range(1, 6))
        x = np.asarray(x) + rng.uniform(0.1, 0.4) * _shaped(
            rng, n, sr, (fs > 100) * (fs < rng.uniform(1000, 3000))
        )
    return unit_rms(np.asarray(x, dtype=np.float64)).astype(np.float32)


def _reshape(x: F64, gains: F64) -> F64:
    """`x` filtered by spectral magnitude `gains` (circularly), unit RMS."""
    return unit_rms(np.fft.irfft(np.fft.rfft(x) * gains, len(x)))


def unit_rms(x: F64) -> F64:
    """`x` scaled to an RMS of 1 (silence stays silence)."""
    out: F64 = x / (np.sqrt(np.mean(x * x)) + 1e-12)
    return out
