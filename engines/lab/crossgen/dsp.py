"""Small numpy signal helpers for the cross-generator: band-limited oscillators, FFT filters,
convolution reverb, levels and mixing. Pure functions of their arguments (randomness comes in
as a `numpy.random.Generator`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

TIMBRES = ("sine", "square", "saw", "harmonic")


def phase_of(freq: F64, sr: int) -> F64:
    """Running phase (radians) of an oscillator following the frequency track `freq` (Hz)."""
    return 2 * np.pi * np.cumsum(freq) / sr


def harmonic_amps(timbre: str, count: int, rng: np.random.Generator) -> F64:
    """Amplitudes of harmonics 1..count for a named timbre."""
    k = np.arange(1, count + 1, dtype=np.float64)
    if timbre == "sine":
        return np.asarray(k == 1, dtype=np.float64)
    if timbre == "square":
        return np.where(k % 2 == 1, 1.0 / k, 0.0)
    if timbre == "saw":
        return 1.0 / k
    decay = rng.uniform(0.6, 1.6)
    return np.asarray(k**-decay * rng.uniform(0.4, 1.0, count), dtype=np.float64)


def oscillator(freq: F64, sr: int, amps: F64) -> F64:
    """Additive oscillator: harmonics above 0.45*sr are left out (no aliasing)."""
    phase = phase_of(freq, sr)
    out = np.zeros_like(freq)
    top = float(np.max(freq)) if len(freq) else 1.0
    for k, a in enumerate(amps, start=1):
        if a == 0.0:
            continue
        if k * top > 0.45 * sr:
            break
        out += a * np.sin(k * phase)
    return out


def fft_filter(x: F64, sr: int, lo: float | None = None, hi: float | None = None) -> F64:
    """Zero-phase band-pass (smooth 1/8-octave-ish skirts) by FFT shaping."""
    n = len(x)
    if n == 0:
        return x
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1 / sr)
    gain = np.ones_like(f)
    if lo is not None:
        gain *= 1 / (1 + (lo / np.maximum(f, 1e-3)) ** 4)
    if hi is not None:
        gain *= 1 / (1 + (f / hi) ** 4)
    return np.fft.irfft(spec * gain, n)


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> F64:
    """Noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / (rms(x) + 1e-12)


def reverb(x: F64, sr: int, rt60: float, wet: float, rng: np.random.Generator) -> F64:
    """Convolution with an exponentially decaying noise tail (room of reverberation `rt60`)."""
    if rt60 <= 0 or wet <= 0:
        return x
    n_ir = int(sr * min(rt60, 1.5))
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    size = 1 << int(np.ceil(np.log2(len(x) + n_ir)))
    tail = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    return (1 - wet) * x + wet * tail * (rms(x) / (rms(tail) + 1e-12))


def loudspeaker(x: F64, sr: int, drive: float) -> F64:
    """A small horn loudspeaker: band-limited to 300-5000 Hz and soft-clipped."""
    y = fft_filter(x, sr, lo=300.0, hi=5000.0)
    y = y / (np.max(np.abs(y)) + 1e-12)
    return np.asarray(np.tanh(drive * y) / np.tanh(drive), dtype=np.float64)


def rms(x: npt.ArrayLike) -> float:
    """Root mean square."""
    a = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(a**2))) if a.size else 0.0


def db(x: float) -> float:
    """Amplitude ratio from decibels."""
    return float(10 ** (x / 20))


def envelope(n: int, sr: int, spans: list[tuple[float, float]], ramp_s: float = 0.01) -> F64:
    """0/1 gate over `spans` (seconds) with short linear ramps, length `n`."""
    env = np.zeros(n)
    r = max(1, int(ramp_s * sr))
    for s, e in spans:
        a, b = max(0, int(s * sr)), min(n, int(e * sr))
        if b <= a:
            continue
        seg = np.ones(b - a)
        k = min(r, (b - a) // 2)
        if k:
            seg[:k] = np.linspace(0, 1, k)
            seg[-k:] = np.linspace(1, 0, k)
        env[a:b] = np.maximum(env[a:b], seg)
    return env


def to_f32(x: F64) -> F32:
    """Clip to [-1, 1] and cast."""
    return np.clip(x, -1.0, 1.0).astype(np.float32)
