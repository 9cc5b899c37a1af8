"""Backgrounds and musical distractors: noise beds (pink, brown, white, traffic, HVAC, crowd)
and tonal sounds that carry no label (organ, piano, whistle, ringtone)."""

from __future__ import annotations

import numpy as np

from .dsp import F64, colored_noise, envelope, fft_filter, harmonic_amps, oscillator, rms
from .sounds import DISTRACTOR_SOUNDS, NOISE_BEDS, Source
from .speech import babble

# Equal-tempered MIDI note to Hz.
_A4 = 440.0


def _hz(note: float) -> float:
    return float(_A4 * 2 ** ((note - 69) / 12))


def noise_bed(kind: str, n: int, sr: int, rng: np.random.Generator) -> F64:
    """A background of the named family, unit RMS."""
    t = np.arange(n) / sr
    if kind == "pink":
        x = colored_noise(n, 1.0, rng)
    elif kind == "brown":
        x = colored_noise(n, 2.0, rng)
    elif kind == "white":
        x = colored_noise(n, 0.0, rng)
    elif kind == "traffic":
        x = colored_noise(n, 1.7, rng) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t))
        for _ in range(int(rng.integers(0, 3))):  # passing cars: swelling low-passed noise
            c, w = rng.uniform(0, n / sr), rng.uniform(0.8, 2.5)
            x += 2 * np.exp(-(((t - c) / w) ** 2)) * fft_filter(rng.standard_normal(n), sr, hi=900)
    elif kind == "hvac":
        hum = rng.choice([50.0, 60.0])
        x = fft_filter(colored_noise(n, 0.5, rng), sr, hi=rng.uniform(400, 1500))
        x += 0.3 * oscillator(np.full(n, hum), sr, harmonic_amps("harmonic", 6, rng))
        x += 0.1 * np.sin(2 * np.pi * rng.uniform(90, 240) * t)  # fan blade tone
    elif kind == "crowd":
        x = babble(n, sr, rng) + 0.3 * colored_noise(n, 1.0, rng)
    else:
        raise ValueError(f"unknown noise bed {kind!r}")
    return x / (rms(x) + 1e-12)


def distractor(
    kind: str, n: int, sr: int, span: tuple[float, float], rng: np.random.Generator
) -> Source:
    """A tonal sound that is none of the labels; `spans` is empty."""
    s, e = span
    t = np.arange(n) / sr
    if kind == "organ":
        x = np.zeros(n)
        root = float(rng.integers(48, 67))
        for step in (0, 4, 7, 12)[: int(rng.integers(2, 5))]:
            amps = harmonic_amps("harmonic", 8, rng)
            x += oscillator(np.full(n, _hz(root + step)), sr, amps)
        gate = envelope(n, sr, [(s, e)], ramp_s=0.08)
    elif kind == "piano":
        x = np.zeros(n)
        onset = float(s)
        while onset < e:
            f = _hz(float(rng.integers(45, 85)))
            age = t - onset
            note = oscillator(np.full(n, f), sr, harmonic_amps("harmonic", 10, rng))
            x += np.where(age >= 0, note * np.exp(-np.maximum(age, 0) / rng.uniform(0.3, 1.2)), 0)
            onset += rng.uniform(0.15, 0.6)
        gate = envelope(n, sr, [(s, e)])
        x *= gate
    elif kind == "whistle":
        base = rng.uniform(900, 2800)
        glide = base * (1 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5) * t))
        vib = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
        x = np.sin(np.cumsum(2 * np.pi * glide * vib / sr)) + 0.1 * rng.standard_normal(n)
        notes: list[tuple[float, float]] = []
        onset = float(s)
        while onset < e:
            length = float(rng.uniform(0.2, 0.9))
            notes.append((onset, min(float(e), onset + length)))
            onset += length + float(rng.uniform(0.05, 0.3))
        gate = envelope(n, sr, notes, ramp_s=0.03)
    elif kind == "ringtone":
        melody = [_hz(float(m)) for m in rng.integers(72, 96, int(rng.integers(3, 7)))]
        beat = float(rng.uniform(0.1, 0.25))
        idx = ((t - s) / beat).astype(int) % (len(melody) + 2)
        freq = np.array([melody[i] if i < len(melody) else 1000.0 for i in idx.clip(0)])
        silent = idx >= len(melody)
        x = oscillator(freq, sr, harmonic_amps(str(rng.choice(["sine", "square"])), 5, rng))
        x[silent] = 0.0
        gate = envelope(n, sr, [(s, e)])
    else:
        raise ValueError(f"unknown distractor {kind!r}; known: {DISTRACTOR_SOUNDS}")
    x = x * gate
    on = gate > 0.5
    x = x / (rms(x[on]) + 1e-12) if on.any() else x
    return Source(x, [], {"distractor": kind})


__all__ = ["NOISE_BEDS", "distractor", "noise_bed"]
