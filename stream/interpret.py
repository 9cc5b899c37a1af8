"""The glue after inference: results → interpretation → messages → publisher.

`Interpreter` is the scheduler's `ResultSink`. For each window it updates the stream's
`EventTracker` (one per stream and engine), hands lifecycle events and the scene message to the
publisher, and — once Redis acknowledged a scene message (`message_sent`, the publisher's
`on_sent` hook) — counts the window `published` or `late` against the engine's budget and
records capture-to-publish latency. Per-stream figures for `/api/streams` come from `streams()`.

Detector engines' windows also feed the stream's tracker (`stream/tracking.py`): tracks go into
the scene message and their lifecycle events out. Every window's scene message (published or
not) then feeds the stream's fusion rules (`engines/rules.py`), whose scores become events of
the engine `rules` through the same hysteresis as learned labels.

Wiring (composition root)::

    publisher = RedisPublisher(url, prefix, metrics, outbox_max, log_maxlen)
    pipeline = Interpreter(engines, publisher, metrics, settings=settings)
    publisher.on_sent = pipeline.message_sent
    scheduler = Scheduler(engines, metrics, pipeline, publisher)
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engines.config import LabelThresholds
from engines.detect.decode import Detection
from engines.detect.tracker import Track, TrackerParams
from engines.events import DEFAULT_THRESHOLDS, Event, EventTracker, resolve_thresholds
from engines.rules import FusedEvents, RulesConfig, observation_from_scene
from engines.runtime.interface import EngineRuntime
from engines.window import event_time
from stream.config import Settings
from stream.metrics import TRACK_EVENT_KINDS, Metrics
from stream.publish import messages
from stream.scheduler.runner import WindowResult
from stream.tracking import StreamTracks, TrackEvent

RULES_ENGINE = "rules"  # the engine name of the fusion rules' events

RECENT = 200  # windows per stream kept for the /api/streams percentiles
ID_MEMORY = 10_000  # streams whose event counters outlive them (ids never repeat)


class MessageSink(Protocol):
    """Where messages go (the Redis publisher); must not block."""

    def publish(self, message: messages.Message) -> None: ...


@dataclass(slots=True)
class _Figures:
    """Recent latency figures of one stream on one engine."""

    windows: int = 0
    published: int = 0
    late: int = 0
    last_seq: int = -1
    last_window_end: float = 0.0
    last: dict[str, float] = field(default_factory=dict)  # last scene's latency_ms
    recent_c2p_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))


def manifest_defaults(engine: EngineRuntime) -> dict[str, LabelThresholds]:
    """An engine manifest's `[thresholds.<label>]` tables (fields left out take the service's
    defaults), read from `engine.manifest.doc.thresholds` when the engine has one."""
    tables: Any = getattr(getattr(getattr(engine, "manifest", None), "doc", None), "thresholds", {})
    out: dict[str, LabelThresholds] = {}
    for label, table in (tables or {}).items():
        given = table if isinstance(table, Mapping) else table.model_dump()
        fields = {k: v for k, v in given.items() if v is not None}
        if "on" in fields and "off" not in fields:  # keep hysteresis below a lowered `on`
            fields["off"] = min(DEFAULT_THRESHOLDS.off, fields["on"])
        out[label] = LabelThresholds.model_validate(fields)
    return out


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Interpreter:
    """Interprets results and publishes them (see the module docstring)."""

    def __init__(
        self,
        engines: Sequence[EngineRuntime],
        publisher: MessageSink,
        metrics: Metrics,
        *,
        settings: Settings | None = None,
        manifest_thresholds: Mapping[str, Mapping[str, LabelThresholds]] | None = None,
        update_delta: float = 0.1,
        update_interval_s: float = 1.0,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.publish_scene = settings.redis.publish_scene if settings else True
        self.update_delta = update_delta
        self.update_interval_s = update_interval_s
        self.budgets = {e.name: e.budget_s for e in engines}
        self.labels_at = {e.name: e.spec.labels_at for e in engines}
        overrides = settings.engines.overrides if settings else {}
        manifest_thresholds = manifest_thresholds or {}
        self.thresholds: dict[str, dict[str, LabelThresholds]] = {}
        for e in engines:
            override = overrides.get(e.name)
            self.thresholds[e.name] = resolve_thresholds(
                e.labels,
                configured=override.thresholds if override else None,
                manifest=manifest_thresholds.get(e.name) or manifest_defaults(e),
            )
        self._trackers: dict[tuple[str, str], EventTracker] = {}
        self.tracking = settings.tracking.params() if settings else TrackerParams()
        self._tracks: dict[tuple[str, str], StreamTracks] = {}
        # Confirmed tracks per (stream, engine) and their sum per engine (a gauge).
        self._confirmed: dict[tuple[str, str], int] = {}
        self._confirmed_total: dict[str, int] = {}
        learned = {label for e in engines for label in e.labels}
        rules = (settings.rules if settings else RulesConfig()).active(learned)
        self.rules = rules
        rule_override = overrides.get(RULES_ENGINE)
        self.thresholds[RULES_ENGINE] = resolve_thresholds(
            [r.label for r in rules],
            configured=rule_override.thresholds if rule_override else None,
        )
        self._fusion: dict[str, FusedEvents] = {}
        self._figures: dict[str, dict[str, _Figures]] = {}
        # Event counters per stream, shared by its engines and kept after it ends (bounded)
        # so that an event id is never given twice.
        self._id_counts: OrderedDict[str, dict[str, int]] = OrderedDict()

    # -- ResultSink -------------------------------------------------------------------------
    def window_result(self, result: WindowResult) -> None:
        """Interpret one window's scores and publish its events and scene message."""
        t0 = time.perf_counter()
        w = result.window
        tracker = self._tracker(w.stream, result.engine)
        # Event times are on the capture clock: the window's midpoint, or its end for an engine
        # whose scores describe the window's end (see engines.events).
        at = event_time(self.labels_at.get(result.engine, "window"), w.start, w.end)
        events = tracker.observe(at, result.scores)
        active = tracker.active_labels()
        t1 = time.perf_counter()
        self.metrics.stage_seconds.labels(stage="interpret", engine=result.engine).observe(t1 - t0)
        tracked: list[TrackEvent] = []
        tracks = None
        if result.detections is not None:
            stage = self._stream_tracks(w.stream, result.engine)
            tracked, seen = stage.observe(at, result.detections)
            tracks = [(t, stage.ttc(t)) for t in seen]
            self._count_tracking(w.stream, result.engine, result.detections, tracked, seen)
            self.metrics.stage_seconds.labels(stage="track", engine=result.engine).observe(
                time.perf_counter() - t1
            )
        now = time.time()
        for event in events:
            self.publisher.publish(self._event(w.stream, result.engine, event, now))
        for te in tracked:
            self.publisher.publish(self._track_event(w.stream, result.engine, te, now))
        figures = self._figures.setdefault(w.stream, {}).setdefault(result.engine, _Figures())
        figures.windows += 1
        figures.last_seq = w.seq
        figures.last_window_end = w.end
        latency = messages.LatencyBreakdown(now - w.end, result.queue_s, result.infer_s)
        scene = messages.scene_message(
            stream=w.stream,
            engine=result.engine,
            seq=w.seq,
            start=w.start,
            end=w.end,
            gaps=w.gaps,
            scores=result.scores,
            active=active,
            latency=latency,
            published_at=now,
            missing=w.missing,
            detections=result.detections,
            tracks=tracks,
        )
        self._fuse(w.stream, result.engine, scene, now)
        if not self.publish_scene:
            self._count(result.engine, now - w.end, figures)
            return
        self.publisher.publish(scene)

    def stream_closed(self, stream: str, engine: str) -> None:
        """End the stream's open events on this engine and forget its state."""
        tracker = self._trackers.pop((stream, engine), None)
        now = time.time()
        if tracker is not None:
            for event in tracker.close():
                self.publisher.publish(self._event(stream, engine, event, now))
        tracks = self._tracks.pop((stream, engine), None)
        if tracks is not None:
            ended = tracks.close()
            self._count_tracking(stream, engine, (), ended, ())
            for te in ended:
                self.publisher.publish(self._track_event(stream, engine, te, now))
        if not any(key[0] == stream for key in self._trackers):
            fusion = self._fusion.pop(stream, None)
            if fusion is not None:
                for event in fusion.close():
                    self.publisher.publish(self._event(stream, RULES_ENGINE, event, now))
        per_engine = self._figures.get(stream)
        if per_engine is not None:
            per_engine.pop(engine, None)
            if not per_engine:
                del self._figures[stream]

    # -- publisher hook ---------------------------------------------------------------------
    def message_sent(self, message: messages.Message) -> None:
        """Redis acknowledged a message: account scene messages as published or late."""
        if message.get("type") != "scene":
            return
        engine = str(message["engine"])
        c2p = float(message["published_at"]) - float(message["window"]["end"])
        figures = self._figures.get(str(message["stream"]), {}).get(engine)
        self._count(engine, c2p, figures)
        if figures is not None:
            figures.last = dict(message["latency_ms"])

    # -- read API for /api/streams ----------------------------------------------------------
    def streams(self) -> dict[str, dict[str, Any]]:
        """Per stream and engine: windows, published/late counts, last latency breakdown (ms),
        capture-to-publish p50/p95 over the last windows, and the labels active now."""
        out: dict[str, dict[str, Any]] = {}
        for stream, per_engine in self._figures.items():
            for engine, f in per_engine.items():
                tracker = self._trackers.get((stream, engine))
                recent = list(f.recent_c2p_ms)
                out.setdefault(stream, {})[engine] = {
                    "windows": f.windows,
                    "published": f.published,
                    "late": f.late,
                    "last_seq": f.last_seq,
                    "last_window_end": f.last_window_end,
                    "latency_ms": f.last,
                    "capture_to_publish_ms": {
                        "p50": _percentile(recent, 0.5),
                        "p95": _percentile(recent, 0.95),
                    },
                    "active": tracker.active_labels() if tracker else [],
                }
        return out

    # -- helpers ----------------------------------------------------------------------------
    def _count(self, engine: str, c2p_s: float, figures: _Figures | None) -> None:
        late = c2p_s > self.budgets.get(engine, float("inf"))
        outcome = "late" if late else "published"
        self.metrics.windows.labels(engine=engine, outcome=outcome).inc()
        self.metrics.capture_to_publish_seconds.labels(engine=engine).observe(c2p_s)
        if figures is not None:
            figures.recent_c2p_ms.append(c2p_s * 1000)
            if late:
                figures.late += 1
            else:
                figures.published += 1

    def _tracker(self, stream: str, engine: str) -> EventTracker:
        key = (stream, engine)
        tracker = self._trackers.get(key)
        if tracker is None:
            tracker = self._trackers[key] = EventTracker(
                stream,
                self.thresholds.get(engine, {}),
                update_delta=self.update_delta,
                update_interval_s=self.update_interval_s,
                counters=self._counters(stream),
            )
        return tracker

    def _stream_tracks(self, stream: str, engine: str) -> StreamTracks:
        key = (stream, engine)
        stage = self._tracks.get(key)
        if stage is None:
            stage = self._tracks[key] = StreamTracks(
                stream, self.tracking, self._counters(stream), self.update_interval_s
            )
        return stage

    def _fuse(self, stream: str, engine: str, scene: messages.Message, now: float) -> None:
        """Feed the scene message to the stream's rules; publish the rule events it causes."""
        if not self.rules:
            return
        fusion = self._fusion.get(stream)
        if fusion is None:
            fusion = self._fusion[stream] = FusedEvents(
                stream,
                self.rules,
                self.thresholds[RULES_ENGINE],
                counters=self._counters(stream),
                update_delta=self.update_delta,
                update_interval_s=self.update_interval_s,
            )
        t0 = time.perf_counter()
        obs = observation_from_scene(scene, self.labels_at.get(engine, "window"))
        fused = fusion.observe(obs)
        self.metrics.stage_seconds.labels(stage="rules", engine=engine).observe(
            time.perf_counter() - t0
        )
        for event in fused:
            self.publisher.publish(self._event(stream, RULES_ENGINE, event, now))

    def _count_tracking(
        self,
        stream: str,
        engine: str,
        detections: Sequence[Detection],
        events: Sequence[TrackEvent],
        tracks: Sequence[Track],
    ) -> None:
        """Detections by class, track starts and ends, and the engine's confirmed tracks."""
        m = self.metrics
        for d in detections:
            m.detections.labels(engine=engine, **{"class": d.class_name}).inc()
        for te in events:
            if te.event.phase in TRACK_EVENT_KINDS:
                kind = te.event.phase
                m.track_events.labels(
                    engine=engine, kind=kind, **{"class": te.track.class_name}
                ).inc()
        key = (stream, engine)
        confirmed = sum(1 for t in tracks if t.state == "confirmed")
        before = self._confirmed.pop(key, 0)
        if tracks or key in self._tracks:
            self._confirmed[key] = confirmed
        total = self._confirmed_total.get(engine, 0) + confirmed - before
        self._confirmed_total[engine] = total
        m.tracks_active.labels(engine=engine).set(total)

    def _counters(self, stream: str) -> dict[str, int]:
        counters = self._id_counts.get(stream)
        if counters is None:
            counters = self._id_counts[stream] = {}
            while len(self._id_counts) > ID_MEMORY:
                self._id_counts.popitem(last=False)
        self._id_counts.move_to_end(stream)
        return counters

    @staticmethod
    def _track_event(stream: str, engine: str, te: TrackEvent, now: float) -> messages.Message:
        e, t = te.event, te.track
        track = messages.track_json(t, te.ttc_s)
        return messages.event_message(
            stream=stream, engine=engine, event_id=e.id, label=e.label, phase=e.phase,
            score=e.score, peak_score=e.peak_score, start=e.start, end=e.end, published_at=now,
            track={k: track[k] for k in ("id", "box", "class", "ttc_s")},
        )  # fmt: skip

    @staticmethod
    def _event(stream: str, engine: str, e: Event, now: float) -> messages.Message:
        return messages.event_message(
            stream=stream, engine=engine, event_id=e.id, label=e.label, phase=e.phase,
            score=e.score, peak_score=e.peak_score, start=e.start, end=e.end, published_at=now,
        )  # fmt: skip
