"""Alarms (label `alarm`): warning signals meant to make people act.

Styles (`ALARM_STYLES`):
* `smoke`: the T3 pattern (ISO 8201) of a smoke alarm: three 0.4–0.6 s beeps 0.4–0.6 s apart,
  then a 1.3–1.6 s pause; a piezo at 2.8–3.6 kHz;
* `co`: the T4 pattern of a CO alarm: four 0.08–0.12 s beeps as far apart, then a 0.8–1.5 s
  pause (real CO alarms pause up to 5 s; a one-second window then hears nothing, so the
  generator keeps the pause under the window rule's reach); 2.8–3.6 kHz;
* `bell`: a fire bell: a struck bell (inharmonic partials 1, 2.0–2.8, 3.9–5.4, 6–9) at
  600–1,600 Hz, struck 10–25 times a second, each strike decaying in 15–60 ms;
* `buzzer`: a harsh square or pulse buzz at 50–400 Hz, held or pulsed 1–4 times a second;
* `clock`: an alarm clock or timer: groups of 2–4 short beeps (0.05–0.12 s) at 1–4 kHz, then a
  0.3–0.8 s pause;
* `beeper`: a gated tone at 1.8–3.6 kHz, 1.5–4 beeps a second (the original generator's).

An alarm is positive over its whole pattern, its pauses included: a T3 smoke alarm between
beep groups is still sounding (the real-sound set bridges alarm pauses up to 1.6 s too).
"""

from __future__ import annotations

import numpy as np

from engines.lab.scenes.sounds.tonal import Pattern, Tone, timbre

ALARM_STYLES = ("smoke", "co", "bell", "buzzer", "clock", "beeper")
ALARM_WEIGHTS = (0.2, 0.14, 0.2, 0.16, 0.15, 0.15)


def _steady(f: float) -> Pattern:
    return Pattern("steps", f, f, 0.1, steps=(f,))


def draw_alarm(rng: np.random.Generator, style: str, start: float, end: float) -> Tone:
    """One alarm of `style` over `[start, end)`."""
    u = rng.uniform
    piezo = timbre(str(rng.choice(["sine", "square", "pulse", "soft"])), 6)
    if style == "smoke":
        on, off = u(0.4, 0.6), u(0.4, 0.6)
        gate: tuple[float, ...] = (on, off, on, off, on, u(1.3, 1.6))
        tone = Tone(start, end, _steady(u(2800, 3600)), piezo, gate=gate, ramp_s=0.005)
    elif style == "co":
        on = u(0.08, 0.12)
        gate = (on, on, on, on, on, on, on, u(0.8, 1.5))
        tone = Tone(start, end, _steady(u(2800, 3600)), piezo, gate=gate, ramp_s=0.004)
    elif style == "bell":
        partials = (1.0, u(2.0, 2.8), u(3.9, 5.4), u(6.0, 9.0))
        strike = 1.0 / u(10, 25)
        tone = Tone(
            start, end, _steady(u(600, 1600)), (1.0, u(0.4, 0.8), u(0.2, 0.5), u(0.1, 0.3)),
            partials=partials, gate=(strike * 0.95, strike * 0.05), decay_s=float(u(0.015, 0.06)),
        )  # fmt: skip
    elif style == "buzzer":
        amps = timbre(str(rng.choice(["square", "pulse", "saw"])), 40)
        gate = () if rng.random() < 0.5 else (u(0.15, 0.5), u(0.1, 0.5))
        tone = Tone(start, end, _steady(u(50, 400)), amps, gate=gate, drive=float(u(0.0, 4.0)))
    elif style == "clock":
        beep, gap = u(0.05, 0.12), u(0.04, 0.1)
        group = int(rng.integers(2, 5))
        gate = (beep, gap) * (group - 1) + (beep, u(0.3, 0.8))
        tone = Tone(start, end, _steady(u(1000, 4000)), piezo, gate=gate, ramp_s=0.003)
    elif style == "beeper":
        rate = u(1.5, 4.0)
        tone = Tone(start, end, _steady(u(1800, 3600)), (1.0, 0.0, 0.3),
                    gate=(0.5 / rate, 0.5 / rate), ramp_s=0.01)  # fmt: skip
    else:
        raise ValueError(f"alarm must be one of {', '.join(ALARM_STYLES)}, not {style!r}")
    return tone
