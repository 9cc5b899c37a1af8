"""The training loop's random filter on the log-mel: one smooth gain curve per row across the
mel axis, the same in every frame, within ±FILTER_DB, floored like the front end."""

from __future__ import annotations

import numpy as np
import torch

from engines.lab.training.augment import (
    DB_TO_LN_POWER,
    FILTER_DB,
    SILENT_LOGMEL,
    random_filter,
)


def test_each_row_gets_its_own_smooth_curve_constant_in_time_and_within_bounds() -> None:
    logmel = torch.zeros(32, 1, 64, 50)
    out = random_filter(logmel, torch.Generator().manual_seed(0))
    assert out.shape == logmel.shape
    curve_db = (out - logmel)[:, 0] / DB_TO_LN_POWER  # [B, M, F]
    assert torch.allclose(curve_db, curve_db[:, :, :1].expand_as(curve_db), atol=1e-5)
    curves = curve_db[:, :, 0].numpy()
    assert np.abs(curves).max() <= FILTER_DB + 1e-4
    assert np.abs(curves).max() > FILTER_DB / 2  # it does filter
    # Piecewise linear between at most 6 points: the slope changes at no more than 4 bins.
    kinks = (np.abs(np.diff(curves, n=2, axis=1)) > 1e-3).sum(axis=1)
    assert kinks.max() <= 2 * 4  # a kink between two bins shows in up to two second differences
    assert len({tuple(np.round(c, 3)) for c in curves}) == len(curves)  # rows differ


def test_silence_stays_silent_and_the_draw_is_reproducible() -> None:
    logmel = torch.full((4, 1, 16, 10), SILENT_LOGMEL)
    assert torch.all(random_filter(logmel, torch.Generator().manual_seed(1)) >= SILENT_LOGMEL)
    a = random_filter(torch.zeros(4, 1, 16, 10), torch.Generator().manual_seed(5))
    b = random_filter(torch.zeros(4, 1, 16, 10), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
