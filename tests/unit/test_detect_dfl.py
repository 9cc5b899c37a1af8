"""The `dfl` detector head (NanoDet/GFL distribution-focal boxes): grid-cell centres, the
softmax expectation over distance bins, and whole-frame decoding (engines/detect/decode.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.detect.decode import DecodeSpec, decode_frame, dfl_centres, dfl_distances

BIG = 30.0  # a logit that makes its bin's softmax weight ~1


def one_hot(bins: list[int], reg_max: int) -> np.ndarray:
    """Logits `[4 (R + 1)]` that put each side's mass on one bin."""
    out = np.zeros((4, reg_max + 1), np.float32)
    for side, b in enumerate(bins):
        out[side, b] = BIG
    return out.reshape(-1)


def test_centres_run_level_by_level_row_major() -> None:
    centres, strides = dfl_centres(64, 32, (8, 16), 0.5)
    assert len(centres) == 4 * 8 + 2 * 4
    np.testing.assert_allclose(centres[0], [4, 4])
    np.testing.assert_allclose(centres[1], [12, 4])  # x runs first
    np.testing.assert_allclose(centres[8], [4, 12])  # then the next row
    np.testing.assert_allclose(centres[32], [8, 8])  # stride 16 starts after 4 x 8 cells
    assert strides[31] == 8
    assert strides[32] == 16
    # NanoDet-Plus puts the centre at the cell's corner; sizes that do not divide round up.
    corner, _ = dfl_centres(20, 20, (8,), 0.0)
    assert len(corner) == 9
    np.testing.assert_allclose(corner[4], [8, 8])
    assert dfl_centres(8, 8, (), 0.5)[0].shape == (0, 2)


def test_distances_are_the_expectation_over_bins() -> None:
    logits = np.stack([one_hot([0, 1, 2, 4], 4), np.zeros(20, np.float32)])
    d = dfl_distances(logits, 4)
    np.testing.assert_allclose(d[0], [0, 1, 2, 4], atol=1e-6)
    np.testing.assert_allclose(d[1], [2, 2, 2, 2], atol=1e-6)  # uniform: the mean bin
    # Two equal bins: half-way between them.
    two = np.full((4, 5), -BIG, np.float32)
    two[:, 1] = two[:, 2] = 0.0
    np.testing.assert_allclose(dfl_distances(two.reshape(1, -1), 4)[0], [1.5] * 4, atol=1e-6)
    with pytest.raises(ValueError, match=r"must be \[N, 20\]"):
        dfl_distances(np.zeros((2, 16)), 4)


def spec(**kw: object) -> DecodeSpec:
    base: dict[str, object] = dict(
        layout="dfl", class_names=("person", "car"), width=32.0, height=32.0, normalized=False,
        strides=(8, 16), reg_max=4, center_offset=0.5, score_threshold=0.3,
        labels={"person": "person", "car": "vehicle"},
    )  # fmt: skip
    return DecodeSpec(**{**base, **kw})  # type: ignore[arg-type]


def head() -> np.ndarray:
    """A 32x32 input, strides 8 and 16 (16 + 4 rows), 2 classes, reg_max 4: a car at the
    stride-8 cell (x 1, y 1) and a person at the stride-16 cell (x 1, y 0)."""
    rows = np.zeros((20, 2 + 20), np.float32)
    rows[:, :2] = 0.01
    rows[:, 2:] = np.tile(one_hot([0, 0, 0, 0], 4), (20, 1))
    car = 1 * 4 + 1  # centre (12, 12); sides 1, 1, 1, 0 bins of 8 px
    rows[car, :2] = [0.05, 0.9]
    rows[car, 2:] = one_hot([1, 1, 1, 0], 4)
    person = 16 + 1  # centre (24, 8); sides 1, 0, 0.5, 2 bins of 16 px
    rows[person, :2] = [0.6, 0.1]
    logits = one_hot([1, 0, 0, 2], 4).reshape(4, 5)
    logits[2, :] = -BIG
    logits[2, 0] = logits[2, 1] = 0.0  # half-way between bins 0 and 1
    rows[person, 2:] = logits.reshape(-1)
    return rows


def test_decodes_boxes_scores_and_labels() -> None:
    dets = decode_frame(spec(), [head()])
    assert [(d.class_name, d.label) for d in dets] == [("car", "vehicle"), ("person", "person")]
    assert dets[0].score == pytest.approx(0.9)
    np.testing.assert_allclose(dets[0].box, np.array([4, 4, 20, 12]) / 32, atol=1e-5)
    # The person's box (8, 8, 32, 40) leaves the frame at the bottom: clipped to it.
    np.testing.assert_allclose(dets[1].box, [0.25, 0.25, 1.0, 1.0], atol=1e-5)
    assert decode_frame(spec(score_threshold=0.7), [head()])[0].class_name == "car"
    assert len(decode_frame(spec(score_threshold=0.7), [head()])) == 1
    assert decode_frame(spec(score_threshold=0.95), [head()]) == []


def test_overlapping_rows_are_suppressed() -> None:
    rows = head()
    rows[1 * 4 + 2] = rows[1 * 4 + 1]  # the car again from the next cell: shifted 8 px
    rows[1 * 4 + 2, 1] = 0.8
    rows[1 * 4 + 2, 2:] = one_hot([2, 1, 0, 0], 4)  # ... and the same box
    dets = decode_frame(spec(), [rows])
    assert [d.class_name for d in dets] == ["car", "person"]
    assert len(decode_frame(spec(nms=False), [rows])) == 3


def test_a_head_that_does_not_fit_the_grid_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"dfl head must be \[20, 22\]"):
        decode_frame(spec(), [head()[:-1]])
    with pytest.raises(ValueError, match=r"dfl head must be \[80, 22\]"):
        decode_frame(spec(width=64.0, height=64.0), [head()])
