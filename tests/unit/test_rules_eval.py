"""The rules' evaluation, pure parts: engine windows → observations (through the tracker and
time to contact) → rule scores at evaluation window ends → window metrics, on synthetic inputs
with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engines.detect.decode import Detection
from engines.detect.tracker import Tracker
from engines.lab.evaluation.rules_eval import (
    EngineWindow,
    compare_metrics,
    engine_observations,
    input_summary,
    markdown,
    rule_scores_at,
    shipped_rules,
)
from engines.lab.evaluation.rules_run import render_spec, window_ends
from engines.rules import (
    EmergencyVehicle,
    Observation,
    RulesConfig,
    TrackInfo,
    observation_from_scene,
    observation_from_tracks,
)
from engines.window import AudioSpec, VideoSpec, WindowSpec
from stream.publish import messages

pytestmark = pytest.mark.unit

CONTACT = 6.0  # the approaching box reaches the camera at t = 6 s
HOP = 0.5  # a 2 fps detector's windows


def vehicle(t: float) -> Detection:
    """A box whose size grows as 1 / (CONTACT - t): an object closing at constant speed."""
    size = 0.15 / (CONTACT - t)
    box = (0.5 - size / 2, 0.5 - size / 2, 0.5 + size / 2, 0.5 + size / 2)
    return Detection(box=box, score=0.9, class_id=2, class_name="car", label="vehicle")


def detector_windows(until: float = 5.0) -> list[EngineWindow]:
    ends = np.arange(HOP, until + 1e-9, HOP)
    return [
        EngineWindow(float(e) - HOP, float(e), {"vehicle": 0.9, "person": 0.0}, [vehicle(e)])
        for e in ends
    ]


def test_detector_windows_become_tracks_with_their_time_to_contact() -> None:
    obs = engine_observations("nanodet", "end", detector_windows())
    assert [o.time for o in obs] == pytest.approx(list(np.arange(HOP, 5.0 + 1e-9, HOP)))
    assert obs[0].tracks == []  # tentative until seen twice
    for o in obs[1:]:
        assert [(t.id, t.label) for t in o.tracks] == [(1, "vehicle")]
    for o in obs[3:]:  # three samples within the 1 s fit window
        ttc = o.tracks[0].ttc_s
        assert ttc is not None
        assert ttc == pytest.approx(CONTACT - o.time, rel=0.15)


def test_audio_windows_are_dated_at_their_midpoint_and_carry_no_tracks() -> None:
    w = EngineWindow(1.0, 1.975, {"impact": 0.8})
    (o,) = engine_observations("yamnet", "window", [w])
    assert o.time == pytest.approx(1.4875)
    assert o.tracks == []
    assert o.scores == {"impact": 0.8}


def test_observation_from_tracks_is_what_the_scene_message_gives_the_rules() -> None:
    tracker = Tracker()
    tracks = []
    for k in range(4):
        step = tracker.update(k * HOP, [vehicle(k * HOP)])
        tracks = [(t, t.ttc(1.0)) for t in step.tracks]
    direct = observation_from_tracks(1.5, "nanodet", {"vehicle": 0.9}, tracks)
    msg = messages.scene_message(
        stream="s", engine="nanodet", seq=3, start=1.0, end=1.5, gaps=(),
        scores={"vehicle": 0.9}, active=(), latency=messages.LatencyBreakdown(0.0, 0.0, 0.0),
        published_at=0.0, detections=(), tracks=tracks,
    )  # fmt: skip
    replayed = observation_from_scene(msg, "end")
    assert direct.time == replayed.time
    assert list(direct.tracks) == list(replayed.tracks)
    assert direct.tracks[0].ttc_s is not None


def test_approaching_object_holds_once_the_time_to_contact_is_short() -> None:
    obs = engine_observations("nanodet", "end", detector_windows())
    rules = shipped_rules()
    ends = [2.0, 2.5, 3.5, 4.0, 5.0]
    scores = rule_scores_at(obs, rules, ends)
    col = [r.label for r in rules].index("approaching_object")
    # TTC ≈ 6 - t: over the rule's 3 s from t = 3 on.
    assert scores[:, col].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_collision_needs_the_impact_after_the_fast_growing_track() -> None:
    video = engine_observations("nanodet", "end", detector_windows())
    impact = Observation(5.0, "yamnet", {"impact": 0.9})
    early = Observation(1.0, "yamnet", {"impact": 0.9})  # no fast track before it
    rules = shipped_rules()
    col = [r.label for r in rules].index("collision")
    ends = [1.0, 4.5, 5.0]
    assert rule_scores_at([*video, early], rules, ends)[:, col].tolist() == [0.0, 0.0, 0.0]
    assert rule_scores_at([*video, impact], rules, ends)[:, col].tolist() == [0.0, 0.0, 1.0]


def test_rule_score_at_a_time_is_that_of_the_latest_observation_before_it() -> None:
    rules = [EmergencyVehicle.model_validate({})]
    siren = Observation(2.0, "yamnet", {"siren": 0.9})
    car = Observation(2.5, "nanodet", {}, [TrackInfo(1, "vehicle", 0.8, None)])
    quiet = Observation(5.0, "yamnet", {"siren": 0.0})
    # Given out of order: the rules take them in capture order.
    scores = rule_scores_at([quiet, car, siren], rules, [0.5, 2.0, 2.5, 3.0, 4.9, 5.0])
    assert scores[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]


def test_metrics_count_rule_and_learned_windows_against_the_same_truth() -> None:
    labels = ["approaching_object", "collision"]
    truth = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], np.float32)
    care = np.array([[1, 1], [1, 1], [1, 1], [0, 1]], np.float32)
    rule = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], np.float32)
    learned = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.1], [0.7, 0.9]], np.float32)
    out = compare_metrics(truth, care, rule, learned, labels)
    r, lr = out["approaching_object"]["rule"], out["approaching_object"]["learned"]
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (1, 1, 1, 0)  # window 4 not scored
    assert (lr["tp"], lr["fp"], lr["fn"]) == (2, 0, 0)
    c = out["collision"]["rule"]
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (1, 0, 1, 2)
    assert c["precision"] == 1.0
    assert c["recall"] == 0.5


def test_markdown_puts_each_rule_next_to_the_learned_label() -> None:
    obs = engine_observations("nanodet", "end", detector_windows())
    truth = np.ones((2, 1), np.float32)
    metrics = compare_metrics(truth, truth, np.array([[1.0], [0.0]], np.float32), None, ["x"])
    learned = compare_metrics(truth, truth, truth, truth, ["x"])["x"]["learned"]
    result = {
        "set": "cross", "scenes": 1, "windows": 2, "threshold": 0.5, "compare": "avfusion",
        "labels": ["x"], "learned": {"x": learned},
        "configs": [{"inputs": ["yamnet", "nanodet"], "labels": metrics}],
        "inputs": {"nanodet": input_summary(obs)},
    }  # fmt: skip
    text = markdown(result)
    assert "| x | rule over yamnet + nanodet | 1.000 | 0.500 | 0.667 | 2 | 1 | 0 | 1 |" in text
    assert "| x | `avfusion` learned | 1.000 | 1.000 | 1.000 | 2 | 2 | 0 | 0 |" in text
    assert f"| nanodet | {len(obs)} | {len(obs) - 1} | vehicle {len(obs) - 1} |" in text
    summary = input_summary(obs)
    assert summary["windows_with_tracks"] == len(obs) - 1
    assert summary["track_windows_by_label"] == {"vehicle": len(obs) - 1}
    assert summary["scores_ge_threshold"] == {"person": 0, "vehicle": len(obs)}


def test_shipped_rules_are_all_three_whatever_enabled_says() -> None:
    cfg = RulesConfig.model_validate({"collision": {"enabled": False}})
    assert [r.label for r in shipped_rules(cfg)] == [
        "approaching_object", "collision", "emergency_vehicle",
    ]  # fmt: skip


def test_each_engine_cuts_its_own_grid_and_a_scene_is_drawn_for_the_largest_frames() -> None:
    assert window_ends(WindowSpec(1.0, 0.5), 3.0) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert window_ends(WindowSpec(0.975, 0.4875), 2.0) == [0.975, 1.4625, 1.95]
    av = WindowSpec(1.0, 0.5, VideoSpec(8, 8.0, 64, 64), AudioSpec(16000, 16000), "end")
    det = WindowSpec(0.5, 0.5, VideoSpec(1, 2.0, 416, 416), None, "end")
    spec = render_spec([av, det], av)
    assert spec.video is not None
    assert (spec.video.fps, spec.video.height, spec.video.width) == (8.0, 416, 416)
    assert spec.audio == av.audio
    assert spec.hop_s == 0.5
