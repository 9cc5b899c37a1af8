"""The `sync` test pattern: square position and marks are known functions of time."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from engines.lab.scenes.sync import (
    MARK_PERIOD_S,
    SQUARE_RGB,
    SyncScene,
    in_flash,
    mark_times,
    square_center,
)

pytestmark = pytest.mark.unit


def red_center_x(frame: npt.NDArray[np.uint8]) -> float:
    mask = (frame[..., 0] > 150) & (frame[..., 1] < 100)
    return float(np.nonzero(mask)[1].mean()) / float(frame.shape[1])


@pytest.mark.parametrize("t", [0.1, 0.9, 1.7, 2.5, 3.3])
def test_square_is_drawn_where_square_center_says(t: float) -> None:
    frame = SyncScene().render_video(t, 480, 640)
    assert red_center_x(frame) == pytest.approx(square_center(t)[0], abs=2 / 640)
    assert tuple(frame[240, round(square_center(t)[0] * 640)]) == SQUARE_RGB


def test_flash_frames_are_white_and_only_at_marks() -> None:
    scene = SyncScene()
    for n in range(0, 200):
        t = n / 30
        white = bool((scene.render_video(t, 48, 64) == 255).all())
        assert white == in_flash(t) == (n % 60 == 0)


def test_click_starts_exactly_at_each_mark() -> None:
    audio = SyncScene(seed=3).render_audio(0.5, 48_000 * 6, 48_000)
    onsets = np.flatnonzero((np.abs(audio[1:]) > 0.5) & (np.abs(audio[:-1]) <= 0.5)) + 1
    assert list(0.5 + onsets / 48_000) == pytest.approx(mark_times(0.5, 6.5))
    assert mark_times(0.0, 6.0) == [0.0, MARK_PERIOD_S, 2 * MARK_PERIOD_S]
