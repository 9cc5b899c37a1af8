"""Ground truth per window under the model card's definition, pure.

A label is on for a window when its spans cover at least half of the window's last `tail_s`
(0.3 s): the window says what happens at its end. Windows too close to that line to call
(coverage within `AMBIGUOUS` of one half), or whose tail is mostly in a "don't care" span of the
label (an object approaching too slowly to tell, the aftermath of an impact), are not scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

Span = tuple[float, float]
TAIL_S = 0.3
AMBIGUOUS = 0.2  # coverage in (0.3, 0.7) of the tail: the boundary falls mid-tail


def coverage(spans: Sequence[Span], start: float, end: float) -> float:
    """Fraction of `[start, end]` covered by the union of `spans`."""
    if end <= start:
        return 0.0
    cut = sorted((max(s, start), min(e, end)) for s, e in spans if e > start and s < end)
    total, cur_s, cur_e = 0.0, None, None
    for s, e in cut:
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        total += cur_e - cur_s
    return total / (end - start)


def window_truth(
    on: Mapping[str, Sequence[Span]],
    dont_care: Mapping[str, Sequence[Span]],
    labels: Sequence[str],
    end: float,
    tail_s: float = TAIL_S,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(labels 0/1, care 0/1) of the window ending at `end`, in `labels` order."""
    y = np.zeros(len(labels), np.float32)
    care = np.ones(len(labels), np.float32)
    for j, label in enumerate(labels):
        c = coverage(on.get(label, ()), end - tail_s, end)
        y[j] = 1.0 if c >= 0.5 else 0.0
        if abs(c - 0.5) < AMBIGUOUS and 0.0 < c < 1.0:
            care[j] = 0.0
        both = list(on.get(label, ())) + list(dont_care.get(label, ()))
        if y[j] == 0 and coverage(both, end - tail_s, end) >= 0.5:
            care[j] = 0.0
    return y, care


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """Spans where both `a` and `b` are on."""
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if e > s:
                out.append((s, e))
    return sorted(out)


def spans_where(times: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> list[Span]:
    """Spans of consecutive `True` samples of a regularly sampled condition."""
    if len(times) == 0:
        return []
    step = float(times[1] - times[0]) if len(times) > 1 else 0.0
    out: list[Span] = []
    start = None
    for t, m in zip(times, mask, strict=True):
        if m and start is None:
            start = float(t)
        elif not m and start is not None:
            out.append((start, float(t)))
            start = None
    if start is not None:
        out.append((start, float(times[-1]) + step))
    return out
