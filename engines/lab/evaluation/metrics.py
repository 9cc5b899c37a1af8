"""Evaluation metrics, pure numpy: window-level multi-label scores and event-level timing.

Window level: per-label precision, recall, F1 (at a threshold), average precision (threshold
free), macro and micro F1, and false-positive rates per window kind (the distractor breakdown).

Event level (DCASE-style): a detected event matches a true one of the same label when their
onsets are within `collar_s`; the match also counts for onset+offset when the offsets are within
`max(collar_s, offset_ratio * true duration)`. Each true and each detected event matches at most
once (greedy on onset distance). Onset latency is when the detector *fired* (the end of the
window that opened the event, as the live service would) minus the true onset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.ArrayLike


@dataclass(frozen=True, slots=True)
class LabelScores:
    """Counts and scores of one label at one threshold."""

    label: str
    tp: int
    fp: int
    fn: int
    tn: int
    ap: float  # NaN when the label has no positive window

    @property
    def support(self) -> int:
        """Positive windows in the truth."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was predicted positive."""
        return _ratio(self.tp, self.tp + self.fp, empty=1.0)

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 when the label never occurs."""
        return _ratio(self.tp, self.tp + self.fn, empty=1.0)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (2TP / (2TP + FP + FN)); 1.0 when all empty."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, empty=1.0)

    @property
    def fpr(self) -> float:
        """FP / (FP + TN)."""
        return _ratio(self.fp, self.fp + self.tn, empty=0.0)

    def as_dict(self) -> dict[str, float | int | str]:
        """JSON-ready."""
        return {
            "label": self.label,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "ap": self.ap,
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num) / float(den) if den else empty


def average_precision(truth: Array, scores: Array) -> float:
    """Non-interpolated AP: mean precision at the rank of each positive (ties broken stably).

    NaN when there is no positive.
    """
    is_pos = np.asarray(truth, dtype=np.float64) > 0.5
    positives = int(is_pos.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = is_pos[order]
    precision_at_rank = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_rank[hits].sum() / positives)


def label_scores(
    truth: Array,
    scores: Array,
    labels: Sequence[str],
    threshold: float | npt.NDArray[np.float64] = 0.5,
    care: Array | None = None,
) -> list[LabelScores]:
    """Per-label counts and AP; `truth` 0/1 and `scores` probabilities, both `[N, L]`;
    `threshold` one for all labels or one per label (`[L]`).

    `care` (0/1, `[N, L]`) drops a window from one label's counts where that label is
    undecidable (e.g. a siren covering 40% of the window).
    """
    truth_b = np.asarray(truth, dtype=np.float64) > 0.5
    scores_a = np.asarray(scores, dtype=np.float64)
    keep = np.ones_like(truth_b) if care is None else np.asarray(care, dtype=np.float64) > 0.5
    pred = scores_a >= threshold
    out = []
    for j, label in enumerate(labels):
        k = keep[:, j]
        t, p = truth_b[k, j], pred[k, j]
        out.append(
            LabelScores(
                label=label,
                tp=int(np.sum(t & p)),
                fp=int(np.sum(~t & p)),
                fn=int(np.sum(t & ~p)),
                tn=int(np.sum(~t & ~p)),
                ap=average_precision(t, scores_a[k, j]),
            )
        )
    return out


def macro_f1(per_label: Sequence[LabelScores]) -> float:
    """Unweighted mean of per-label F1 over labels that occur in the truth."""
    present = [s.f1 for s in per_label if s.support > 0]
    return float(np.mean(present)) if present else float("nan")


def micro_f1(per_label: Sequence[LabelScores]) -> float:
    """F1 of the pooled counts of all labels."""
    tp = sum(s.tp for s in per_label)
    fp = sum(s.fp for s in per_label)
    fn = sum(s.fn for s in per_label)
    return _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)


def false_positive_rates(
    truth: Array,
    scores: Array,
    kinds: Sequence[str],
    labels: Sequence[str],
    targets: Sequence[str],
    threshold: float | npt.NDArray[np.float64] = 0.5,
) -> dict[str, dict[str, dict[str, float | int]]]:
    """For each window kind and each target label: how often the label fired while false.

    `{kind: {label: {"fpr": ..., "fp": ..., "negatives": ...}}}`; only windows where the label is
    false in the truth count (a kind can mix positive and negative windows).
    """
    truth_b = np.asarray(truth, dtype=np.float64) > 0.5
    scores_a = np.asarray(scores, dtype=np.float64)
    pred = scores_a >= threshold
    kinds_a = np.asarray(kinds)
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for kind in sorted(set(kinds)):
        rows = kinds_a == kind
        out[kind] = {}
        for label in targets:
            j = list(labels).index(label)
            negatives = rows & ~truth_b[:, j]
            fp = int(np.sum(negatives & pred[:, j]))
            n = int(negatives.sum())
            out[kind][label] = {"fpr": _ratio(fp, n, empty=0.0), "fp": fp, "negatives": n}
    return out


# ----------------------------------------------------------------------------- event level


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """A labelled interval in seconds; `detected_at` is when a detector fired (None for truth)."""

    label: str
    start: float
    end: float
    detected_at: float | None = None


@dataclass(slots=True)
class EventScores:
    """Event-level results for one label."""

    label: str
    tp: int = 0  # onset matches
    fp: int = 0
    fn: int = 0
    tp_offset: int = 0  # onset and offset both matched
    latencies: list[float] = field(default_factory=list)

    @property
    def f1(self) -> float:
        """Onset-only event F1."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, empty=1.0)

    @property
    def f1_offset(self) -> float:
        """Onset+offset event F1 (a match failing the offset counts as a miss and a false alarm)."""
        miss = self.tp - self.tp_offset
        return _ratio(
            2 * self.tp_offset, 2 * self.tp_offset + self.fp + self.fn + 2 * miss, empty=1.0
        )


def match_events(
    truth: Sequence[TimedEvent],
    detected: Sequence[TimedEvent],
    collar_s: float = 1.0,
    offset_ratio: float = 0.5,
) -> dict[str, EventScores]:
    """Match detections to true events per label; see the module docstring for the rules."""
    labels = sorted({e.label for e in truth} | {e.label for e in detected})
    out = {}
    for label in labels:
        t_ev = [e for e in truth if e.label == label]
        d_ev = [e for e in detected if e.label == label]
        out[label] = _match_label(label, t_ev, d_ev, collar_s, offset_ratio)
    return out


def _match_label(
    label: str,
    truth: list[TimedEvent],
    detected: list[TimedEvent],
    collar_s: float,
    offset_ratio: float,
) -> EventScores:
    pairs = sorted(
        (abs(d.start - t.start), i, j)
        for i, t in enumerate(truth)
        for j, d in enumerate(detected)
        if abs(d.start - t.start) <= collar_s
    )
    used_t: set[int] = set()
    used_d: set[int] = set()
    scores = EventScores(label)
    for _, i, j in pairs:
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        t, d = truth[i], detected[j]
        scores.tp += 1
        if abs(d.end - t.end) <= max(collar_s, offset_ratio * (t.end - t.start)):
            scores.tp_offset += 1
        fired = d.detected_at if d.detected_at is not None else d.start
        scores.latencies.append(fired - t.start)
    scores.fn = len(truth) - len(used_t)
    scores.fp = len(detected) - len(used_d)
    return scores


def false_alarms_per_hour(scores: EventScores, duration_s: float) -> float:
    """Unmatched detections per hour of evaluated media."""
    return scores.fp * 3600.0 / duration_s if duration_s > 0 else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """`q`-th percentile (0–100), NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else float("nan")
