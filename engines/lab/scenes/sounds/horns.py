"""Vehicle horns (label `horn`): single, dual and triple tones, car horn to truck air horn.

* `car`: an electric horn, one tone (a disc horn) or two a minor to major third apart
  (ratio 1.15–1.3), fundamentals 300–750 Hz, buzzy (sawtooth, reed or square timbre);
* `truck`: an air horn, two or three tones (a chord of ratios around 1.2–1.26 and 1.5),
  fundamentals 250–500 Hz, reed-like;
* `scooter`: a small single tone, 600–1,000 Hz.

Patterns: short taps (0.08–0.25 s on, gaps 0.1–0.4 s), honks (0.25–0.9 s on) and long blasts
(held). Gaps inside a honking are under `MERGE_GAP_S`, so the label covers the honking.
"""

from __future__ import annotations

import numpy as np

from engines.lab.scenes.sounds.tonal import Doppler, Pattern, Tone, timbre

HORN_STYLES = ("car", "truck", "scooter")


def draw_horn(rng: np.random.Generator, style: str, start: float, end: float) -> Tone:
    """One horn of `style` over `[start, end)`, tones, timbre and rhythm drawn."""
    u = rng.uniform
    if style == "car":
        f0 = u(300, 750)
        voices: tuple[float, ...] = (1.0,) if rng.random() < 0.35 else (1.0, u(1.15, 1.3))
        amps = timbre(str(rng.choice(["saw", "reed", "square"])), 16)
    elif style == "truck":
        f0 = u(250, 500)
        third = u(1.19, 1.27)
        voices = (1.0, third) if rng.random() < 0.4 else (1.0, third, u(1.45, 1.52))
        amps = timbre("reed", 20)
    elif style == "scooter":
        f0, voices = u(600, 1000), (1.0,)
        amps = timbre(str(rng.choice(["square", "pulse", "soft"])), 12)
    else:
        raise ValueError(f"horn must be one of {', '.join(HORN_STYLES)}, not {style!r}")
    rhythm = rng.random()
    if rhythm < 0.3:  # taps
        gate: tuple[float, ...] = (u(0.08, 0.25), u(0.1, 0.4))
    elif rhythm < 0.65:  # honks
        gate = (u(0.25, 0.9), u(0.08, 0.35))
    else:  # a blast
        gate = ()
    pattern = Pattern("steps", f0, f0, 0.1, steps=(f0,))  # steady: one short period suffices
    hp, lp, drive = u(150, 300), u(3000, 8000), float(u(0.5, 3.0)) if rng.random() < 0.5 else 0.0
    doppler = None
    if rng.random() < 0.15:
        doppler = Doppler(u(start, end), u(8, 25), u(3, 20))
    return Tone(
        start, end, pattern, amps, voices=voices, gate=gate, ramp_s=float(u(0.005, 0.03)),
        band=(float(hp), float(lp)), drive=drive, doppler=doppler,
    )  # fmt: skip
