"""Siren families (label `siren`), drawn with the variety real sirens have.

Styles (`SIREN_STYLES`), with the ranges drawn:
* `wail`: a slow rise and fall, 450–800 Hz ↔ 1,000–1,800 Hz, 2–6 s a cycle (US, UK, Asia);
* `yelp`: the same range swept 2.5–7 times a second;
* `hilo`: two tones alternating, ratio 1.2–1.5, 0.5–1.6 s a cycle (UK hi-lo, Asian "pii-poo");
* `twotone`: European two-tone, 350–700 Hz and a fourth or so above (ratio 1.12–1.4),
  1.0–3.0 s a cycle;
* `phaser`: a piercer, 8–20 sweeps a second over 700–1,400 Hz ↔ 1,500–3,000 Hz;
* `rumbler`: a low-frequency siren (wail or yelp) over 180–400 Hz that you feel more than hear;
* `mechanical`: a motor siren spinning up over 1.5–4 s towards 700–1,400 Hz and coasting
  down, 4–10 s a cycle, with a buzzy rotor timbre.

Timbres from a pure sine through soft harmonics to triangle, square, sawtooth and pulse;
a loudspeaker's band limit and overdrive (clipping) on a third of them; a Doppler pass-by on a
fifth (8–30 m/s, 4–30 m at the closest); distance as a low-pass (1.5–8 kHz) on a third.
"""

from __future__ import annotations

import numpy as np

from engines.lab.scenes.sounds.tonal import TIMBRES, Doppler, Pattern, Tone, timbre

SIREN_STYLES = ("wail", "yelp", "hilo", "twotone", "phaser", "rumbler", "mechanical")
# How often each style is drawn when a segment leaves it open.
SIREN_WEIGHTS = (0.22, 0.17, 0.13, 0.13, 0.12, 0.11, 0.12)


def siren_pattern(rng: np.random.Generator, style: str) -> Pattern:
    """The frequency pattern of one siren of `style`."""
    u = rng.uniform
    if style == "wail":
        return Pattern("sweep", u(450, 800), u(1000, 1800), u(2.0, 6.0), u(0.3, 0.7))
    if style == "yelp":
        return Pattern("sweep", u(450, 800), u(1000, 1800), 1.0 / u(2.5, 7.0), u(0.5, 0.95))
    if style == "hilo":
        lo = u(400, 1000)
        return Pattern("steps", lo, lo, u(0.5, 1.6), steps=_order(rng, lo, lo * u(1.2, 1.5)))
    if style == "twotone":
        lo = u(350, 700)
        return Pattern("steps", lo, lo, u(1.0, 3.0), steps=_order(rng, lo, lo * u(1.12, 1.4)))
    if style == "phaser":
        return Pattern("sweep", u(700, 1400), u(1500, 3000), 1.0 / u(8.0, 20.0), u(0.3, 0.9))
    if style == "rumbler":
        slow = rng.random() < 0.5
        period = u(2.0, 5.0) if slow else 1.0 / u(2.5, 6.0)
        return Pattern("sweep", u(180, 230), u(280, 400), period, u(0.3, 0.9))
    if style == "mechanical":
        period = u(4.0, 10.0)
        return Pattern("spin", u(150, 350), u(700, 1400), period, u(0.4, 0.7))
    raise ValueError(f"siren must be one of {', '.join(SIREN_STYLES)}, not {style!r}")


def _order(rng: np.random.Generator, a: float, b: float) -> tuple[float, float]:
    return (a, b) if rng.random() < 0.5 else (b, a)


def draw_siren(rng: np.random.Generator, style: str, start: float, end: float) -> Tone:
    """One siren of `style` sounding over `[start, end)`, timbre and path drawn."""
    pattern = siren_pattern(rng, style)
    if style == "mechanical":
        amps = timbre(str(rng.choice(["saw", "reed", "square"])), 16)
    else:
        amps = timbre(str(rng.choice(TIMBRES)), 16)
    hp, lp, drive = 0.0, 1e9, 0.0
    if rng.random() < 0.35:  # a horn loudspeaker: band-limited, often overdriven
        hp, lp = rng.uniform(250, 500), rng.uniform(3000, 6000)
        drive = float(rng.uniform(1.0, 4.0)) if rng.random() < 0.7 else 0.0
    if rng.random() < 0.35:  # far away: the highs go first
        lp = min(lp, rng.uniform(1500, 8000))
    doppler = None
    if rng.random() < 0.2:
        doppler = Doppler(rng.uniform(start, end), rng.uniform(8, 30), rng.uniform(4, 30))
    return Tone(
        start, end, pattern, amps, band=(float(hp), float(lp)), drive=drive, doppler=doppler,
        offset_s=float(rng.uniform(0, pattern.period)),
    )  # fmt: skip
