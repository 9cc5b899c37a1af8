"""Scoring a detector on hand-labelled photos (engines/lab/photos.py): expected, allowed and
false classes, the reference box's IoU, marked points claimed one box each, and the totals."""

from __future__ import annotations

import pytest

from engines.detect.decode import Detection
from engines.lab.photo_set import PHOTOS, Photo
from engines.lab.photos import (
    claimed_by_box,
    match_points,
    score_photo,
    summarise,
)

LABELS = {"person": "person", "car": "vehicle", "truck": "vehicle"}


def det(cls: str, score: float, box: tuple[float, float, float, float]) -> Detection:
    return Detection(box=box, score=score, class_id=0, class_name=cls, label=LABELS.get(cls))


def test_each_box_claims_the_nearest_free_point_inside_it() -> None:
    points = [(0.2, 0.5), (0.3, 0.5), (0.8, 0.5)]
    dets = [
        det("person", 0.6, (0.15, 0.0, 0.35, 1.0)),  # holds both left points: nearer is 0.3
        det("person", 0.9, (0.1, 0.0, 0.25, 1.0)),  # best score claims first: (0.2, 0.5)
        det("person", 0.4, (0.5, 0.0, 0.6, 1.0)),  # holds no point
        det("person", 0.3, (0.12, 0.0, 0.28, 1.0)),  # its only point is taken already
    ]
    assert claimed_by_box(dets, points) == [0, 1, None, None]  # best score first
    assert match_points(dets, points) == [0, 1, None]  # the right point is missed


def test_score_photo_counts_classes_boxes_and_points() -> None:
    photo = Photo("street", ("person",), ("truck",), None, points=((0.2, 0.5), (0.8, 0.5)),
                  exhaustive=True)  # fmt: skip
    dets = [
        det("person", 0.8, (0.1, 0.2, 0.3, 0.9)),
        det("person", 0.45, (0.4, 0.2, 0.5, 0.9)),  # a cone: on no mark
        det("truck", 0.6, (0.6, 0.0, 0.9, 0.2)),  # allowed
        det("bird", 0.4, (0.0, 0.0, 0.1, 0.1)),  # false, no scene label
        det("car", 0.38, (0.9, 0.0, 1.0, 0.1)),  # false, a false vehicle too
    ]
    low = score_photo(photo, dets, 0.35, LABELS)
    assert low["expected_found"] == ["person"]
    assert low["false_classes"] == ["bird", "car"]
    assert low["scene_expected"] == ["person"]
    assert low["scene_false"] == []  # `vehicle` is allowed through the truck
    assert (low["marked"], low["marked_found"], low["boxes_on_no_mark"]) == (2, 1, 1)
    high = score_photo(photo, dets, 0.5, LABELS)
    assert high["false_classes"] == []
    assert (high["marked_found"], high["boxes_on_no_mark"]) == (1, 0)
    # Not exhaustively marked: extra boxes are not counted as errors.
    crowd = Photo("crowd", ("person",), points=((0.2, 0.5),))
    assert score_photo(crowd, dets, 0.35, LABELS)["boxes_on_no_mark"] is None


def test_box_iou_uses_the_best_box_of_the_main_class() -> None:
    photo = Photo("one", ("car",), box=(0.0, 0.0, 0.5, 0.5))
    dets = [det("car", 0.9, (0.0, 0.0, 0.5, 0.25)), det("car", 0.5, (0.0, 0.0, 0.5, 0.5))]
    assert score_photo(photo, dets, 0.35, LABELS)["box_iou"] == pytest.approx(0.5)
    assert score_photo(photo, [], 0.35, LABELS)["box_iou"] is None
    assert score_photo(photo, [], 0.35, LABELS)["expected_missed"] == ["car"]
    nothing = Photo("wall")
    r = score_photo(nothing, dets, 0.35, LABELS)
    assert r["false_classes"] == ["car"]
    assert r["scene_false"] == ["vehicle"]


def test_summarise_adds_up() -> None:
    photo = Photo("street", ("person",), points=((0.2, 0.5), (0.8, 0.5)), exhaustive=True)
    dets = [det("person", 0.8, (0.1, 0.2, 0.3, 0.9)), det("car", 0.4, (0, 0, 0.1, 0.1))]
    rows = [score_photo(photo, dets, 0.35, LABELS), score_photo(Photo("wall"), [], 0.35, LABELS)]
    s = summarise(rows)
    assert (s["expected_objects"], s["expected_found"], s["recall"]) == (1, 1, 1.0)
    assert (s["marked"], s["marked_found"], s["boxes_on_no_mark"]) == (2, 1, 0)
    assert (s["photos_with_false_classes"], s["photos_with_false_scene_labels"]) == (1, 1)
    assert s["box_iou_mean"] is None


def test_the_hand_labels_are_consistent() -> None:
    names = [p.name for p in PHOTOS]
    assert len(set(names)) == len(names)
    for p in PHOTOS:
        assert not set(p.expected) & set(p.allowed), p.name
        assert p.box is None or (0 <= p.box[0] < p.box[2] <= 1 and 0 <= p.box[1] < p.box[3] <= 1)
        assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in p.points), p.name
        assert not p.points or p.expected, p.name  # points mark expected[0]
    vtest = [p for p in PHOTOS if p.group == "vtest"]
    assert sum(len(p.points) for p in vtest) == 44  # walkers marked by hand over 8 frames
