"""Noise families: background beds (`Ambience` kinds) and noise that starts and stops.

`NOISE_KINDS`, each an 8 s seamless loop per variant (seed), unit RMS:
* `pink`, `brown`: 1/f and 1/f² noise;
* `traffic`: road rumble, brown noise under 400 Hz with engine harmonics at 25–60 Hz and slow
  swells as vehicles pass;
* `hvac`: a ventilation system: mains hum (50 or 60 Hz and harmonics), a fan's blade-pass tone
  (80–300 Hz) and broadband air noise;
* `babble`: 5–9 talkers at once from the speech bank (no one voice dominates: not `speech`,
  see the scenes README); training variants use training voices, held-out ones held-out voices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from engines.lab.scenes.audio import (
    AMBIENCE_LOOP_S,
    F32,
    F64,
    FADE_S,
    I64,
    TWO_PI,
    _periodic_mod,
    _shaped,
    unit_rms,
)

NOISE_KINDS = ("pink", "brown", "traffic", "hvac", "babble")
HELDOUT_SEEDS = 100_000  # pools.HELDOUT_OFFSET: variants from here on are held out


@functools.lru_cache(maxsize=128)
def noise_buffer(kind: str, seed: int, sr: int) -> F32:
    """The loop for one variant of a noise family at `sr`."""
    rng = np.random.default_rng([seed, sr, 7 + NOISE_KINDS.index(kind)])
    n = round(AMBIENCE_LOOP_S * sr)
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 1.0)
    t = np.arange(n) / sr
    if kind == "pink":
        x = _shaped(rng, n, sr, f**-0.5 * (f > 20))
    elif kind == "brown":
        x = _shaped(rng, n, sr, f**-1.0 * (f > 15))
    elif kind == "traffic":
        x = _shaped(rng, n, sr, f**-1.0 * (f > 20) / (1.0 + (f / rng.uniform(250, 400)) ** 2))
        engine = rng.uniform(25, 60)
        x += rng.uniform(0.2, 0.6) * sum(np.sin(TWO_PI * engine * h * t) / h for h in (1, 2, 3))
        x *= 1.0 + rng.uniform(0.3, 0.8) * _periodic_mod(rng, t, 0.05, 0.3, 2)
    elif kind == "hvac":
        mains = float(rng.choice([50.0, 60.0]))
        blade = round(rng.uniform(80, 300) * AMBIENCE_LOOP_S) / AMBIENCE_LOOP_S
        x = rng.uniform(0.5, 1.5) * _shaped(rng, n, sr, f**-0.3 * (f > 60) * (f < 4000))
        x += sum(rng.uniform(0.1, 0.5) / h * np.sin(TWO_PI * mains * h * t) for h in (1, 2, 3))
        x += rng.uniform(0.1, 0.4) * np.sin(TWO_PI * blade * t)
    elif kind == "babble":
        x = _babble(rng, n, seed)
    else:
        raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, not {kind!r}")
    return unit_rms(np.asarray(x, dtype=np.float64)).astype(np.float32)


def _babble(rng: np.random.Generator, n: int, seed: int) -> F64:
    from engines.lab.scenes.audio import resampled
    from engines.lab.scenes.speech import speech_bank

    bank = speech_bank("heldout" if seed >= HELDOUT_SEEDS else "train")
    sr = round(n / AMBIENCE_LOOP_S)
    out = np.zeros(n)
    for _ in range(int(rng.integers(5, 10))):
        start = pos = int(rng.integers(n))  # each talker wraps around the loop
        talker = np.zeros(n)
        while pos < start + n:
            clip = resampled(bank[int(rng.integers(len(bank)))], sr)[: n // 2]
            talker[(pos + np.arange(len(clip))) % n] += clip * rng.uniform(0.5, 1.0)
            pos += len(clip) + int(rng.uniform(0.1, 0.6) * sr)
        out += talker
    return out


@dataclass(frozen=True, slots=True)
class NoiseBurst:
    """A noise family sounding over `[start, end)` (a truck rumbling by, a fan switching on, a
    crowd passing), faded in and out over `ramp_s`."""

    start: float
    end: float
    kind: str
    seed: int
    ramp_s: float = 0.2

    def render(self, k: I64, sr: int) -> F64:
        buf = noise_buffer(self.kind, self.seed, sr)
        local = k / sr - self.start
        ramp = max(FADE_S, self.ramp_s)
        fade = np.clip(np.minimum(local, self.end - self.start - local) / ramp, 0.0, 1.0)
        return buf[np.mod(k, len(buf))].astype(np.float64) * fade
