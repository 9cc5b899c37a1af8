"""The pipeline: results to events and scene messages, thresholds from config, accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from engines.config import LabelThresholds
from engines.window import Window, WindowSpec
from stream.config import Settings
from stream.interpret import Interpreter
from stream.metrics import Metrics
from stream.publish import messages as m
from stream.scheduler.runner import WindowResult
from tests.support.fusion_scenarios import FakeEngine, Sink

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0  # scenario start on the capture clock
HOP, LENGTH, BUDGET, HOLD = 0.5, 1.0, 0.2, 1.0


@dataclass
class Engine(FakeEngine):
    """A minimal `EngineRuntime` (the pipeline only reads its name, labels and budget)."""

    name: str = "avfusion"
    labels: tuple[str, ...] = ("emergency_vehicle", "siren")
    spec: WindowSpec = field(default_factory=lambda: WindowSpec(length_s=LENGTH, hop_s=HOP))
    budget_s: float = BUDGET


def emergency_score(start: float, end: float) -> float:
    """Fraction of the window inside the scripted emergency (4–9 s): an ideal model."""
    overlap = max(0.0, min(end, T0 + 9.0) - max(start, T0 + 4.0))
    return overlap / (end - start)


def tail_score(start: float, end: float) -> float:
    """An ideal model whose scores describe the window's last 0.3 s (`labels_at = "end"`)."""
    return emergency_score(end - 0.3, end)


def play(
    pipeline: Interpreter, phase: float, stream: str = "cam1", score_of: Any = emergency_score
) -> None:
    """Windows every hop over the 12 s `emergency` script, starting `phase` s into the grid."""
    seq, end = 0, T0 + LENGTH + phase
    while end <= T0 + 12.0:
        w = Window(stream, "avfusion", seq, end - LENGTH, end, None, None, None)
        score = score_of(w.start, w.end)
        pipeline.window_result(
            WindowResult(w, "avfusion", {"emergency_vehicle": score, "siren": score}, 0.0, 0.0, 1)
        )
        seq, end = seq + 1, end + HOP


def settings(**thresholds: dict[str, float]) -> Settings:
    return Settings.model_validate(
        {"engines": {"overrides": {"avfusion": {"thresholds": thresholds}}}}
    )


@pytest.mark.parametrize("phase", [0.0, 0.1, 0.25, 0.4])
def test_scripted_emergency_gives_one_event_within_the_contract_bounds(phase: float) -> None:
    sink = Sink()
    cfg = settings(emergency_vehicle={"on": 0.6, "off": 0.4, "hold_s": HOLD})
    pipeline = Interpreter([Engine(labels=("emergency_vehicle",))], sink, Metrics(process=False),
                        settings=cfg)  # fmt: skip
    play(pipeline, phase)
    pipeline.stream_closed("cam1", "avfusion")
    events = [x for x in sink.sent if x["type"] == "event"]
    assert [e["phase"] for e in events if e["phase"] != "update"] == ["start", "end"]
    start, end = events[0], events[-1]
    assert T0 + 4.0 <= start["start"] <= T0 + 4.0 + HOP + BUDGET
    assert T0 + 9.0 <= end["end"] <= T0 + 9.0 + HOLD + BUDGET
    assert start["id"] == end["id"] == "cam1-emergency_vehicle-1"
    for msg in sink.sent:
        m.validate(msg)


def tail_events(phase: float, labels_at: str) -> tuple[float, float]:
    """(start, end) of the one event a tail-describing ideal model gives, relative to T0."""
    sink = Sink()
    spec = WindowSpec(length_s=LENGTH, hop_s=HOP, labels_at=labels_at)  # type: ignore[arg-type]
    pipeline = Interpreter([Engine(labels=("emergency_vehicle",), spec=spec)], sink,
                        Metrics(process=False), settings=settings())  # fmt: skip
    play(pipeline, phase, score_of=tail_score)
    pipeline.stream_closed("cam1", "avfusion")
    events = [x for x in sink.sent if x["type"] == "event" and x["phase"] != "update"]
    assert [e["phase"] for e in events] == ["start", "end"]
    return events[0]["start"] - T0, events[-1]["end"] - T0


@pytest.mark.parametrize("phase", [0.0, 0.1, 0.25, 0.4])
def test_an_engine_that_describes_the_window_end_is_dated_at_the_end(phase: float) -> None:
    start, end = tail_events(phase, "end")
    assert 4.0 <= start <= 4.0 + HOP + BUDGET
    assert 9.0 <= end <= 9.0 + HOLD + BUDGET
    # Dated at the midpoint instead, what the window's end saw would be half a window early.
    early_start, early_end = tail_events(phase, "window")
    assert (early_start, early_end) == pytest.approx((start - LENGTH / 2, end - LENGTH / 2))
    if phase == 0.25:
        assert early_start < 4.0


def test_scene_messages_carry_active_labels_and_latency() -> None:
    sink = Sink()
    pipeline = Interpreter([Engine()], sink, Metrics(process=False))
    w = Window("cam1", "avfusion", 7, T0, T0 + 1, None, None, None, gaps=((T0 + 0.2, T0 + 0.3),))
    pipeline.window_result(
        WindowResult(w, "avfusion", {"emergency_vehicle": 0.9, "siren": 0.1}, 0.004, 0.012, 2)
    )
    scene = next(x for x in sink.sent if x["type"] == "scene")
    assert scene["seq"] == 7
    assert scene["active"] == ["emergency_vehicle"]
    assert scene["latency_ms"]["queue"] == 4.0
    assert scene["latency_ms"]["infer"] == 12.0
    assert scene["window"]["gaps"] == [[T0 + 0.2, T0 + 0.3]]
    assert [x["phase"] for x in sink.sent if x["type"] == "event"] == ["start"]


def test_configured_thresholds_win_over_manifest_and_default() -> None:
    sink = Sink()
    pipeline = Interpreter(
        [Engine()], sink, Metrics(process=False),
        settings=settings(siren={"on": 0.95, "off": 0.5}),
        manifest_thresholds={"avfusion": {"siren": m_th(0.2), "emergency_vehicle": m_th(0.3)}},
    )  # fmt: skip
    assert pipeline.thresholds["avfusion"]["siren"].on == 0.95
    assert pipeline.thresholds["avfusion"]["emergency_vehicle"].on == 0.3
    w = Window("cam1", "avfusion", 0, T0, T0 + 1, None, None, None)
    pipeline.window_result(
        WindowResult(w, "avfusion", {"siren": 0.9, "emergency_vehicle": 0.35}, 0, 0, 1)
    )
    assert [x["label"] for x in sink.sent if x["type"] == "event"] == ["emergency_vehicle"]


def test_manifest_threshold_tables_are_read_from_the_engine() -> None:
    @dataclass
    class Doc:
        thresholds: dict[str, dict[str, float | None]]

    @dataclass
    class Manifest:
        doc: Doc

    @dataclass
    class WithManifest(Engine):
        manifest: Manifest = field(
            default_factory=lambda: Manifest(
                Doc({"siren": {"on": 0.3, "off": None, "min_duration_s": None, "hold_s": 2.0}})
            )
        )

    pipeline = Interpreter([WithManifest()], Sink(), Metrics(process=False))
    siren = pipeline.thresholds["avfusion"]["siren"]
    assert (siren.on, siren.off, siren.hold_s) == (0.3, 0.3, 2.0)
    assert pipeline.thresholds["avfusion"]["emergency_vehicle"].on == 0.6


def m_th(on: float) -> LabelThresholds:
    return LabelThresholds.model_validate({"on": on, "off": on / 2})


def test_sent_scene_messages_count_published_or_late_and_feed_stream_figures() -> None:
    metrics = Metrics(process=False)
    sink = Sink()
    pipeline = Interpreter([Engine()], sink, metrics)
    for seq, delay in enumerate([0.05, 0.1, 0.5]):
        w = Window("cam1", "avfusion", seq, T0 + seq, T0 + seq + 1, None, None, None)
        pipeline.window_result(WindowResult(w, "avfusion", {"siren": 0.1}, 0, 0, 1))
        scene = sink.sent[-1]
        m.stamp_published(scene, w.end + delay)
        pipeline.message_sent(scene)
    windows = metrics.windows
    assert windows.labels(engine="avfusion", outcome="published")._value.get() == 2
    assert windows.labels(engine="avfusion", outcome="late")._value.get() == 1
    fig = pipeline.streams()["cam1"]["avfusion"]
    assert (fig["windows"], fig["published"], fig["late"], fig["last_seq"]) == (3, 2, 1, 2)
    assert fig["capture_to_publish_ms"]["p50"] == pytest.approx(100.0)
    assert fig["latency_ms"]["capture_to_publish"] == pytest.approx(500.0)
    pipeline.stream_closed("cam1", "avfusion")
    assert pipeline.streams() == {}


def test_stream_close_ends_open_events_and_ids_never_repeat() -> None:
    sink = Sink()
    pipeline = Interpreter([Engine(), Engine(name="other")], sink, Metrics(process=False))
    for engine in ("avfusion", "other"):
        w = Window("cam1", engine, 0, T0, T0 + 1, None, None, None)
        pipeline.window_result(WindowResult(w, engine, {"siren": 0.9}, 0, 0, 1))
    pipeline.stream_closed("cam1", "avfusion")
    pipeline.stream_closed("cam1", "other")
    w = Window("cam1", "avfusion", 0, T0 + 5, T0 + 6, None, None, None)  # reconnected
    pipeline.window_result(WindowResult(w, "avfusion", {"siren": 0.9}, 0, 0, 1))
    events = [(x["id"], x["phase"]) for x in sink.sent if x["type"] == "event"]
    assert events == [
        ("cam1-siren-1", "start"),
        ("cam1-siren-2", "start"),
        ("cam1-siren-1", "end"),
        ("cam1-siren-2", "end"),
        ("cam1-siren-3", "start"),
    ]


@dataclass
class Detector(FakeEngine):
    """A minimal detector engine: scene labels from its detections."""

    name: str = "det"
    labels: tuple[str, ...] = ("vehicle", "person")
    spec: WindowSpec = field(default_factory=lambda: WindowSpec(length_s=0.25, hop_s=0.25))
    budget_s: float = BUDGET


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_detection_and_track_metrics_follow_the_streams() -> None:
    from engines.detect.decode import Detection

    metrics = Metrics(process=False)
    pipeline = Interpreter([Detector()], Sink(), metrics)
    car = Detection((0.2, 0.2, 0.4, 0.4), 0.9, 2, "car", "vehicle")
    man = Detection((0.6, 0.5, 0.7, 0.9), 0.8, 0, "person", "person")
    frames = {"cam1": [car, man], "cam2": [car]}
    for seq in range(6):
        end = T0 + 0.25 * (seq + 1)
        for stream, dets in frames.items():
            w = Window(stream, "det", seq, end - 0.25, end, None, None, None)
            pipeline.window_result(WindowResult(w, "det", {}, 0.0, 0.0, 1, tuple(dets)))
    assert _sample(metrics, "scenestream_detections_total", engine="det", **{"class": "car"}) == 12
    assert (
        _sample(metrics, "scenestream_detections_total", engine="det", **{"class": "person"}) == 6
    )
    assert _sample(metrics, "scenestream_tracks_active", engine="det") == 3  # min_hits reached
    starts = {
        c: _sample(
            metrics, "scenestream_track_events_total", engine="det", kind="start", **{"class": c}
        )
        for c in ("car", "person")
    }
    assert starts == {"car": 2, "person": 1}
    track_windows = _sample(metrics, "scenestream_stage_seconds_count", stage="track", engine="det")
    assert track_windows == 12
    pipeline.stream_closed("cam1", "det")
    assert _sample(metrics, "scenestream_tracks_active", engine="det") == 1
    ended = _sample(
        metrics, "scenestream_track_events_total", engine="det", kind="end", **{"class": "person"}
    )
    assert ended == 1
    pipeline.stream_closed("cam2", "det")
    assert _sample(metrics, "scenestream_tracks_active", engine="det") == 0
