"""Ground truth: primitive intervals → fused labels, and the window label rule.

Fused labels are never written by hand: they are derived here from what the scene actually
renders, so a script cannot claim an `emergency_vehicle` it does not show and play.

* `emergency_vehicle` = time where a `siren` interval and a `flashing_lights` interval overlap.
* `collision` = an impact sound within `COLLISION_TOLERANCE_S` of the instant an approaching
  object stops; the interval is `[impact, impact + COLLISION_SPAN_S)`.

Window rule (what a window "is"): a window answers "what is happening *now*", at its end, so
the service can start an event as soon as there is evidence rather than once half a second of it
has accumulated. A durative label is positive when its intervals cover at least half of the
window's last `TAIL_S` seconds (it started at least 0.15 s before the window ends, or ended at
most 0.15 s before); the rest of the window is context (the flashes before, how the object has
grown, the siren's sweep). `collision` is an instant: positive when the impact lies in
`[start + 0.45 L, start + 0.95 L]`, so the window holds the approach before the impact and
hears it; a hop of L/2 always puts one window there. Windows where a label is present but not
decidable (tail coverage strictly between 0.2 and 0.8, i.e. a change 0.06–0.24 s before the
end, finer than a 125 ms frame step can place; or an impact outside the zone) are flagged by
`window_care` so training and evaluation can skip them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.base import LABELS, LabelInterval

COLLISION_TOLERANCE_S = 0.1
MERGE_GAP_S = 0.5
COLLISION_SPAN_S = 0.5
TAIL_S = 0.3  # the part of the window a durative label is judged on
POSITIVE_COVERAGE = 0.5  # of the tail
AMBIGUOUS_COVERAGE = (0.2, 0.8)
COLLISION_ZONE = (0.45, 0.95)  # fractions of the window length: hop L/2 always lands one
INSTANT_LABELS = frozenset({"collision"})


@dataclass(frozen=True, slots=True)
class Stop:
    """An approaching object came to rest at `t_s` (end of its approach)."""

    t_s: float


@dataclass(frozen=True, slots=True)
class Impact:
    """An impact sound starts at `t_s`."""

    t_s: float


def merge(intervals: Iterable[LabelInterval], max_gap: float = 0.0) -> list[LabelInterval]:
    """Union of intervals per label (closing gaps up to `max_gap`), sorted by label order."""
    out: list[LabelInterval] = []
    by_label: dict[str, list[tuple[float, float]]] = {}
    for iv in intervals:
        if iv.end_s > iv.start_s:
            by_label.setdefault(iv.label, []).append((iv.start_s, iv.end_s))
    for label in sorted(by_label, key=_label_order):
        spans = sorted(by_label[label])
        cur_s, cur_e = spans[0]
        for s, e in spans[1:]:
            if s <= cur_e + max_gap:
                cur_e = max(cur_e, e)
            else:
                out.append(LabelInterval(label, cur_s, cur_e))
                cur_s, cur_e = s, e
        out.append(LabelInterval(label, cur_s, cur_e))
    return out


def _label_order(label: str) -> int:
    return LABELS.index(label) if label in LABELS else len(LABELS)


def derive_truth(
    primitives: Sequence[LabelInterval], stops: Sequence[Stop], impacts: Sequence[Impact]
) -> list[LabelInterval]:
    """Primitive label intervals plus the fused labels they imply, merged per label.

    Pauses shorter than `MERGE_GAP_S` (between utterances, between honks) are bridged: a window
    of a second cannot resolve them, and an event is the whole conversation, not each phrase.
    """
    prim = merge(primitives, MERGE_GAP_S)
    sirens = [iv for iv in prim if iv.label == "siren"]
    lights = [iv for iv in prim if iv.label == "flashing_lights"]
    fused: list[LabelInterval] = []
    for s in sirens:
        for li in lights:
            lo, hi = max(s.start_s, li.start_s), min(s.end_s, li.end_s)
            if hi > lo:
                fused.append(LabelInterval("emergency_vehicle", lo, hi))
    for imp in impacts:
        if any(abs(imp.t_s - st.t_s) <= COLLISION_TOLERANCE_S for st in stops):
            fused.append(LabelInterval("collision", imp.t_s, imp.t_s + COLLISION_SPAN_S))
    return merge([*prim, *fused])


def coverage(truth: Sequence[LabelInterval], label: str, start: float, end: float) -> float:
    """Fraction of `[start, end)` covered by `label` (intervals assumed merged)."""
    total = sum(
        max(0.0, min(iv.end_s, end) - max(iv.start_s, start)) for iv in truth if iv.label == label
    )
    return total / (end - start)


def _impact_positions(truth: Sequence[LabelInterval], start: float, end: float) -> list[float]:
    """Where collision onsets fall inside the window, as fractions of its length."""
    length = end - start
    return [
        (iv.start_s - start) / length
        for iv in truth
        if iv.label == "collision" and start <= iv.start_s <= end
    ]


def _decide(
    truth: Sequence[LabelInterval], label: str, start: float, end: float
) -> tuple[float, float]:
    """(0/1 label, 1 if decidable else 0) of one label for the window `[start, end)`."""
    if label in INSTANT_LABELS:
        lo, hi = COLLISION_ZONE
        positions = _impact_positions(truth, start, end)
        on = any(lo <= p <= hi for p in positions)
        return float(on), float(on or not positions)
    c = coverage(truth, label, max(start, end - TAIL_S), end)
    undecidable = AMBIGUOUS_COVERAGE[0] < c < AMBIGUOUS_COVERAGE[1]
    return float(c >= POSITIVE_COVERAGE), 0.0 if undecidable else 1.0


def window_labels(
    truth: Sequence[LabelInterval], start: float, end: float
) -> npt.NDArray[np.float32]:
    """0/1 per label in `LABELS` order for the window `[start, end)` (see module docstring)."""
    return np.array([_decide(truth, label, start, end)[0] for label in LABELS], dtype=np.float32)


def window_care(
    truth: Sequence[LabelInterval], start: float, end: float
) -> npt.NDArray[np.float32]:
    """1 where the window's label is decidable, 0 where it is a borderline case to skip."""
    return np.array([_decide(truth, label, start, end)[1] for label in LABELS], dtype=np.float32)
