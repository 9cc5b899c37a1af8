"""How far an evaluation number can be trusted: bootstrap intervals for per-label and macro F1.

Windows of one scene are not independent (a siren heard in one window is heard in the next),
so the cross-generator set is resampled by *scene*: each draw takes as many scenes as the set
has, with replacement, and sums their per-label counts. The held-out set draws each window
from its own scene, so its unit is the window. A percentile interval over `DRAWS` draws says
how much a number would move on another set of the same size from the same generator; it says
nothing about another generator.

`paired_delta` compares two engines on the same windows with the same draws: the interval of
the difference is much narrower than either engine's own interval, because both meet the same
hard scenes. A change whose delta interval straddles 0 has not been shown to help.

Pure numpy; the draws come from a fixed seed, so a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

DRAWS = 1000
LEVEL = 0.95
SEED = 0
Counts = npt.NDArray[np.int64]  # [units, labels, 3]: tp, fp, fn


def unit_counts(
    truth: npt.ArrayLike,
    scores: npt.ArrayLike,
    care: npt.ArrayLike,
    threshold: float | npt.NDArray[np.float64],
    units: npt.ArrayLike,
) -> Counts:
    """Per unit (scene or window) and label: true positives, false positives, false negatives
    at `threshold` (one, or one per label), skipping the entries `care` marks undecidable.
    Units are numbered in order of first appearance."""
    t = np.asarray(truth, dtype=np.float64) > 0.5
    p = np.asarray(scores, dtype=np.float64) >= threshold
    keep = np.asarray(care, dtype=np.float64) > 0.5
    _, unit = np.unique(np.asarray(units), return_inverse=True)
    n_units, n_labels = int(unit.max()) + 1 if len(unit) else 0, t.shape[1]
    out = np.zeros((n_units, n_labels, 3), np.int64)
    for k, hit in enumerate((t & p, ~t & p, t & ~p)):
        np.add.at(out[:, :, k], unit, (hit & keep).astype(np.int64))
    return out


def _draw_weights(n_units: int, draws: int, seed: int) -> npt.NDArray[np.float64]:
    """`[draws, n_units]`: how often each unit is taken in each resample."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_units, size=(draws, n_units))
    w = np.zeros((draws, n_units), np.float64)
    np.add.at(w, (np.arange(draws)[:, None], picks), 1.0)
    return w


def _f1(totals: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per draw and label F1 (1.0 where nothing is positive, as `LabelScores.f1`) and whether
    the label occurs in that draw."""
    tp, fp, fn = totals[..., 0], totals[..., 1], totals[..., 2]
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1e-12), 1.0)
    return f1, (tp + fn) > 0


def _macro(f1: npt.NDArray[np.float64], present: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Mean F1 over the labels present in each draw (as `metrics.macro_f1`)."""
    n = present.sum(axis=-1)
    return np.where(n > 0, (f1 * present).sum(axis=-1) / np.maximum(n, 1), np.nan)


def _interval(values: npt.NDArray[np.float64], level: float) -> list[float]:
    """The central `level` interval of the draws; NaN (written as null) when no draw has a
    value, e.g. a macro-F1 over a subset where no label occurs."""
    if np.isnan(values).all():
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _totals(counts: Counts, w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`[1 + draws, labels, 3]`: the whole set's count totals, then each resample's (rows of
    `w`)."""
    flat = counts.reshape(counts.shape[0], -1).astype(np.float64)
    both = np.concatenate([flat.sum(0, keepdims=True), w @ flat])
    return both.reshape(-1, *counts.shape[1:])


def intervals(
    counts: Counts,
    labels: Sequence[str],
    unit: str,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, Any]:
    """Percentile intervals of each label's F1 and of macro-F1 over resampled units."""
    if counts.shape[0] < 2:
        raise ValueError("a bootstrap interval needs at least two units")
    f1, present = _f1(_totals(counts, _draw_weights(counts.shape[0], draws, seed))[1:])
    return {
        "unit": unit,
        "units": int(counts.shape[0]),
        "draws": draws,
        "level": level,
        "macro_f1": _interval(_macro(f1, present), level),
        "labels": {x: _interval(f1[:, j], level) for j, x in enumerate(labels)},
    }


def paired_delta(
    base: Counts,
    other: Counts,
    labels: Sequence[str],
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, Any]:
    """`other` minus `base` (the same units, scored by two engines): the point difference of
    macro-F1 and of each label's F1, with a percentile interval over shared resamples."""
    if base.shape != other.shape:
        raise ValueError(f"counts differ in shape: {base.shape} vs {other.shape}")
    w = _draw_weights(base.shape[0], draws, seed)
    f_b, p_b = _f1(_totals(base, w))
    f_o, p_o = _f1(_totals(other, w))
    d_macro = _macro(f_o, p_o) - _macro(f_b, p_b)
    d_label = f_o - f_b
    return {
        "units": int(base.shape[0]),
        "draws": draws,
        "level": level,
        "macro_f1": [float(d_macro[0]), *_interval(d_macro[1:], level)],
        "labels": {
            x: [float(d_label[0, j]), *_interval(d_label[1:, j], level)]
            for j, x in enumerate(labels)
        },
    }
