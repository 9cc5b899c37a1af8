"""Rules that fuse engines: scene labels inferred from other engines' outputs.

A rule reads what any engines said about one stream on the same capture clock (their labels'
scores and, for detectors, their tracks with a time to contact) and scores its own label, 0 or
1, at the stream's newest capture time. The service runs those scores through the same event
hysteresis as learned labels (`engines/events.py`), under the engine name `rules`. Each rule is
a small pydantic model: its fields are its documented parameters (the `[rules.<label>]` tables
of the service config), its `score` method the whole logic.

Writing a rule: subclass `Rule`, give it a `label` default and its parameters, implement
`score(history, now)` over the `Observation`s (newest last), and add it to `RulesConfig`.

Pure logic: no I/O. Engines' results arrive in any order (each engine has its own latency);
every rule looks back over a window of capture time, so the later of two fused observations
fires it, whichever engine it came from.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engines.config import LabelThresholds
from engines.detect.tracker import Track
from engines.events import Event, EventTracker
from engines.window import event_time

HISTORY_S = 10.0  # capture time kept per stream; longer than any rule's look-back
HISTORY_MAX = 512  # observations kept per stream, whatever their times


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """What a rule sees of one track: its scene label, score and time to contact."""

    id: int
    label: str | None
    score: float
    ttc_s: float | None


@dataclass(frozen=True, slots=True)
class Observation:
    """One engine's output for one window of a stream, at capture time `time`."""

    time: float
    engine: str
    scores: Mapping[str, float]
    tracks: Sequence[TrackInfo] = ()


def track_info(track: Track, ttc_s: float | None) -> TrackInfo | None:
    """What a rule sees of a reported track, as its scene message carries it (the tracks
    `engines.detect.tracker` reports are confirmed or lost; the rules see the confirmed ones),
    or None for a lost track. The time to contact is rounded as published."""
    if track.state == "lost":
        return None
    ttc = None if ttc_s is None or not math.isfinite(ttc_s) else round(ttc_s, 3)
    return TrackInfo(id=track.id, label=track.label, score=float(track.score), ttc_s=ttc)


def observation_from_tracks(
    time: float,
    engine: str,
    scores: Mapping[str, float],
    tracks: Iterable[tuple[Track, float | None]] = (),
) -> Observation:
    """One engine's window as the rules see it: its scores and its stream's reported tracks
    with their times to contact, dated at capture time `time` (the window's `event_time`).
    The same observation as `observation_from_scene` of that window's scene message."""
    infos = [info for t, ttc in tracks if (info := track_info(t, ttc)) is not None]
    return Observation(time, engine, {k: float(v) for k, v in scores.items()}, infos)


def observation_from_scene(msg: Mapping[str, Any], labels_at: str = "window") -> Observation:
    """What the fusion rules see of one scene message (live, or recorded and replayed)."""
    window = msg["window"]
    tracks = [
        TrackInfo(
            id=int(t["id"]), label=t.get("label"), score=float(t["score"]), ttc_s=t.get("ttc_s")
        )
        for t in msg.get("tracks", ())
        if t.get("state") == "confirmed"
    ]
    at = event_time(
        "end" if labels_at == "end" else "window", float(window["start"]), float(window["end"])
    )
    return Observation(at, str(msg["engine"]), dict(msg["scores"]), tracks)


class Rule(BaseModel):
    """A fused label and its parameters; `score` says whether it holds now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | Literal["auto"] = Field(
        "auto",
        description="evaluate this rule; auto: unless a running engine already scores its label",
    )
    label: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", description="the label it scores")

    def score(self, history: Sequence[Observation], now: float) -> float:
        """1.0 when the rule holds at capture time `now`, else 0.0."""
        raise NotImplementedError


def _best(obs: Observation, labels: Iterable[str]) -> float:
    return max((float(obs.scores.get(label, 0.0)) for label in labels), default=0.0)


def _since(history: Sequence[Observation], start: float) -> list[Observation]:
    return [o for o in history if o.time >= start - 1e-9]


class ApproachingObject(Rule):
    """A tracked object whose time to contact (from its box's growth) is short."""

    label: str = "approaching_object"
    ttc_s: float = Field(3.0, gt=0, description="time to contact under which it fires")
    track_labels: list[str] = Field(
        default_factory=lambda: ["vehicle", "person"], description="track labels; [] = any"
    )
    min_score: float = Field(0.3, ge=0, le=1, description="least detection score of the track")
    recent_s: float = Field(0.5, gt=0, description="how old the track's estimate may be")

    def score(self, history: Sequence[Observation], now: float) -> float:
        """See the class docstring."""
        for obs in _since(history, now - self.recent_s):
            if any(self._closing(t) for t in obs.tracks):
                return 1.0
        return 0.0

    def _closing(self, t: TrackInfo) -> bool:
        wanted = not self.track_labels or t.label in self.track_labels
        return (
            wanted and t.score >= self.min_score and t.ttc_s is not None and t.ttc_s <= self.ttc_s
        )


class Collision(Rule):
    """A fast-growing track (time to contact under `ttc_s`) followed, within `within_s`, by an
    impact sound from any engine."""

    label: str = "collision"
    ttc_s: float = Field(1.5, gt=0, description="time to contact of a fast-growing track")
    impact_labels: list[str] = Field(
        default_factory=lambda: ["impact"], description="labels of an impact sound"
    )
    impact_score: float = Field(0.5, gt=0, le=1, description="score an impact label must reach")
    within_s: float = Field(1.5, gt=0, description="longest gap from the track to the impact")
    tolerance_s: float = Field(
        0.25, ge=0, description="an impact may be dated this much before the track's window"
    )

    def score(self, history: Sequence[Observation], now: float) -> float:
        """See the class docstring."""
        impacts = [
            o.time
            for o in _since(history, now - self.within_s)
            if _best(o, self.impact_labels) >= self.impact_score
        ]
        if not impacts:
            return 0.0
        fast = [
            o.time
            for o in _since(history, min(impacts) - self.within_s)
            if any(t.ttc_s is not None and t.ttc_s <= self.ttc_s for t in o.tracks)
        ]
        hit = any(-self.tolerance_s <= ti - tv <= self.within_s for ti in impacts for tv in fast)
        return 1.0 if hit else 0.0


class EmergencyVehicle(Rule):
    """A siren heard while flashing lights are seen or a vehicle is tracked (within
    `within_s` of each other)."""

    label: str = "emergency_vehicle"
    siren_labels: list[str] = Field(default_factory=lambda: ["siren"], description="siren labels")
    siren_score: float = Field(0.5, gt=0, le=1, description="score a siren label must reach")
    light_labels: list[str] = Field(
        default_factory=lambda: ["flashing_lights"], description="flashing-light labels"
    )
    light_score: float = Field(0.5, gt=0, le=1, description="score a light label must reach")
    vehicle_labels: list[str] = Field(
        default_factory=lambda: ["vehicle"], description="track labels that count as a vehicle"
    )
    within_s: float = Field(2.0, gt=0, description="siren and sight at most this far apart")

    def score(self, history: Sequence[Observation], now: float) -> float:
        """See the class docstring."""
        recent = _since(history, now - self.within_s)
        sirens = [o.time for o in recent if _best(o, self.siren_labels) >= self.siren_score]
        if not sirens:
            return 0.0
        seen = [
            o.time
            for o in _since(history, min(sirens) - self.within_s)
            if _best(o, self.light_labels) >= self.light_score
            or any(t.label in self.vehicle_labels for t in o.tracks)
        ]
        hit = any(abs(ts - tv) <= self.within_s for ts in sirens for tv in seen)
        return 1.0 if hit else 0.0


class RulesConfig(BaseModel):
    """The `[rules]` section: one table per rule (see each rule's fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approaching_object: ApproachingObject = Field(default_factory=ApproachingObject)  # type: ignore[arg-type]
    collision: Collision = Field(default_factory=Collision)  # type: ignore[arg-type]
    emergency_vehicle: EmergencyVehicle = Field(default_factory=EmergencyVehicle)  # type: ignore[arg-type]

    def active(self, engine_labels: Iterable[str] = ()) -> list[Rule]:
        """The rules to evaluate: those enabled, and those on `auto` whose label no running
        engine scores itself (`avfusion` learns all three)."""
        learned = set(engine_labels)
        rules: list[Rule] = [self.approaching_object, self.collision, self.emergency_vehicle]
        return [
            r
            for r in rules
            if r.enabled is True or (r.enabled == "auto" and r.label not in learned)
        ]


@dataclass(slots=True)
class RuleEvaluator:
    """One stream's rules: observations in, each rule's score at the newest capture time out."""

    rules: Sequence[Rule]
    history: deque[Observation] = field(default_factory=lambda: deque(maxlen=HISTORY_MAX))
    now: float | None = None

    @property
    def labels(self) -> list[str]:
        """The labels the rules score."""
        return [r.label for r in self.rules]

    def observe(self, obs: Observation) -> dict[str, float]:
        """Add one engine's window; return every rule's score at the newest capture time."""
        self.now = obs.time if self.now is None else max(self.now, obs.time)
        self.history.append(obs)
        while self.history and self.history[0].time < self.now - HISTORY_S:
            self.history.popleft()
        ordered = sorted(self.history, key=lambda o: o.time)
        return {r.label: r.score(ordered, self.now) for r in self.rules}


class FusedEvents:
    """One stream's rules and the lifecycle events of their labels (engine `rules`).

    Events are dated on the stream's newest capture time when a rule first held (and when it
    stopped holding, after the hysteresis). A slower engine's window can arrive when that clock
    has not moved; it is counted a microsecond later so that the event tracker does not discard
    it as a repeat of the last window.
    """

    def __init__(
        self,
        stream: str,
        rules: Sequence[Rule],
        thresholds: Mapping[str, LabelThresholds],
        *,
        counters: dict[str, int] | None = None,
        update_delta: float = 0.1,
        update_interval_s: float = 1.0,
    ) -> None:
        self.evaluator = RuleEvaluator(rules)
        self.tracker = EventTracker(
            stream,
            thresholds,
            update_delta=update_delta,
            update_interval_s=update_interval_s,
            counters=counters if counters is not None else {},
        )

    def observe(self, obs: Observation) -> list[Event]:
        """Feed one engine's window; return the rule events it causes."""
        last = self.tracker.last_time
        scores = self.evaluator.observe(obs)
        now = self.evaluator.now
        assert now is not None
        at = now if last is None or now > last else last + 1e-6
        return self.tracker.observe(at, scores)

    def close(self) -> list[Event]:
        """The stream ended: end the rules' open events."""
        return self.tracker.close()
