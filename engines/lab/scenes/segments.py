"""Segment kinds: the building blocks shared by scene scripts and the training generator.

A segment is a kind on `[start, end)` of the timeline plus optional parameters; whatever a
parameter leaves open is drawn from the scene's random generator (so a script plus a seed is one
exact scene). `SEGMENT_KINDS` lists every kind with the parameters it accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.lab.scenes.audio import AudioSource, Clip
from engines.lab.scenes.audio import Impact as ImpactSound
from engines.lab.scenes.base import LabelInterval
from engines.lab.scenes.pools import random_ambience
from engines.lab.scenes.sounds.alarms import ALARM_STYLES, ALARM_WEIGHTS, draw_alarm
from engines.lab.scenes.sounds.distractors import DISTRACTOR_STYLES, draw_distractor
from engines.lab.scenes.sounds.horns import HORN_STYLES, draw_horn
from engines.lab.scenes.sounds.noises import NOISE_KINDS, NoiseBurst
from engines.lab.scenes.sounds.recordings import recording_bank
from engines.lab.scenes.sounds.sirens import SIREN_STYLES, SIREN_WEIGHTS, draw_siren
from engines.lab.scenes.speech import speech_bank
from engines.lab.scenes.sprites import (
    EMERGENCY_COLOURS,
    FREE_STANDING,
    LAMP_COLOURS,
    LAMP_MOUNTS,
    LAMP_PATTERNS,
    Motion,
    Vehicle,
)
from engines.lab.scenes.truth import Impact

Params = Mapping[str, Any]
LAMP_KINDS = ("none", "emergency", "warning", "hazard", "tail", "steady")
CREEP_GROWTH = (1.03, 1.18)  # per second: visibly closing in, below MIN_APPROACH_GROWTH


@dataclass
class Context:
    """What segment builders share: the random generator, the split's pools, the ground line."""

    rng: np.random.Generator
    split: str
    horizon: float
    snr_db: tuple[float, float] = (-5.0, 20.0)


@dataclass
class Parts:
    """What segments add up to; `Scene` is built from it."""

    vehicles: list[Vehicle] = field(default_factory=list)
    sources: list[tuple[AudioSource, float]] = field(default_factory=list)
    labels: list[LabelInterval] = field(default_factory=list)
    impacts: list[Impact] = field(default_factory=list)

    def sound(self, ctx: Context, src: AudioSource, p: Params, label: str | None) -> None:
        """Add a source at its SNR (dB over the background) and label it if it is one."""
        snr = float(p.get("snr_db", ctx.rng.uniform(*ctx.snr_db)))
        self.sources.append((src, 10.0 ** (snr / 20.0)))
        if label:
            self.labels.append(LabelInterval(label, src.start, src.end))


def _pick(
    ctx: Context, p: Params, key: str, choices: tuple[str, ...],
    weights: tuple[float, ...] | None = None,
) -> str:  # fmt: skip
    value = p.get(key)
    if value is None:
        w = None if weights is None else np.asarray(weights) / sum(weights)
        return str(choices[int(ctx.rng.choice(len(choices), p=w))])
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def siren(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """A siren (`sounds.sirens.SIREN_STYLES`) sounding over `[a, b)`."""
    style = _pick(ctx, p, "siren", SIREN_STYLES, SIREN_WEIGHTS)
    parts.sound(ctx, draw_siren(ctx.rng, style, a, b), p, "siren")


def horn(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """A vehicle horn (`sounds.horns.HORN_STYLES`) over `[a, b)`: tapped, honked or held."""
    style = _pick(ctx, p, "horn", HORN_STYLES, (0.55, 0.3, 0.15))
    parts.sound(ctx, draw_horn(ctx.rng, style, a, b), p, "horn")


def alarm(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """An alarm (`sounds.alarms.ALARM_STYLES`) ringing over `[a, b)`."""
    style = _pick(ctx, p, "alarm", ALARM_STYLES, ALARM_WEIGHTS)
    parts.sound(ctx, draw_alarm(ctx.rng, style, a, b), p, "alarm")


def tonal(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """A tonal or musical sound with no label (`sounds.distractors.DISTRACTOR_STYLES`)."""
    style = _pick(ctx, p, "distractor", DISTRACTOR_STYLES)
    parts.sound(ctx, draw_distractor(ctx.rng, style, a, b), p, None)


def noise(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """Noise that starts and stops (`sounds.noises.NOISE_KINDS`), no label."""
    kind = _pick(ctx, p, "noise", NOISE_KINDS)
    seed = random_ambience(ctx.rng, ctx.split).seed  # the split's pool of variants
    ramp = float(ctx.rng.uniform(0.02, 0.5))
    parts.sound(ctx, NoiseBurst(a, b, kind, seed, ramp), p, None)


def recording(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """A real training recording (`sounds.recordings`) from a random point, with its own
    labels on its active spans; a synthesised stand-in (speech or a tonal distractor) when no
    recording is fetched or the split is not `train`."""
    bank = recording_bank() if ctx.split != "heldout" else ()
    if not bank:
        (speech if ctx.rng.random() < 0.5 else tonal)(ctx, parts, a, b, p)
        return
    rec = bank[int(ctx.rng.integers(len(bank)))]
    n = len(rec.samples)
    want = int((b - a) * 16000)
    skip = int(ctx.rng.integers(max(1, n - want))) if n > want else 0
    clip = Clip(a, rec.samples[skip : skip + want])
    parts.sound(ctx, clip, p, None)
    for label in rec.labels:
        for s0, s1 in rec.spans:
            lo, hi = max(a, a + s0 - skip / 16000), min(clip.end, a + s1 - skip / 16000)
            if hi > lo:
                parts.labels.append(LabelInterval(label, lo, hi))


def speech(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """Utterances back to back with short pauses; each one labelled `speech`."""
    bank = speech_bank(ctx.split)
    snr = float(p.get("snr_db", ctx.rng.uniform(*ctx.snr_db)))
    t = a
    while t < b - 0.3:
        clip = bank[int(ctx.rng.integers(len(bank)))]
        n = min(len(clip), int((b - t) * 16000))
        parts.sound(ctx, Clip(t, clip[:n]), {"snr_db": snr + ctx.rng.uniform(-2, 2)}, "speech")
        t += n / 16000 + ctx.rng.uniform(0.15, 0.5)


def impact(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """An impact sound at `at` (default: the segment's middle)."""
    at = float(p.get("at", 0.5 * (a + b)))
    r = ctx.rng
    src = ImpactSound(at, r.uniform(45, 110), r.uniform(0.08, 0.25), r.uniform(0.3, 1.2))
    parts.sound(ctx, src, {"snr_db": p.get("snr_db", r.uniform(5, 20))}, None)
    parts.impacts.append(Impact(at))


def vehicle_look(ctx: Context, p: Params) -> tuple[str, float, tuple[float, float, float]]:
    """Shape, width/height ratio and body colour, random unless given."""
    if p.get("shape") in (*FREE_STANDING, "plain"):  # given only: scripts draw the others
        shape = str(p["shape"])
    else:
        shape = _pick(ctx, p, "shape", ("car", "van", "box", "ball"))
    ratio = {"car": (1.6, 2.4), "van": (1.2, 1.7), "box": (0.8, 1.6), "ball": (1.0, 1.0),
             "plain": (0.5, 1.5), "none": (1.0, 1.6), "pole": (1.0, 1.6)}[shape]  # fmt: skip
    col = p.get("colour") or tuple(float(c) for c in ctx.rng.uniform(0.08, 0.95, 3))
    return shape, float(ctx.rng.uniform(*ratio)), (float(col[0]), float(col[1]), float(col[2]))


def motion(ctx: Context, kind: str, a: float, b: float, p: Params | None = None) -> Motion:
    """A random motion of `kind` over `[a, b)`, standing on the ground line.

    Optional `p` keys (the training generator's variety; scripts leave them out): `growth`
    (lo, hi) per second for approaches and recessions, `end_size` (lo, hi) of an approach's
    final height, `min_size` (an approach's smallest start height), `drift` (largest sideways
    travel of an approach, frame fractions).
    """
    p = p or {}
    r, dur = ctx.rng, max(0.2, b - a)
    x0 = r.uniform(0.25, 0.75)
    growth = tuple(p.get("growth", (1.6, 2.8)))
    if kind == "approach":
        s1 = r.uniform(*tuple(p.get("end_size", (0.45, 0.8))))
        # ≥ 8 px tall at 64x64 by default: visibly growing
        s0 = max(float(p.get("min_size", 0.12)), s1 / r.uniform(*growth) ** dur)
        drift, edge = (float(p["drift"]), 0.1) if "drift" in p else (0.15, 0.2)
        x1 = float(np.clip(x0 + r.uniform(-drift, drift), edge, 1.0 - edge))
    elif kind == "creep":  # closing in slower than the label's 1.25x/s
        s1 = r.uniform(0.15, 0.8)
        s0 = s1 / r.uniform(*CREEP_GROWTH) ** dur
        x1 = float(np.clip(x0 + r.uniform(-0.05, 0.05), 0.1, 0.9))
    elif kind == "recede":
        s0 = r.uniform(0.45, 0.8)
        s1, x1 = max(0.08, s0 / r.uniform(*growth) ** dur), x0
    elif kind == "pass":
        s0 = s1 = r.uniform(0.12, 0.4)
        x0, x1 = (-0.1, 1.1) if r.random() < 0.5 else (1.1, -0.1)
        if dur < 3 and r.random() < 0.5:  # stays in view; otherwise it enters and leaves
            x0, x1 = 0.5 + (x0 - 0.5) * 0.6, 0.5 + (x1 - 0.5) * 0.6
    else:
        s0 = s1 = r.uniform(0.1, 0.8)  # parked close by can be big: size alone is no cue
        x1 = x0
    depth = r.uniform(0.5, 1.0) * (0.98 - ctx.horizon) / max(s0, s1)
    return Motion(kind, a, b, float(x0), float(x1), float(s0), float(s1), ctx.horizon, depth)


def vehicle(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """An object moving (`motion`) during `[a, b)`, lamps `lamps` lit throughout."""
    # `creep` only when asked for (the training generator's variety): scripts draw the others
    creep = p.get("motion") == "creep"
    kind = "creep" if creep else _pick(ctx, p, "motion", ("approach", "recede", "pass", "static"))
    lamps = _pick(ctx, _with(p, lamps=p.get("lamps") or ("none", "tail")[int(ctx.rng.integers(2))]),
                  "lamps", LAMP_KINDS)  # fmt: skip
    move_end = float(p.get("stop_at", b))
    shape, ratio, colour = vehicle_look(ctx, p)
    hz = ctx.rng.uniform(1.2, 2.5) if lamps == "emergency" else ctx.rng.uniform(0.9, 1.7)
    colours = str(p.get("colours", "amber" if lamps == "warning" else "redblue"))
    if colours not in LAMP_COLOURS:
        raise ValueError(f"colours must be one of {', '.join(LAMP_COLOURS)}, not {colours!r}")
    if lamps == "emergency" and colours not in EMERGENCY_COLOURS:
        raise ValueError(f"emergency lamps are {', '.join(EMERGENCY_COLOURS)}, not {colours!r}")
    if lamps == "warning" and colours in EMERGENCY_COLOURS:
        raise ValueError(f"warning lamps are amber or white, not {colours!r}")
    pattern = _pick(ctx, {"pattern": p.get("pattern", "alternate")}, "pattern", LAMP_PATTERNS)
    mount = _pick(ctx, {"mount": p.get("mount", "roof")}, "mount", LAMP_MOUNTS)
    parts.vehicles.append(
        Vehicle(
            motion(ctx, kind, a, move_end, p),
            (a, b),
            shape,
            ratio,
            colour,
            lamps,
            (a, b),
            float(p.get("flash_hz", hz)),
            float(ctx.rng.random()),
            pattern,
            colours,
            mount,
            float(p.get("lamp_scale", 1.0)),
            float(p.get("bloom", 0.0)),
        )
    )


def _with(p: Params, **defaults: Any) -> dict[str, Any]:
    return {**defaults, **p}


def emergency_vehicle(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """A vehicle with emergency lamps flashing and its siren on, approaching by default."""
    vehicle(ctx, parts, a, b, _with(p, lamps="emergency", motion="approach"))
    siren(ctx, parts, a, b, p)


def lights(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """Emergency lamps flashing in silence (parked, by default)."""
    vehicle(ctx, parts, a, b, _with(p, lamps="emergency", motion="static"))


def hazard_lights(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """Amber hazard lamps blinking on a parked vehicle (not `flashing_lights`)."""
    vehicle(ctx, parts, a, b, _with(p, lamps="hazard", motion="static"))


def approach(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """An object approaching in silence."""
    vehicle(ctx, parts, a, b, _with(p, motion="approach", lamps="none"))


def collision(ctx: Context, parts: Parts, a: float, b: float, p: Params) -> None:
    """An object approaches, stops at `stop_at` and an impact sounds at that instant."""
    stop = float(p.get("stop_at", a + 0.7 * (b - a)))
    if not a < stop < b:
        raise ValueError(f"collision stop_at {stop} must lie inside the segment ({a}, {b})")
    vehicle(ctx, parts, a, b, _with(p, motion="approach", lamps="none", stop_at=stop))
    impact(ctx, parts, a, b, {"at": stop, **({"snr_db": p["snr_db"]} if "snr_db" in p else {})})


SEGMENT_KINDS: dict[str, Callable[[Context, Parts, float, float, Params], None]] = {
    "siren": siren,
    "horn": horn,
    "alarm": alarm,
    "speech": speech,
    "tonal": tonal,
    "noise": noise,
    "recording": recording,
    "impact": impact,
    "vehicle": vehicle,
    "emergency_vehicle": emergency_vehicle,
    "lights": lights,
    "hazard_lights": hazard_lights,
    "approach": approach,
    "collision": collision,
}


def add_segment(ctx: Context, parts: Parts, kind: str, a: float, b: float, p: Params) -> None:
    """Build one segment into `parts`; unknown kinds and bad parameters raise `ValueError`."""
    if kind not in SEGMENT_KINDS:
        raise ValueError(f"unknown segment kind {kind!r} (known: {', '.join(SEGMENT_KINDS)})")
    if not b > a:
        raise ValueError(f"segment {kind!r} must end after it starts ({a} >= {b})")
    SEGMENT_KINDS[kind](ctx, parts, a, b, p)
