"""What each training example is built around: its kind (what happens), and where the kind's
segments fall relative to the example's one window `[W0, W0 + L)`.

`KINDS` lists every kind with its weight and recipe; a recipe places segments with `Placer` so
each label is decisively on or off by the window rule. `dataset.example_scene` draws a kind and
renders the scene. Label meanings: `README.md` ("What each label means").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engines.lab.scenes.compose import SegmentSpec

W0 = 2.0  # window start on each example's own timeline: room for history before it
# How objects in view move when they are not approaching; `creep` grows, slower than the
# label's 1.25x/s (traffic rolling forward), so growth alone is not enough.
NOT_APPROACHING = ("static", "pass", "recede", "creep")


class Placer:
    """Places segments relative to the window `[W0, W0 + L)` of one example."""

    def __init__(self, rng: np.random.Generator, length: float) -> None:
        self.rng, self.L = rng, length

    def covering(self) -> tuple[float, float]:
        """Positive: present through the window's end (40 % of the time starting inside it).

        Onsets inside the window, from 0.26 s before its end back to its start, teach the model
        to call a label on the little evidence the window rule asks for (`truth.TAIL_S`): the
        service starts an event on the first window whose end sees it.
        """
        r, end = self.rng, W0 + self.L
        # at most ~3 s long: an approach this short closes in fast enough to see in one window
        a, b = W0 - r.uniform(0.2, 1.2), end + r.uniform(0.2, 1.0)
        if r.random() < 0.4:
            a = end - r.uniform(0.26, self.L)
        return a, b

    def covering_long(self) -> tuple[float, float]:
        """A segment of 2.5–5 s (slow approaches, as in scripts) through the window's end,
        starting inside the window 40 % of the time: a slow approach must be called as soon
        as its growth shows, not only once it fills the window."""
        r, end = self.rng, W0 + self.L
        if r.random() < 0.4:
            a = end - r.uniform(0.26, self.L)
            return a, a + r.uniform(2.5, 5.0)
        return W0 - r.uniform(1.0, 2.5), end + r.uniform(0.5, 1.5)

    def edge(self) -> tuple[float, float]:
        """Hard negative: ended 0.26 s or more before the window's end (65 %), or starts in its
        last 0.05 s (the window has heard or seen almost nothing of it yet)."""
        r, end = self.rng, W0 + self.L
        if r.random() < 0.65:
            b = end - r.uniform(0.26, self.L - 0.05)
            return b - r.uniform(0.5, 2.0), b
        a = end - r.uniform(0.0, 0.05)
        return a, a + r.uniform(0.5, 2.0)

    def away(self, gap: float) -> tuple[float, float]:
        """Entirely at least `gap` seconds before or after the window."""
        r, end = self.rng, W0 + self.L
        if r.random() < 0.5:
            b = W0 - gap - r.uniform(0.0, 1.0)
            return b - r.uniform(1.0, 3.0), b
        a = end + gap + r.uniform(0.0, 1.0)
        return a, a + r.uniform(1.0, 3.0)

    def maybe(self, kind: str, params: dict[str, Any] | None = None) -> list[SegmentSpec]:
        """`kind` covering the window, at its edge, or absent."""
        u = self.rng.random()
        if u < 0.55:
            return [(kind, *self.covering(), params or {})]
        if u < 0.7:
            return [(kind, *self.edge(), params or {})]
        return []


Recipe = Callable[[Placer], list[SegmentSpec]]


def _ev_motion(p: Placer) -> dict[str, Any]:
    """How vehicles with emergency lamps move: the same for positives and distractors, so the
    motion of a flashing vehicle says nothing about whether a siren goes with it."""
    motion = "approach" if p.rng.random() < 0.5 else str(p.rng.choice(NOT_APPROACHING))
    return {"motion": motion}


def _emergency(p: Placer) -> list[SegmentSpec]:
    motion = _ev_motion(p)
    slow = motion["motion"] == "approach" and p.rng.random() < 0.4  # as in the scripts
    return [("emergency_vehicle", *(p.covering_long() if slow else p.covering()), motion)]


def _lights_silent(p: Placer) -> list[SegmentSpec]:
    return [("lights", *p.covering(), _ev_motion(p))]


def _approach(p: Placer) -> list[SegmentSpec]:
    span = p.covering_long() if p.rng.random() < 0.5 else p.covering()
    return [("approach", *span, {})]


def _collision(p: Placer) -> list[SegmentSpec]:
    stop = W0 + p.rng.uniform(0.5, 0.92) * p.L
    a, b = stop - p.rng.uniform(0.8, 4.0), stop + p.rng.uniform(0.4, 1.5)
    return [("collision", a, b, {"stop_at": stop})]


def _stop_silent(p: Placer) -> list[SegmentSpec]:
    """An object approaches and stops without a sound: in the window, or (half of the time)
    before it, so the window shows a big object at rest after its approach."""
    if p.rng.random() < 0.5:
        stop = W0 + p.rng.uniform(0.5, 0.92) * p.L
    else:
        stop = W0 - p.rng.uniform(0.0, 1.5)
    a, b = stop - p.rng.uniform(0.8, 2.5), max(stop, W0 + p.L) + p.rng.uniform(0.4, 1.5)
    return [("vehicle", a, b, {"motion": "approach", "stop_at": stop, "lamps": "none"})]


def _impact_static(p: Placer) -> list[SegmentSpec]:
    at = W0 + p.rng.uniform(0.5, 0.92) * p.L  # where collisions put theirs
    out: list[SegmentSpec] = [("impact", at - 0.1, at + 0.5, {"at": at})]
    u = p.rng.random()
    if u < 0.7:  # something in view that does not approach: parked, passing or leaving
        motion = "static" if u < 0.4 else str(p.rng.choice(["pass", "recede", "creep"]))
        out.append(("vehicle", W0 - 1.0, W0 + p.L + 1.0, {"motion": motion}))
    return out


def _separated(p: Placer) -> list[SegmentSpec]:
    lights: SegmentSpec = ("lights", *p.covering(), _ev_motion(p))
    siren: SegmentSpec = ("siren", *p.covering(), {})
    near, far = (lights, siren) if p.rng.random() < 0.5 else (siren, lights)
    return [near, (far[0], *p.away(p.rng.uniform(1.0, 3.0)), far[3])]


def _hazard_siren(p: Placer) -> list[SegmentSpec]:
    return [("hazard_lights", *p.covering(), {}), ("siren", *p.covering(), {})]


def _mixed(p: Placer) -> list[SegmentSpec]:
    kinds = ["speech", "horn", "alarm", "siren", "lights", "hazard_lights", "approach", "tonal"]
    picks = p.rng.choice(len(kinds), size=int(p.rng.integers(2, 4)), replace=False)
    return [seg for i in picks for seg in p.maybe(kinds[int(i)])]


def traffic(p: Placer) -> list[SegmentSpec]:
    motion = str(p.rng.choice(NOT_APPROACHING))
    lamps = str(p.rng.choice(["none", "tail", "steady"], p=[0.4, 0.35, 0.25]))
    span = p.covering()
    if p.rng.random() < 0.3:  # pops into view mid-window: appearing is not approaching
        span = (W0 + p.rng.uniform(0.1, 0.9) * p.L, max(span[1], W0 + p.L + 0.3))
    return [("vehicle", *span, {"motion": motion, "lamps": lamps})]


def _warning_lights(p: Placer) -> list[SegmentSpec]:
    """Amber or white lamps flashing like emergency ones (half of the time with a siren)."""
    out: list[SegmentSpec] = [("hazard_lights", *p.covering(), {"lamps": "warning"})]
    if p.rng.random() < 0.5:
        out.append(("siren", *p.covering(), {}))
    return out


def _departing(p: Placer) -> list[SegmentSpec]:
    """Objects that are in view but not approaching: leaving (at any rate), passing close by,
    or parked big in front of the camera."""
    motion = str(p.rng.choice(["recede", "pass", "static", "creep"], p=[0.35, 0.2, 0.25, 0.2]))
    lamps = str(p.rng.choice(["none", "tail"]))
    return [("vehicle", *p.covering(), {"motion": motion, "lamps": lamps})]


def _stream_edge(p: Placer) -> list[SegmentSpec]:
    """What plays while a stream starts or stops: nothing that needs the picture to be seen
    (the cut makes it undecidable), traffic, or a sound."""
    u = p.rng.random()
    if u < 0.3:
        return []
    if u < 0.55:
        return _departing(p)
    if u < 0.7:
        return [("hazard_lights", *p.covering(), {})]
    return [(str(p.rng.choice(["speech", "horn", "alarm", "siren"])), *p.covering(), {})]


# (kind, weight, recipe; weights are normalised). Fused positives ~15 % each of all kinds,
# distractors ~35 % (lone impacts are common, so hearing an impact alone is never enough for
# `collision`).
KINDS: tuple[tuple[str, float, Recipe], ...] = (
    ("emergency", 0.19, _emergency),
    ("collision", 0.20, _collision),
    ("radio_siren", 0.06, lambda p: [("siren", *p.covering(), {})]),
    ("lights_silent", 0.06, _lights_silent),
    ("hazard_silent", 0.03, lambda p: [("hazard_lights", *p.covering(), {})]),
    ("hazard_siren", 0.03, _hazard_siren),
    ("separated", 0.04, _separated),
    ("impact_static", 0.10, _impact_static),
    ("stop_silent", 0.05, _stop_silent),
    ("street", 0.02, lambda p: []),
    ("speech", 0.06, lambda p: [("speech", *p.covering(), {})]),
    ("horn", 0.05, lambda p: [("horn", *p.covering(), {})]),
    ("alarm", 0.05, lambda p: [("alarm", *p.covering(), {})]),
    ("approach", 0.05, _approach),
    ("traffic", 0.03, traffic),
    ("mixed", 0.03, _mixed),
    ("warning_lights", 0.04, _warning_lights),
    ("departing", 0.04, _departing),
    ("stream_start", 0.02, _stream_edge),
    ("stream_stop", 0.02, _stream_edge),
)


# --- Audio variety (sounds/): sounds that carry no label, and real recordings ---------------
# Tonal and musical distractors (instruments, whistling, ring tones, music), noise that starts
# and stops (pink, brown, traffic, HVAC, babble), and real `train` recordings with their own
# labels (synthesised stand-ins when none are fetched). Each also joins other kinds as the
# "other sound" below, so distractors sound over sirens, horns and alarms too.
AUDIO_VARIETY_KINDS: tuple[tuple[str, float, Recipe], ...] = (
    ("tonal", 0.07, lambda p: [("tonal", *p.covering(), {})]),
    ("noise_burst", 0.02, lambda p: [("noise", *p.covering(), {})]),
    ("recording", 0.04, lambda p: [("recording", *p.covering(), {})]),
)
OTHER_SOUNDS = ("speech", "horn", "horn", "alarm", "alarm", "tonal", "tonal", "noise", "recording")
LEVEL_DBFS = (-35.0, -10.0)  # RMS of the loudest source
KINDS = KINDS + AUDIO_VARIETY_KINDS
# ---------------------------------------------------------------------------------------------

# Kinds built to tempt a model into a fused label it must not give.
DISTRACTOR_KINDS = frozenset(
    {"radio_siren", "lights_silent", "hazard_silent", "hazard_siren", "separated",
     "impact_static", "stop_silent", "warning_lights"}
)  # fmt: skip
FUSED_POSITIVE_KINDS = frozenset({"emergency", "collision"})
