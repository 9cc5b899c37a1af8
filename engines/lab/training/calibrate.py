"""Per-label decision thresholds calibrated on the validation split.

A sigmoid output of 0.5 is not each label's best operating point: a label the model is shy of
(few positives, hard distractors) peaks in F1 below it, an eager one above. After training, the
best-F1 threshold of each label on the validation windows (the training generator's `val`
split, never an evaluation set) is written to the engine manifest as `[thresholds.<label>]`
`on` (an event starts at or above it; `off` is `OFF_GAP` below, the hysteresis the service's
defaults use). `scenestream evaluate` scores windows at the manifest's `on` thresholds.

The search is limited to `RANGE`: a threshold near 0 or 1 fits the validation set's quirks,
not the label. Ties (F1 within `TIE`) go to the threshold nearest 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

RANGE = (0.3, 0.8)
STEP = 0.025
TIE = 0.002
OFF_GAP = 0.2
OFF_MIN = 0.05
DEFAULT = 0.5


def _f1(truth: npt.NDArray[np.bool_], pred: npt.NDArray[np.bool_]) -> float:
    tp = float(np.sum(truth & pred))
    fp = float(np.sum(~truth & pred))
    fn = float(np.sum(truth & ~pred))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


def best_f1_thresholds(
    truth: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    care: npt.NDArray[np.float32],
    labels: Sequence[str],
) -> dict[str, float]:
    """The best-F1 threshold per label (`RANGE`, step `STEP`); `DEFAULT` for a label without
    positives in the set (nothing to calibrate on)."""
    grid = np.round(np.arange(RANGE[0], RANGE[1] + 1e-9, STEP), 4)
    out: dict[str, float] = {}
    for j, label in enumerate(labels):
        keep = care[:, j] > 0.5
        t = truth[keep, j] > 0.5
        s = scores[keep, j]
        if not t.any():
            out[label] = DEFAULT
            continue
        f1 = np.array([_f1(t, s >= g) for g in grid])
        near = np.flatnonzero(f1 >= f1.max() - TIE)
        out[label] = float(grid[near[np.argmin(np.abs(grid[near] - DEFAULT))]])
    return out


def event_thresholds(window: dict[str, float]) -> dict[str, dict[str, float]]:
    """`[thresholds.<label>]` tables: `on` = the window threshold, `off` `OFF_GAP` below it."""
    return {
        label: {"on": round(t, 4), "off": round(max(OFF_MIN, t - OFF_GAP), 4)}
        for label, t in window.items()
    }
