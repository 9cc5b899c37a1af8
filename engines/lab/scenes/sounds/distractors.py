"""Tonal and musical sounds that carry no label: what a siren, horn or alarm detector must not
take for one.

Styles (`DISTRACTOR_STYLES`):
* `organ`: held chords (triads, 0.6–2 s each) of octave-rich drawbar registrations, 80–600 Hz
  roots;
* `piano`: struck notes and chords with a 0.2–0.8 s decay, 100–1,000 Hz;
* `pluck`: plucked-string notes (guitar, harp), 0.1–0.4 s decay, 100–800 Hz;
* `flute`: a breathy near-sine melody with vibrato, 400–1,600 Hz;
* `brass`: reed-like notes and chords at 150–700 Hz (trumpet, trombone, sax);
* `whistle`: a person whistling a tune, 900–3,000 Hz, with vibrato (no periodic sweeps: a
  whistled wail is a siren to a microphone);
* `ringtone`: a telephone ringing (dual tones 400+450, 440+480 or 350+440 Hz in their
  national cadences) or a melodic ringtone (marimba-like notes);
* `music`: a tune over chords (two instruments at once).

Melodies are drawn from a major or minor scale, 0.12–0.6 s a note; everything here is
pitched, sustained or rhythmic like the labelled families, which is the point.
"""

from __future__ import annotations

import numpy as np

from engines.lab.scenes.audio import F64, I64
from engines.lab.scenes.sounds.tonal import Pattern, Tone, timbre

DISTRACTOR_STYLES = ("organ", "piano", "pluck", "flute", "brass", "whistle", "ringtone", "music")
_MAJOR, _MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
_TRIADS = ((1.0, 1.26, 1.5), (1.0, 1.19, 1.5), (1.0, 1.26, 1.5, 2.0), (1.0, 1.5))


def _melody(rng: np.random.Generator, root: float, notes: int, span: int = 7) -> tuple[float, ...]:
    scale = _MAJOR if rng.random() < 0.5 else _MINOR
    degree = np.cumsum(rng.integers(-2, 3, size=notes))
    degree = np.clip(degree - degree.min(), 0, span + 7)
    semis = [scale[d % 7] + 12 * (d // 7) for d in degree]
    return tuple(float(root * 2.0 ** (s / 12.0)) for s in semis)


def _notes(rng: np.random.Generator, lo: float, hi: float, n: int, dur: float) -> Pattern:
    freqs = _melody(rng, rng.uniform(lo, hi / 2.0), n)
    return Pattern("steps", min(freqs), min(freqs), n * dur, steps=freqs)


def _drawbars(rng: np.random.Generator) -> tuple[float, ...]:
    """An organ registration: octave-rich harmonics (1, 2, 3, 4, 6, 8) at drawn levels."""
    amps = [0.0] * 8
    for h in (1, 2, 3, 4, 6, 8):
        amps[h - 1] = float(rng.uniform(0.0, 1.0)) if h > 1 else 1.0
    return tuple(amps)


def draw_distractor(rng: np.random.Generator, style: str, start: float, end: float) -> Tone | Mix:
    """One unlabelled tonal sound of `style` over `[start, end)`."""
    u = rng.uniform
    n = int(rng.integers(3, 9))
    if style == "organ":
        dur = u(0.6, 2.0)
        return Tone(
            start,
            end,
            _notes(rng, 80, 600, n, dur),
            _drawbars(rng),
            voices=_TRIADS[int(rng.integers(len(_TRIADS)))],
            gate=(dur - 0.02, 0.02),
            ramp_s=0.02,
        )
    if style in ("piano", "pluck"):
        dur = u(0.15, 0.6)
        amps = timbre("saw", 16) if style == "piano" else timbre("triangle", 16)
        chord = _TRIADS[int(rng.integers(len(_TRIADS)))] if rng.random() < 0.4 else (1.0,)
        decay = u(0.2, 0.8) if style == "piano" else u(0.1, 0.4)
        return Tone(
            start,
            end,
            _notes(rng, 100, 1000 if style == "piano" else 800, n, dur),
            amps,
            voices=chord,
            gate=(dur * 0.95, dur * 0.05),
            decay_s=float(decay),
            band=(0.0, float(u(1500, 5000))),
        )
    if style == "flute":
        dur = u(0.2, 0.6)
        return Tone(
            start,
            end,
            _notes(rng, 400, 1600, n, dur),
            (1.0, 0.15, 0.05),
            gate=(dur - 0.03, 0.03),
            ramp_s=0.03,
            vibrato=(u(4, 6), u(0.005, 0.02)),
        )
    if style == "brass":
        dur = u(0.2, 0.8)
        chord = (1.0,) if rng.random() < 0.6 else _TRIADS[int(rng.integers(len(_TRIADS)))]
        return Tone(
            start,
            end,
            _notes(rng, 150, 700, n, dur),
            timbre("reed", 20),
            voices=chord,
            gate=(dur - 0.04, 0.04),
            ramp_s=0.03,
            vibrato=(u(4, 6), u(0.0, 0.01)),
        )
    if style == "whistle":
        dur = u(0.12, 0.5)
        freqs = _melody(rng, u(900, 1600), n)
        pattern = Pattern("steps", min(freqs), min(freqs), n * dur, steps=freqs)
        return Tone(
            start,
            end,
            pattern,
            (1.0, 0.05),
            gate=(dur - 0.03, 0.03),
            ramp_s=0.02,
            vibrato=(u(4, 7), u(0.005, 0.02)),
        )
    if style == "ringtone":
        if rng.random() < 0.5:
            pair, cadence = [
                ((400, 450), (0.4, 0.2, 0.4, 2.0)),
                ((440, 480), (2.0, 4.0)),
                ((350, 440), (1.0, 2.0)),
            ][int(rng.integers(3))]
            f = float(pair[0])
            return Tone(
                start,
                end,
                Pattern("steps", f, f, 0.1, steps=(f,)),
                (1.0,),
                voices=(1.0, pair[1] / pair[0]),
                gate=cadence,
                ramp_s=0.01,
                offset_s=float(u(0, sum(cadence))),
            )
        dur = u(0.1, 0.25)
        return Tone(
            start,
            end,
            _notes(rng, 500, 2000, n, dur),
            (1.0, 0.0, 0.2, 0.0, 0.1),
            partials=(1.0, 3.9, 9.2),
            gate=(dur * 0.9, dur * 0.1),
            decay_s=0.08,
        )
    if style == "music":
        tune = draw_distractor(
            rng, str(rng.choice(["piano", "flute", "brass", "pluck"])), start, end
        )
        bed = draw_distractor(rng, "organ", start, end)
        return Mix((tune, bed))
    raise ValueError(f"distractor must be one of {', '.join(DISTRACTOR_STYLES)}, not {style!r}")


class Mix:
    """Several sources as one (a tune over its chords), at about unit RMS together."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Tone | Mix, ...]) -> None:
        self.parts = parts

    @property
    def start(self) -> float:
        return min(p.start for p in self.parts)

    @property
    def end(self) -> float:
        return max(p.end for p in self.parts)

    def render(self, k: I64, sr: int) -> F64:
        out = np.zeros(len(k))
        for part in self.parts:
            out += part.render(k, sr)
        result: F64 = out / np.sqrt(len(self.parts))
        return result
