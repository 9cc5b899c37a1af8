"""Time to contact from the growth of an object's image.

An object closing at constant speed `v` from distance `Z` has an image size `s ∝ 1/Z`, so
`d ln s / dt = v / Z = 1 / TTC`: the time to contact is the inverse of the relative growth rate,
without knowing the object's size or distance. The rate is the least-squares slope of `ln s`
over the recent history (robust to one noisy box), and the estimate is for the latest sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_SAMPLES = 3


def growth_rate(times: Sequence[float], scales: Sequence[float]) -> float | None:
    """`d ln s / dt` (1/s) fitted over the samples; None with too few or degenerate samples."""
    if len(times) != len(scales) or len(times) < MIN_SAMPLES:
        return None
    t = np.asarray(times, dtype=np.float64)
    s = np.asarray(scales, dtype=np.float64)
    if np.any(s <= 0) or float(t.max() - t.min()) <= 1e-6:
        return None
    t = t - t.mean()
    y = np.log(s)
    return float(np.dot(t, y - y.mean()) / np.dot(t, t))


def time_to_contact(
    times: Sequence[float], scales: Sequence[float], *, min_rate: float = 1e-3
) -> float | None:
    """Seconds until contact at the latest sample, or None when the object is not growing
    (receding, steady, or growing slower than `min_rate` per second)."""
    rate = growth_rate(times, scales)
    if rate is None or rate < min_rate:
        return None
    # The fitted slope is the rate at the middle of the samples; for s = c / (T - t) the rate
    # at time t is 1 / (T - t), so move the estimate forward to the latest sample.
    mid = float(np.mean(np.asarray(times, dtype=np.float64)))
    ttc = 1.0 / rate - (float(times[-1]) - mid)
    return max(ttc, 0.0)
