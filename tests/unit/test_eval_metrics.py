"""Evaluation metrics on hand-made cases whose counts are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.lab.evaluation.metrics import (
    TimedEvent,
    average_precision,
    false_alarms_per_hour,
    false_positive_rates,
    label_scores,
    macro_f1,
    match_events,
    micro_f1,
    percentile,
)

pytestmark = pytest.mark.unit

LABELS = ("a", "b", "c")
# 6 windows, 3 labels.
TRUTH = np.array(
    [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32
)
SCORES = np.array(
    [
        [0.9, 0.1, 0.0],  # a TP
        [0.4, 0.8, 0.0],  # a FN, b TP
        [0.6, 0.7, 0.0],  # a FP, b TP
        [0.2, 0.6, 0.7],  # b FP, c FP
        [0.8, 0.2, 0.1],  # a TP
        [0.1, 0.3, 0.0],  # b FN
    ]
)


def test_per_label_counts_and_f1() -> None:
    a, b, c = label_scores(TRUTH, SCORES, LABELS)
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 1, 1, 2)
    assert (b.tp, b.fp, b.fn, b.tn) == (2, 1, 1, 2)
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 1, 0, 5)
    assert a.precision == pytest.approx(2 / 3)
    assert a.recall == pytest.approx(2 / 3)
    assert a.f1 == pytest.approx(2 / 3)
    assert c.f1 == 0.0
    assert c.fpr == pytest.approx(1 / 6)
    assert math.isnan(c.ap)
    # Macro over labels present in the truth (a, b); micro pools TP=4, FP=3, FN=2.
    assert macro_f1([a, b, c]) == pytest.approx(2 / 3)
    assert micro_f1([a, b, c]) == pytest.approx(8 / 13)


def test_care_mask_drops_undecidable_entries() -> None:
    care = np.ones_like(TRUTH)
    care[1, 0] = 0.0  # the FN of "a"
    care[3, 2] = 0.0  # the FP of "c"
    a, _, c = label_scores(TRUTH, SCORES, LABELS, care=care)
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 1, 0, 2)
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 0, 0, 5)


def test_average_precision_by_hand() -> None:
    # Ranking by score: 0.9(+) 0.8(+) 0.6(-) 0.4(+) 0.2(-) 0.1(-) → (1 + 1 + 3/4) / 3.
    assert average_precision(TRUTH[:, 0], SCORES[:, 0]) == pytest.approx(11 / 12)
    assert average_precision(np.array([1, 0]), np.array([0.9, 0.1])) == 1.0
    assert average_precision(np.array([0, 1]), np.array([0.9, 0.1])) == 0.5


def test_false_positive_rate_per_kind() -> None:
    kinds = ["street", "mixed", "mixed", "radio", "street", "radio"]
    fpr = false_positive_rates(TRUTH, SCORES, kinds, LABELS, targets=("b", "c"))
    # "radio" windows: b negative in row 3 only (row 5 is positive), predicted 0.6 → FP.
    assert fpr["radio"]["b"] == {"fpr": 1.0, "fp": 1, "negatives": 1}
    assert fpr["radio"]["c"] == {"fpr": 0.5, "fp": 1, "negatives": 2}
    assert fpr["street"]["b"]["fpr"] == 0.0
    assert fpr["mixed"]["b"]["negatives"] == 0


def test_event_matching_with_collar() -> None:
    truth = [
        TimedEvent("siren", 4.0, 9.0),
        TimedEvent("siren", 20.0, 22.0),
        TimedEvent("horn", 1.0, 1.5),
    ]
    detected = [
        TimedEvent("siren", 4.5, 9.2, detected_at=5.0),  # onset + offset match, latency 1.0
        TimedEvent("siren", 20.8, 30.0, detected_at=21.0),  # onset match, offset off by 8 s
        TimedEvent("siren", 40.0, 41.0, detected_at=40.5),  # false alarm
        TimedEvent("horn", 3.0, 3.5, detected_at=3.5),  # outside the 1 s collar: FP + FN
    ]
    res = match_events(truth, detected, collar_s=1.0)
    siren, horn = res["siren"], res["horn"]
    assert (siren.tp, siren.fp, siren.fn, siren.tp_offset) == (2, 1, 0, 1)
    assert siren.latencies == pytest.approx([1.0, 1.0])
    assert siren.f1 == pytest.approx(4 / 5)
    # Onset+offset: TP 1; the offset miss is one more FP (2 in all) and one FN → 2/(2+2+1).
    assert siren.f1_offset == pytest.approx(2 / 5)
    assert (horn.tp, horn.fp, horn.fn) == (0, 1, 1)
    assert false_alarms_per_hour(siren, duration_s=1800.0) == pytest.approx(2.0)


def test_each_event_matches_once() -> None:
    truth = [TimedEvent("x", 10.0, 12.0)]
    detected = [TimedEvent("x", 10.6, 12.0), TimedEvent("x", 10.2, 12.0)]
    res = match_events(truth, detected, collar_s=1.0)["x"]
    assert (res.tp, res.fp, res.fn) == (1, 1, 0)
    assert res.latencies == pytest.approx([0.2]), "the closer onset wins"
    assert math.isnan(percentile([], 95))
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_scene_cut_shifts_the_window_grid_by_the_phase() -> None:
    """TimedEvent evaluation cuts scripts at several grid phases (onsets land at any phase live)."""
    from engines.lab.evaluation.events import cut_scene
    from engines.lab.scenes.registry import load_scenario
    from engines.window import AudioSpec, VideoSpec, WindowSpec

    spec = WindowSpec(length_s=1.0, hop_s=0.5, video=VideoSpec(frames=2, fps=2.0, height=16,
                      width=16), audio=AudioSpec(sample_rate=16_000, samples=16_000))  # fmt: skip
    scene = load_scenario("street", seed=0)
    for phase in (0.0, 0.5 / 3):
        video, audio, ends = cut_scene(scene, spec, 4.0, phase)
        assert ends[0] == pytest.approx(1.0 + phase)
        assert np.allclose(np.diff(ends), 0.5)
        assert ends[-1] <= 4.0
        assert video.shape == (len(ends), 2, 16, 16, 3)
        assert audio.shape == (len(ends), 16_000)
