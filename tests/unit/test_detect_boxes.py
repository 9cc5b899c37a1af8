"""Box conversions, class-aware NMS and decoding of detector outputs (engines/detect)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.detect.boxes import cxcywh_to_xyxy, iou_matrix, normalise, xyxy_to_cxcywh
from engines.detect.decode import DecodeSpec, decode_frame, label_scores
from engines.detect.nms import batched_nms, nms


def test_box_formats_round_trip() -> None:
    xyxy = np.array([[10, 20, 50, 80], [0, 0, 1, 1]], dtype=np.float32)
    cxcywh = xyxy_to_cxcywh(xyxy)
    np.testing.assert_allclose(cxcywh[0], [30, 50, 40, 60])
    np.testing.assert_allclose(cxcywh_to_xyxy(cxcywh), xyxy)
    np.testing.assert_allclose(normalise(xyxy, 100, 200)[0], [0.1, 0.1, 0.5, 0.4])


def test_iou() -> None:
    a = [[0, 0, 2, 2]]
    b = [[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]]
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1 / 7, 0.0, 1.0], rtol=1e-6)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0.5, 0, 10.5, 10]]
    scores = [0.6, 0.9, 0.5, 0.7]
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 3, 0, 2]
    assert nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def test_batched_nms_is_class_aware() -> None:
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11]]
    scores = [0.9, 0.8, 0.7]
    classes = [0, 1, 0]
    # The class-1 box overlaps the best class-0 box but survives; the second class-0 box does not.
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == [0, 1]


def test_decode_raw_yolo_head_in_pixels() -> None:
    names = ("person", "car", "dog")
    spec = DecodeSpec(
        layout="yolo", class_names=names, box_format="cxcywh", normalized=False,
        width=640, height=320, score_threshold=0.3, iou_threshold=0.5,
        labels={"person": "person", "car": "vehicle"}, keep_unmapped=False,
    )  # fmt: skip
    # [4 + C, N]: two car boxes overlapping (one suppressed), a person, a dog (unmapped), noise.
    cols = [
        [320, 160, 64, 32, 0.1, 0.9, 0.0],
        [322, 161, 64, 32, 0.1, 0.8, 0.0],
        [100, 100, 20, 40, 0.7, 0.1, 0.0],
        [500, 50, 10, 10, 0.0, 0.0, 0.95],
        [10, 10, 4, 4, 0.1, 0.2, 0.1],
    ]
    head = np.array(cols, dtype=np.float32).T
    dets = decode_frame(spec, [head])
    assert [(d.class_name, d.label) for d in dets] == [("car", "vehicle"), ("person", "person")]
    np.testing.assert_allclose(dets[0].box, [0.45, 0.45, 0.55, 0.55], atol=1e-6)
    assert dets[0].score == pytest.approx(0.9)
    assert label_scores(dets, ["vehicle", "person", "siren"]) == pytest.approx(
        {"vehicle": 0.9, "person": 0.7, "siren": 0.0}
    )
    # The same head transposed ([N, 4 + C]) decodes the same.
    assert decode_frame(spec, [head.T]) == dets


def test_decode_head_with_objectness() -> None:
    spec = DecodeSpec(layout="yolo_obj", class_names=("a", "b"), box_format="cxcywh",
                      score_threshold=0.3)  # fmt: skip
    rows = np.array(
        [[0.5, 0.5, 0.2, 0.2, 0.9, 0.1, 0.8], [0.2, 0.2, 0.1, 0.1, 0.2, 0.9, 0.1]],
        dtype=np.float32,
    )
    dets = decode_frame(spec, [rows])
    # Score = objectness x class score: 0.72 for the first row, 0.18 (dropped) for the second.
    assert [(d.class_name, round(d.score, 2)) for d in dets] == [("b", 0.72)]


def test_decode_end2end_and_separate_tensors() -> None:
    names = ("a", "b")
    e2e = DecodeSpec(layout="end2end", class_names=names, nms=False, score_threshold=0.5)
    rows = np.array(
        [[0.1, 0.1, 0.2, 0.2, 0.9, 1], [0.1, 0.1, 0.2, 0.2, 0.3, 0], [0, 0, 0, 0, 0, 0]],
        dtype=np.float32,
    )
    dets = decode_frame(e2e, [rows])
    assert [(d.class_name, d.label) for d in dets] == [("b", "b")]
    sep = DecodeSpec(layout="boxes", class_names=names, score_threshold=0.5)
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]], dtype=np.float32)
    per_class = np.array([[0.2, 0.8], [0.6, 0.1]], dtype=np.float32)
    dets = decode_frame(sep, [boxes, per_class])
    assert [(d.class_name, round(d.score, 2)) for d in dets] == [("b", 0.8), ("a", 0.6)]
    dets = decode_frame(sep, [boxes, np.array([0.7, 0.9]), np.array([1, 0])])
    assert [d.class_name for d in dets] == ["a", "b"]


def test_decode_rejects_wrong_shapes() -> None:
    spec = DecodeSpec(layout="yolo", class_names=("a",))
    with pytest.raises(ValueError, match="yolo head"):
        decode_frame(spec, [np.zeros((7, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match="end2end"):
        decode_frame(DecodeSpec(layout="end2end", class_names=("a",)), [np.zeros((3, 4))])
