"""One stateless tonal source for every pitched sound: sirens, horns, alarms and instruments.

A `Tone` is a frequency pattern (`Pattern`, periodic, or one-shot when its period covers the
whole sound), one or more voices at fixed ratios of it (a dual-tone horn, a chord), a timbre
(harmonic amplitudes, or inharmonic partials for bells), an on/off rhythm (`gate`, with struck
decays for bells and plucked notes), and what lies between the loudspeaker and the microphone:
band limits and clipping of a horn loudspeaker, distance (a low-pass), a Doppler pass-by.

Stateless: the phase is the exact integral of the instantaneous frequency, in closed form within
a period (whole periods add a constant), so any sample index renders on its own and 20 ms chunks
join a 1 s window sample for sample.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from engines.lab.scenes.audio import F64, FADE_S, I64, TWO_PI

SPEED_OF_SOUND = 343.0
ALIAS_GUARD = 0.45  # harmonics above this fraction of the sample rate fade out (no aliasing)


@dataclass(frozen=True, slots=True)
class Pattern:
    """Instantaneous frequency over one period of `period` seconds, by `kind`:

    * `sweep`: `lo` → `hi` → `lo`, rising over the first `shape` of the period with a raised
      cosine (0.5: a sine-like wail; 0.9: a yelp's slow rise and fast fall);
    * `steps`: the frequencies `steps` in turn, each for an equal share of the period (hi-lo,
      two-tone, melodies; a single step is a steady tone);
    * `spin`: a motor siren: spins up from `lo` towards `hi` over the first `shape` of the
      period (time constant a quarter of it), then coasts back down towards `lo`.
    """

    kind: str
    lo: float
    hi: float
    period: float
    shape: float = 0.5
    steps: tuple[float, ...] = ()

    def freq(self, x: F64) -> F64:
        """Frequency (Hz) at fractions `x` in [0, 1) of the period."""
        lo, hi, r = self.lo, self.hi, self.shape
        if self.kind == "steps":
            table = np.asarray(self.steps, dtype=np.float64)
            return table[np.minimum((x * len(table)).astype(np.int64), len(table) - 1)]
        if self.kind == "spin":
            up = 1.0 - np.exp(-x / (0.25 * r))
            top = 1.0 - math.exp(-4.0)
            down = top * np.exp(-np.maximum(x - r, 0.0) / (0.3 * (1.0 - r)))
            return lo + (hi - lo) * np.where(x < r, up, down)
        rise = 0.5 - 0.5 * np.cos(np.pi * x / r)
        fall = 0.5 + 0.5 * np.cos(np.pi * (x - r) / (1.0 - r))
        return lo + (hi - lo) * np.where(x < r, rise, fall)

    def cycles(self, x: F64) -> F64:
        """Cycles elapsed from the period's start to fractions `x` in [0, 1]: the exact
        integral of `freq` (closed form, so no table and no accumulated error)."""
        lo, hi, r, p = self.lo, self.hi, self.shape, self.period
        if self.kind == "steps":
            table = np.asarray(self.steps, dtype=np.float64)
            m = len(table)
            before = np.concatenate(([0.0], np.cumsum(table)))
            j = np.minimum((x * m).astype(np.int64), m - 1)
            out: F64 = p / m * (before[j] + table[j] * (x * m - j))
            return out
        if self.kind == "spin":
            a, b = 0.25 * r, 0.3 * (1.0 - r)
            top = 1.0 - math.exp(-4.0)
            up = x - a * (1.0 - np.exp(-np.minimum(x, r) / a))
            at_r = r - a * (1.0 - math.exp(-4.0))
            down = at_r + top * b * (1.0 - np.exp(-np.maximum(x - r, 0.0) / b))
            g = np.where(x < r, up, down)
        else:
            rise = 0.5 * x - r / TWO_PI * np.sin(np.pi * np.minimum(x, r) / r)
            y = np.maximum(x - r, 0.0)
            fall = 0.5 * x + (1.0 - r) / TWO_PI * np.sin(np.pi * y / (1.0 - r))
            g = np.where(x < r, rise, fall)
        result: F64 = p * (lo * x + (hi - lo) * g)
        return result

    @property
    def top(self) -> float:
        """The highest frequency the pattern reaches."""
        return max(self.steps) if self.kind == "steps" else self.hi

    @property
    def steady(self) -> bool:
        """Whether the frequency never changes."""
        return self.kind == "steps" and len(set(self.steps)) == 1


def cycles_at(pattern: Pattern, tau: F64) -> tuple[F64, F64]:
    """(cycles elapsed, instantaneous frequency) at local times `tau` (s, may be fractional);
    whole periods add a constant."""
    u = np.maximum(tau, 0.0) / pattern.period
    q = np.floor(u)
    x = u - q
    whole = float(pattern.cycles(np.ones(1))[0])
    return q * whole + pattern.cycles(x), pattern.freq(x)


@functools.lru_cache(maxsize=64)
def clip_rms(drive: float) -> float:
    """RMS of `tanh(drive * x)` for a unit-RMS sine `x`: keeps clipped sources at unit RMS."""
    x = math.sqrt(2.0) * np.sin(np.linspace(0.0, TWO_PI, 4096, endpoint=False))
    return float(np.sqrt(np.mean(np.tanh(drive * x) ** 2)))


@dataclass(frozen=True, slots=True)
class Doppler:
    """A straight pass-by: closest `distance_m` at scene time `t_closest`, at `speed` m/s."""

    t_closest: float
    speed: float
    distance_m: float

    def emitted(self, t: F64) -> tuple[F64, F64]:
        """(emission time for reception times `t`, amplitude relative to the closest point)."""
        c2, v2, d2 = SPEED_OF_SOUND**2, self.speed**2, self.distance_m**2
        s = t - self.t_closest
        u = (c2 * s - np.sqrt(c2 * v2 * s * s + (c2 - v2) * d2)) / (c2 - v2)
        dist = np.sqrt(d2 + v2 * u * u)
        return self.t_closest + u, self.distance_m / dist


@dataclass(frozen=True, slots=True)
class Tone:
    """A pitched sound on `[start, end)` at about unit RMS while on (see the module docstring).

    `amps` are the amplitudes of harmonics 1, 2, 3, … (`partials` empty) or of the inharmonic
    `partials` (frequency ratios, e.g. a bell). `gate` is a cycle of (on, off, on, off, …)
    durations in seconds (empty: always on); `decay_s` > 0 makes each on-span a strike decaying
    with that time constant. `band` = (high-pass, low-pass) Hz on the partials (a loudspeaker's
    or distance's band limit), `drive` > 0 clips the sum (an overdriven loudspeaker),
    `vibrato` = (rate Hz, depth as a fraction of the frequency).
    """

    start: float
    end: float
    pattern: Pattern
    amps: tuple[float, ...]
    voices: tuple[float, ...] = (1.0,)
    partials: tuple[float, ...] = ()
    gate: tuple[float, ...] = ()
    ramp_s: float = 0.01
    decay_s: float = 0.0
    band: tuple[float, float] = (0.0, 1e9)
    drive: float = 0.0
    vibrato: tuple[float, float] = (0.0, 0.0)
    doppler: Doppler | None = None
    offset_s: float = 0.0  # where in its pattern the sound starts

    def render(self, k: I64, sr: int) -> F64:
        t = k / sr
        local = t - self.start
        gain = np.ones_like(t)
        tau = local
        if self.doppler is not None:
            te, gain = self.doppler.emitted(t)
            tau = te - self.start
        tau = tau + self.offset_s
        out = np.zeros_like(t)
        for ratio in self.voices:
            out += self._voice(tau, ratio, sr)
        out /= math.sqrt(len(self.voices))
        if self.drive > 0:
            out = np.tanh(self.drive * out) / clip_rms(self.drive)
        fade = np.clip(np.minimum(local, self.end - self.start - local) / FADE_S, 0.0, 1.0)
        return out * gain * self._gate(tau) * fade

    def _voice(self, tau: F64, ratio: float, sr: int) -> F64:
        cyc, f = cycles_at(self.pattern, tau)
        rate, depth = self.vibrato
        if depth > 0:
            centre = 0.5 * (self.pattern.lo + self.pattern.top)
            cyc = cyc - centre * depth / (TWO_PI * rate) * np.cos(TWO_PI * rate * tau)
        cyc, f = cyc * ratio, f * ratio
        phase = TWO_PI * (cyc - np.floor(cyc))
        hp, lp = self.band
        out, power = np.zeros_like(tau), np.zeros_like(tau)
        if self.pattern.steady:
            f = f[:1]  # one frequency: gains are numbers, not arrays
        if self.partials:  # inharmonic: one sine each
            for p, a in zip(self.partials, self.amps, strict=False):
                w = a * _band_gain(p * f, hp, lp, sr)
                out += w * np.sin(p * phase)
                power += 0.5 * w * w
        else:  # harmonic: sin(h x) by the Chebyshev recurrence (one sin and one cos in all)
            s_prev, s_cur, c2 = np.zeros_like(tau), np.sin(phase), 2.0 * np.cos(phase)
            f_min = float(f.min()) if len(f) else 0.0
            for h, a in enumerate(self.amps, start=1):
                if h * f_min > ALIAS_GUARD * sr:
                    break  # this and every higher harmonic is above the band everywhere
                if a != 0.0:
                    w = a * _band_gain(h * f, hp, lp, sr)
                    out += w * s_cur
                    power += 0.5 * w * w
                s_prev, s_cur = s_cur, c2 * s_cur - s_prev
        return out / np.sqrt(np.maximum(power, 1e-12))

    def _gate(self, local: F64) -> F64:
        if not self.gate:
            return np.ones_like(local)
        bounds = np.concatenate(([0.0], np.cumsum(self.gate)))
        pos = np.mod(np.maximum(local, 0.0), bounds[-1])
        seg = np.minimum(np.searchsorted(bounds, pos, side="right") - 1, len(self.gate) - 1)
        since, left = pos - bounds[seg], bounds[seg + 1] - pos
        on = (seg % 2) == 0
        env = np.clip(np.minimum(since, left) / self.ramp_s, 0.0, 1.0)
        if self.decay_s > 0:
            env = np.minimum(np.clip(since / 0.002, 0.0, 1.0), np.clip(left / 0.005, 0.0, 1.0))
            env = env * np.exp(-since / self.decay_s) * 2.0
        return np.where(on, env, 0.0)


def _band_gain(freq: F64, hp: float, lp: float, sr: int) -> F64:
    """Gain of partials at `freq`: first-order high- and low-pass, faded out near Nyquist."""
    g = np.clip((ALIAS_GUARD * sr - freq) / (0.04 * sr), 0.0, 1.0)
    if lp < 1e8:
        g = g / np.sqrt(1.0 + (freq / lp) ** 2)
    if hp > 0:
        g = g / np.sqrt(1.0 + (hp / np.maximum(freq, 1.0)) ** 2)
    return g


# Timbres: amplitudes of harmonics 1..N, from a pure sine to square and sawtooth.
def timbre(name: str, n: int = 24) -> tuple[float, ...]:
    """Harmonic amplitudes of a named waveform (`sine`, `soft`, `triangle`, `square`, `saw`,
    `pulse`, `reed`)."""
    h = np.arange(1, n + 1, dtype=np.float64)
    odd = (h % 2) == 1
    if name == "sine":
        amps = np.where(h == 1, 1.0, 0.0)
    elif name == "soft":
        amps = np.where(h <= 3, np.array([1.0, 0.3, 0.1] + [0.0] * (n - 3))[: len(h)], 0.0)
    elif name == "triangle":
        amps = np.where(odd, 1.0 / h**2, 0.0)
    elif name == "square":
        amps = np.where(odd, 1.0 / h, 0.0)
    elif name == "saw":
        amps = 1.0 / h
    elif name == "pulse":  # a narrow pulse: strong upper harmonics (buzzers, piezo)
        amps = np.abs(np.sin(np.pi * h * 0.2)) / h**0.5
    elif name == "reed":  # a horn or brass: a formant-like bump around harmonics 3-6
        amps = (1.0 / h) * (1.0 + 2.0 * np.exp(-(((h - 4.0) / 2.0) ** 2)))
    else:
        raise ValueError(f"unknown timbre {name!r}")
    return tuple(float(a) for a in amps)


TIMBRES = ("sine", "soft", "triangle", "square", "saw", "pulse", "reed")
