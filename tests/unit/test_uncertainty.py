"""Bootstrap intervals of F1 and the paired difference of two engines on the same windows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engines.lab.evaluation.cross import summarise
from engines.lab.evaluation.cross_markdown import markdown
from engines.lab.evaluation.metrics import label_scores, macro_f1
from engines.lab.evaluation.uncertainty import intervals, paired_delta, unit_counts

pytestmark = pytest.mark.unit

LABELS = ["siren", "horn"]


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _scenes(n_scenes: int, per_scene: int, seed: int, noise: float = 0.35) -> Arrays:
    """`per_scene` identical windows per scene (one sound held), so windows of a scene are as
    dependent as they can be; scores are the truth plus noise."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n_scenes, len(LABELS))) < 0.4).astype(np.float32)
    scores = np.clip(truth * 0.5 + rng.random(truth.shape) * noise + 0.2, 0, 1)
    rep = np.repeat(np.arange(n_scenes), per_scene)
    return truth[rep], scores[rep].astype(np.float32), np.ones_like(truth[rep]), rep


def test_unit_counts_sum_to_the_label_counts_and_skip_undecidable_entries() -> None:
    truth, scores, care, units = _scenes(40, 5, seed=1)
    care[::7, 0] = 0
    counts = unit_counts(truth, scores, care, np.array([0.5, 0.6]), units)
    assert counts.shape == (40, 2, 3)
    per = label_scores(truth, scores, LABELS, np.array([0.5, 0.6]), care=care)
    for j, s in enumerate(per):
        assert counts[:, j].sum(axis=0).tolist() == [s.tp, s.fp, s.fn]


def test_the_interval_holds_the_point_and_is_reproducible() -> None:
    truth, scores, care, units = _scenes(200, 1, seed=2)
    counts = unit_counts(truth, scores, care, 0.5, units)
    point = macro_f1(label_scores(truth, scores, LABELS, 0.5, care=care))
    a = intervals(counts, LABELS, "window")
    assert a == intervals(counts, LABELS, "window")
    lo, hi = a["macro_f1"]
    assert lo < point < hi
    assert 0.01 < hi - lo < 0.3
    assert (a["unit"], a["units"], a["draws"]) == ("window", 200, 1000)


def test_resampling_whole_scenes_widens_the_interval_of_dependent_windows() -> None:
    # 60 scenes of 10 identical windows: 600 windows carry the evidence of 60 scenes
    truth, scores, care, scenes = _scenes(60, 10, seed=3)
    by_scene = intervals(unit_counts(truth, scores, care, 0.5, scenes), LABELS, "scene")
    by_window = intervals(
        unit_counts(truth, scores, care, 0.5, np.arange(len(truth))), LABELS, "window"
    )
    width = {k: v["macro_f1"][1] - v["macro_f1"][0] for k, v in (("s", by_scene), ("w", by_window))}
    assert width["s"] > 2 * width["w"]  # about sqrt(10) in theory


def test_a_perfect_engine_has_no_spread_and_one_unit_is_refused() -> None:
    truth, _, care, units = _scenes(30, 2, seed=4)
    counts = unit_counts(truth, truth, care, 0.5, units)
    assert intervals(counts, LABELS, "scene")["macro_f1"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="two units"):
        intervals(counts[:1], LABELS, "scene")


def test_paired_difference_is_zero_for_the_same_engine_and_positive_for_a_better_one() -> None:
    truth, scores, care, units = _scenes(150, 4, seed=5)
    base = unit_counts(truth, scores, care, 0.5, units)
    same = paired_delta(base, base, LABELS)
    assert same["macro_f1"] == [0.0, 0.0, 0.0]
    # the better engine gets a third of the base engine's errors right, scene by scene
    better_scores = scores.copy()
    wrong = (scores >= 0.5) != (truth > 0.5)
    fix = wrong & (units[:, None] % 3 == 0)
    better_scores[fix] = truth[fix]
    better = unit_counts(truth, better_scores, care, 0.5, units)
    d = paired_delta(base, better, LABELS)
    point = macro_f1(label_scores(truth, better_scores, LABELS, 0.5, care=care)) - macro_f1(
        label_scores(truth, scores, LABELS, 0.5, care=care)
    )
    assert d["macro_f1"][0] == pytest.approx(point)
    assert 0 < d["macro_f1"][1] <= point <= d["macro_f1"][2]
    own = intervals(base, LABELS, "scene")["macro_f1"]
    assert d["macro_f1"][2] - d["macro_f1"][1] < own[1] - own[0]  # pairing cancels the scenes
    with pytest.raises(ValueError, match="shape"):
        paired_delta(base, better[:10], LABELS)


def test_markdown_shows_the_intervals_and_the_difference_table() -> None:
    truth, scores, care, units = _scenes(20, 3, seed=6)
    res = summarise(truth, care, scores, ["siren"] * len(truth), LABELS, ["music"])
    counts = unit_counts(truth, scores, care, 0.5, units)
    res.update(
        windows=len(truth),
        scenes=20,
        seed=1,
        generator="abc",
        stream_edges={},
        interval=intervals(counts, LABELS, "scene"),
        compare={"engine": "other", **paired_delta(counts, counts, LABELS)},
    )
    text = markdown({"engine": "e", "backend": "b", "threshold": 0.5, "cross": res})
    lo, hi = res["interval"]["macro_f1"]
    assert f"[{lo:.2f}, {hi:.2f}]" in text
    assert "cross: 20 scenes" in text
    assert "Difference to `other`" in text
    assert "| **macro-F1** | **+0.000 [+0.000, +0.000]** |" in text


def test_a_set_where_no_label_occurs_has_no_interval_and_no_warning() -> None:
    # e.g. the distractor scenes alone: every label is off in every window
    truth = np.zeros((20, len(LABELS)), np.float32)
    scores = np.full_like(truth, 0.7)  # every window fires both: false positives only
    counts = unit_counts(truth, scores, np.ones_like(truth), 0.5, np.arange(20) // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = intervals(counts, LABELS, "scene")
    assert all(np.isnan(result["macro_f1"]))
    assert result["labels"]["siren"] == [0.0, 0.0]  # F1 0 wherever a draw has a false positive
