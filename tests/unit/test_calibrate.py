"""Per-label thresholds calibrated on the validation split, and the manifest tables."""

from __future__ import annotations

import numpy as np
import pytest

from engines.lab.training.calibrate import (
    ACTION_MIN,
    ACTION_MIN_BY_LABEL,
    DISTRACTOR_FPR_MAX,
    RANGE,
    best_f1_thresholds,
    event_thresholds,
)

pytestmark = pytest.mark.unit


def test_best_f1_threshold_per_label_within_range() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    truth = (rng.random((n, 3)) < 0.3).astype(np.float32)
    scores = np.empty((n, 3), np.float32)
    # label a: positives score 0.3–0.4, negatives under 0.25: the best cut is near 0.3
    scores[:, 0] = np.where(truth[:, 0] > 0, rng.uniform(0.3, 0.4, n), rng.uniform(0, 0.25, n))
    # label b: positives above 0.75, negatives up to 0.7: the best cut is near 0.725
    scores[:, 1] = np.where(truth[:, 1] > 0, rng.uniform(0.75, 1, n), rng.uniform(0, 0.7, n))
    # label c: perfectly separated around 0.5 over a wide gap: ties go to 0.5
    scores[:, 2] = np.where(truth[:, 2] > 0, 0.95, 0.05)
    care = np.ones_like(truth)
    th = best_f1_thresholds(truth, scores, care, ["a", "b", "c"])
    assert 0.25 <= th["a"] <= 0.3
    assert 0.7 <= th["b"] <= 0.75
    assert th["c"] == 0.5
    assert all(RANGE[0] <= t <= RANGE[1] for t in th.values())


def test_unscored_windows_and_labels_without_positives() -> None:
    truth = np.array([[1, 0], [0, 0], [1, 0]], np.float32)
    scores = np.array([[0.9, 0.9], [0.1, 0.9], [0.05, 0.9]], np.float32)
    care = np.array([[1, 1], [1, 1], [0, 1]], np.float32)  # the low positive is not scored
    th = best_f1_thresholds(truth, scores, care, ["a", "b"])
    assert th["b"] == 0.5  # nothing to calibrate on
    assert th["a"] == 0.5  # every cut in range separates the scored windows: nearest 0.5


def test_event_tables_keep_hysteresis() -> None:
    tables = event_thresholds({"a": 0.3, "b": 0.15, "c": 0.7})
    assert tables["a"] == {"on": 0.3, "off": pytest.approx(0.1)}
    assert tables["b"]["off"] == 0.05  # floored: off must stay > 0
    assert tables["c"] == {"on": 0.7, "off": 0.5}
    assert all(t["off"] <= t["on"] for t in tables.values())


def test_labels_acted_on_are_calibrated_from_action_min_up() -> None:
    truth = np.array([[1], [1], [0], [0]], np.float32)
    scores = np.array([[0.42], [0.9], [0.35], [0.1]], np.float32)
    care = np.ones_like(truth)
    assert best_f1_thresholds(truth, scores, care, ["a"])["a"] < ACTION_MIN  # 0.42 is a hit
    assert best_f1_thresholds(truth, scores, care, ["a"], acted_on=["a"])["a"] >= ACTION_MIN


def test_emergency_vehicle_has_its_own_higher_floor() -> None:
    """Best F1 sits at 0.5 here; `emergency_vehicle` is not searched below its own floor."""
    truth = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], np.float32)
    scores = np.array([[0.55, 0.55], [0.98, 0.98], [0.45, 0.45], [0.1, 0.1]], np.float32)
    care = np.ones_like(truth)
    labels = ["collision", "emergency_vehicle"]
    got = best_f1_thresholds(truth, scores, care, labels, acted_on=labels)
    assert got["collision"] == pytest.approx(0.5)
    assert got["emergency_vehicle"] == ACTION_MIN_BY_LABEL["emergency_vehicle"] == 0.97


def test_a_label_acted_on_keeps_its_distractor_false_positives_within_the_target() -> None:
    """Best F1 sits at 0.5, where 3 of the 100 distractor windows fire (3 %): the label moves
    up to the first threshold at which at most 2 of them do; a label nobody acts on, or a call
    without distractor rows, keeps its best F1."""
    n_pos, n_dis = 40, 100
    pos = np.concatenate([np.full(n_pos - 10, 0.9), np.full(10, 0.51)]).astype(np.float32)
    dis = np.concatenate([[0.52, 0.95, 0.95], np.full(n_dis - 3, 0.1)]).astype(np.float32)
    truth = np.concatenate([np.ones(n_pos), np.zeros(n_dis)]).astype(np.float32)[:, None]
    scores = np.concatenate([pos, dis])[:, None]
    truth, scores = np.hstack([truth, truth]), np.hstack([scores, scores])
    care = np.ones_like(truth)
    rows = np.concatenate([np.zeros(n_pos, bool), np.ones(n_dis, bool)])
    labels = ["collision", "horn"]
    assert best_f1_thresholds(truth, scores, care, labels, acted_on=["collision"]) == {
        "collision": 0.5,
        "horn": 0.5,
    }
    got = best_f1_thresholds(truth, scores, care, labels, acted_on=["collision"], distractors=rows)
    assert got == {"collision": 0.525, "horn": 0.5}
    assert np.mean(dis >= got["collision"]) <= DISTRACTOR_FPR_MAX
    # no threshold in range gets there: the highest one
    loud = np.where(rows[:, None], 0.95, scores).astype(np.float32)
    hot = best_f1_thresholds(truth, loud, care, labels, acted_on=["collision"], distractors=rows)
    assert hot["collision"] == pytest.approx(RANGE[1])


def test_a_lasting_label_gets_its_min_duration() -> None:
    tables = event_thresholds({"a": 0.5, "b": 0.6}, {"a": 0.5})
    assert tables["a"] == {"on": 0.5, "off": 0.3, "min_duration_s": 0.5}
    assert "min_duration_s" not in tables["b"]
