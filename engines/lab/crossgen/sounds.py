"""Sound sources of the cross-generator, written from the label definitions alone.

Each source returns its signal over the whole scene (`n` samples at `sr`, unit RMS while it
sounds) and the spans (seconds) during which its label is on. Families and their parameter
ranges are listed in `engines/lab/crossgen/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from .dsp import F64, TIMBRES, envelope, fft_filter, harmonic_amps, loudspeaker, oscillator, rms

SIREN_PATTERNS = ("wail", "yelp", "hilo", "two_tone", "phaser", "rumbler", "mechanical")
# Regional two-tone pairs (Hz): a spread of real-world sirens, not one country's.
TWO_TONES = ((450.0, 550.0), (770.0, 960.0), (392.0, 660.0), (435.0, 580.0), (650.0, 850.0))
ALARM_PATTERNS = ("smoke_t3", "co_t4", "bell", "buzzer", "beeps")
DISTRACTOR_SOUNDS = ("organ", "piano", "whistle", "ringtone")
NOISE_BEDS = ("pink", "brown", "traffic", "hvac", "crowd", "white")


@dataclass(slots=True)
class Source:
    """A rendered source: signal, label spans (seconds), and what was drawn."""

    signal: F64
    spans: list[tuple[float, float]]
    params: dict[str, object] = field(default_factory=dict)
    gain: F64 | None = None  # level relative to the SNR point (distance), per sample
    unsure: list[tuple[float, float]] = field(default_factory=list)  # label not scored there


@dataclass(frozen=True, slots=True)
class Motion:
    """A moving source: closest distance (m), speed (m/s), time of closest approach (s)."""

    distance_m: float
    speed_ms: float
    t_closest: float

    def tracks(self, n: int, sr: int) -> tuple[F64, F64]:
        """Doppler frequency factor and 1/r gain (1 at closest approach)."""
        t = np.arange(n) / sr
        along = self.speed_ms * (t - self.t_closest)
        r = np.sqrt(self.distance_m**2 + along**2)
        radial = self.speed_ms * along / r
        return 343.0 / (343.0 + radial), self.distance_m / r


def _unit(x: F64, gate: F64) -> F64:
    on = gate > 0.5
    return x / (rms(x[on]) + 1e-12) if on.any() else x


def siren_track(pattern: str, n: int, sr: int, rng: np.random.Generator) -> F64:
    """Instantaneous frequency (Hz) of a siren pattern."""
    t = np.arange(n) / sr
    lo, hi = rng.uniform(500, 800), rng.uniform(1100, 1700)
    if pattern in ("wail", "mechanical", "yelp", "phaser", "rumbler"):
        period = {
            "wail": rng.uniform(2.5, 6.0),
            "mechanical": rng.uniform(3.0, 7.0),
            "yelp": rng.uniform(0.18, 0.4),
            "phaser": rng.uniform(0.06, 0.12),
            "rumbler": rng.uniform(0.2, 0.45),
        }[pattern]
        if pattern == "rumbler":
            lo, hi = rng.uniform(150, 220), rng.uniform(300, 420)
        x = (t / period + rng.uniform()) % 1.0
        rise = rng.uniform(0.4, 0.7)
        shape = np.where(x < rise, x / rise, (1 - x) / (1 - rise))
        shape = np.sin(np.pi / 2 * shape) ** 2
        return lo + (hi - lo) * shape
    if pattern == "hilo":
        a, b = rng.uniform(550, 700), rng.uniform(800, 1000)
    else:
        a, b = TWO_TONES[int(rng.integers(len(TWO_TONES)))]
    half = rng.uniform(0.3, 0.75)
    which = ((t / half + rng.integers(2)) // 1) % 2
    return np.where(which == 0, a, b)


def siren(
    n: int,
    sr: int,
    span: tuple[float, float],
    rng: np.random.Generator,
    motion: Motion | None = None,
) -> Source:
    """An emergency siren: pattern x timbre, loudspeaker, optional Doppler and distance."""
    pattern = SIREN_PATTERNS[int(rng.integers(len(SIREN_PATTERNS)))]
    timbre = TIMBRES[int(rng.integers(len(TIMBRES)))]
    freq = siren_track(pattern, n, sr, rng)
    gain = np.ones(n)
    if motion is not None:
        factor, gain = motion.tracks(n, sr)
        freq = freq * factor
    x = oscillator(freq, sr, harmonic_amps(timbre, 12, rng))
    if pattern == "mechanical":
        x += 0.3 * fft_filter(rng.standard_normal(n), sr, lo=800, hi=3000) * rms(x)
    drive = float(rng.uniform(1.0, 4.0))
    if rng.uniform() < 0.7:
        x = loudspeaker(x, sr, drive)
    gate = envelope(n, sr, [span], ramp_s=0.03)
    x = _unit(x * gate, gate) * gain
    params = {"pattern": pattern, "timbre": timbre, "doppler": motion is not None}
    return Source(x, [span], params, gain if motion is not None else None)


def horn(n: int, sr: int, start: float, rng: np.random.Generator) -> Source:
    """A vehicle horn: 1-3 simultaneous tones in 250-1000 Hz, brassy; 1-3 honks."""
    tones = int(rng.integers(1, 4))
    base = rng.uniform(250, 700)
    freqs = [base * r for r in (1.0, rng.uniform(1.19, 1.34), rng.uniform(1.45, 1.6))[:tones]]
    honks = int(rng.integers(1, 4))
    spans, t = [], start
    for _ in range(honks):
        d = rng.uniform(0.25, 1.6) if honks == 1 else rng.uniform(0.2, 0.6)
        spans.append((t, t + d))
        t += d + rng.uniform(0.08, 0.25)
    x = np.zeros(n)
    for f in freqs:
        track = np.full(n, min(f, 1000.0)) * (1 + 0.004 * np.sin(2 * np.pi * 6 * np.arange(n) / sr))
        x += oscillator(track, sr, harmonic_amps(str(rng.choice(["saw", "harmonic"])), 14, rng))
    x = np.tanh(2.0 * x / (np.max(np.abs(x)) + 1e-12))
    gate = envelope(n, sr, spans, ramp_s=0.015)
    merged = [(spans[0][0], spans[-1][1])]  # short gaps between honks stay "horn"
    return Source(_unit(x * gate, gate), merged, {"tones": tones, "honks": honks})


def _pulses(
    start: float, end: float, on: float, off: float, group: int, pause: float
) -> list[tuple[float, float]]:
    spans, t = [], start
    while t < end:
        for _ in range(group):
            if t >= end:
                break
            spans.append((t, min(end, t + on)))
            t += on + off
        t += pause
    return spans


ALARM_GAP_ON_S = 0.6  # gaps inside a pattern up to this stay "alarm"
ALARM_PAUSE_UNSURE_S = 1.6  # pauses between repeats up to this are not scored


def alarm(n: int, sr: int, span: tuple[float, float], rng: np.random.Generator) -> Source:
    """Smoke (T3) / CO (T4) detectors, fire bells, buzzers, beepers; label on while it sounds
    (gaps of a pattern up to `ALARM_GAP_ON_S` stay on). The pauses between a pattern's repeats,
    up to `ALARM_PAUSE_UNSURE_S`, are not scored: the model card's `alarm` includes them (an
    alarm that rings T3 rings through its pauses; the real-sound set bridges them up to 1.6 s as
    well), while this generator first called them off, so neither reading is scored."""
    pattern = ALARM_PATTERNS[int(rng.integers(len(ALARM_PATTERNS)))]
    s, e = span
    t = np.arange(n) / sr
    if pattern == "smoke_t3":
        pulses = _pulses(s, e, 0.5, 0.5, 3, 1.0)
        x = oscillator(np.full(n, rng.uniform(2900, 3500)), sr, harmonic_amps("square", 3, rng))
    elif pattern == "co_t4":
        pulses = _pulses(s, e, 0.1, 0.1, 4, rng.uniform(0.6, 1.2))
        x = oscillator(np.full(n, rng.uniform(2900, 3500)), sr, harmonic_amps("square", 3, rng))
    elif pattern == "bell":
        pulses = [(s, e)]
        f0, rate = rng.uniform(700, 1500), rng.uniform(12, 22)
        strike = np.exp(-((t * rate) % 1.0) * rng.uniform(2, 5))
        x = np.zeros(n)
        for r, a in ((1.0, 1.0), (2.76, 0.6), (5.4, 0.3)):
            x += a * np.sin(2 * np.pi * f0 * r * t)
        x *= strike
    elif pattern == "buzzer":
        on = rng.uniform(0.4, 1.5)
        pulses = _pulses(s, e, on, rng.uniform(0.15, 0.5), 1, 0.0)
        f0 = rng.uniform(180, 450)
        x = oscillator(np.full(n, f0), sr, harmonic_amps("square", 25, rng))
        x *= 1 + 0.5 * np.sin(2 * np.pi * 2 * f0 * t)
    else:
        on = rng.uniform(0.08, 0.3)
        pulses = _pulses(s, e, on, rng.uniform(0.06, 0.3), int(rng.integers(1, 5)), 0.4)
        x = oscillator(np.full(n, rng.uniform(1500, 4000)), sr, harmonic_amps("sine", 1, rng))
    gate = envelope(n, sr, pulses, ramp_s=0.004)
    spans = _merge(pulses, ALARM_GAP_ON_S)
    pauses = [
        (a_end, b_start)
        for (_, a_end), (b_start, _) in pairwise(spans)
        if b_start - a_end <= ALARM_PAUSE_UNSURE_S
    ]
    return Source(_unit(x * gate, gate), spans, {"pattern": pattern}, unsure=pauses)


def _merge(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s - out[-1][1] <= gap:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def impact(n: int, sr: int, at: float, rng: np.random.Generator) -> Source:
    """A crash: broadband burst with a sharp attack, a low thump and metallic partials."""
    m = min(n - int(at * sr), int(sr * rng.uniform(0.4, 0.9)))
    t = np.arange(max(m, 0)) / sr
    burst = rng.standard_normal(len(t)) * np.exp(-t / rng.uniform(0.03, 0.12))
    thump = np.sin(2 * np.pi * rng.uniform(50, 120) * t) * np.exp(-t / rng.uniform(0.05, 0.15))
    metal = sum(
        np.sin(2 * np.pi * rng.uniform(800, 4500) * t) * np.exp(-t / rng.uniform(0.05, 0.3))
        for _ in range(int(rng.integers(2, 6)))
    )
    y = burst + 1.5 * thump + 0.3 * np.asarray(metal)
    x = np.zeros(n)
    a = int(at * sr)
    x[a : a + len(y)] = y
    gate = envelope(n, sr, [(at, at + 0.15)])
    return Source(_unit(x, gate), [(at, at + 0.15)], {"impact_at": at})
