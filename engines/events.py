"""Scores to lifecycle events: per stream and label, a small hysteresis state machine.

Pure logic (no asyncio, no I/O). For each label of one stream on one engine:

- idle → pending when the score reaches `on`; pending → active (`start`) once it has stayed at or
  above `on` for `min_duration_s`; the event's `start` is the window time where it first crossed.
- active: `update` when the score or the peak moved by `update_delta` since the last message,
  at most once per `update_interval_s` (so a flickering score does not flood consumers).
- active → ended (`end`) once the score has stayed under `off` for `hold_s`; the event's `end`
  is the window time where it first went under `off`. A score back at or above `off` during the
  hold keeps the event going.

"Window time" is whatever capture-clock time the caller attaches to a window; the service's
interpretation stage uses `WindowSpec.event_time`: for an engine whose scores describe the whole
window, its midpoint, the best single estimate of when what the window saw happened (an onset
detected in `[t-1, t]` is reported near `t-0.5`, not up to a whole window late), as in the
README's event example; for one whose scores describe the window's end (`labels_at = "end"`,
like `avfusion`), its end, the moment by which the window has seen it. Event ids are stable:
`"{stream}-{label}-{n}"` with `n` counting that label's events on that stream from 1. The
counters can be shared (`counters`) by the trackers of one stream on several engines, and across
a stream's reconnections, so that an id is never given twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from engines.config import LabelThresholds

Phase = Literal["start", "update", "end"]

DEFAULT_THRESHOLDS = LabelThresholds.model_validate({})  # on 0.6, off 0.4, min_duration 0, hold 1 s


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle message of a labelled stretch of a stream (capture-clock times)."""

    id: str
    label: str
    phase: Phase
    score: float
    peak_score: float
    start: float
    end: float | None


def resolve_thresholds(
    labels: Iterable[str],
    *,
    configured: Mapping[str, LabelThresholds] | None = None,
    manifest: Mapping[str, LabelThresholds] | None = None,
    default: LabelThresholds = DEFAULT_THRESHOLDS,
) -> dict[str, LabelThresholds]:
    """Thresholds per label: configuration (`engines.overrides[engine].thresholds`) wins over
    the engine manifest's defaults, which win over the global default."""
    configured = configured or {}
    manifest = manifest or {}
    return {label: configured.get(label) or manifest.get(label) or default for label in labels}


@dataclass(slots=True)
class _LabelState:
    thresholds: LabelThresholds
    count: int = 0  # `n` of the current (or last) event's id
    pending_since: float | None = None  # first window at/above `on`, not yet started
    active: bool = False
    start: float = 0.0
    peak: float = 0.0
    below_since: float | None = None  # first window under `off` while active
    last_sent_score: float = 0.0
    last_sent_peak: float = 0.0
    last_sent_at: float = 0.0
    last_score: float = 0.0


@dataclass(slots=True)
class EventTracker:
    """Turns one stream's per-window scores (one engine) into `start`/`update`/`end` events."""

    stream: str
    thresholds: Mapping[str, LabelThresholds]
    update_delta: float = 0.1
    update_interval_s: float = 1.0
    counters: dict[str, int] = field(default_factory=dict)  # label -> events so far (shared)
    _labels: dict[str, _LabelState] = field(default_factory=dict, init=False)
    last_time: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        for label, th in self.thresholds.items():
            if th.off > th.on:
                raise ValueError(f"{label}: off ({th.off}) must not exceed on ({th.on})")
            self._labels[label] = _LabelState(thresholds=th)

    def active_labels(self) -> list[str]:
        """Labels with an event in progress (started and not yet ended)."""
        return [label for label, st in self._labels.items() if st.active]

    def observe(self, time: float, scores: Mapping[str, float]) -> list[Event]:
        """Feed one window's scores (at its capture-clock end `time`); return new events.

        Windows older than the last one seen are ignored (a late window cannot rewrite history).
        Labels the tracker was not configured for are ignored.
        """
        if self.last_time is not None and time <= self.last_time:
            return []
        self.last_time = time
        events: list[Event] = []
        for label, st in self._labels.items():
            score = scores.get(label)
            if score is None:
                continue
            event = self._step(label, st, time, float(score))
            if event is not None:
                events.append(event)
        return events

    def close(self, time: float | None = None) -> list[Event]:
        """The stream ended: end every active event (at the time it went under `off`, else at
        `time` or the last window seen) and forget pending ones."""
        at = time if time is not None else (self.last_time or 0.0)
        events: list[Event] = []
        for label, st in self._labels.items():
            st.pending_since = None
            if st.active:
                end = st.below_since if st.below_since is not None else at
                events.append(self._end(label, st, end))
        return events

    def _step(self, label: str, st: _LabelState, time: float, score: float) -> Event | None:
        th = st.thresholds
        st.last_score = score
        if not st.active:
            if score < th.on:
                st.pending_since = None
                return None
            if st.pending_since is None:
                st.pending_since = time
            if time - st.pending_since + 1e-9 < th.min_duration_s:
                return None
            return self._start(label, st, time, score)
        st.peak = max(st.peak, score)
        if score < th.off:
            if st.below_since is None:
                st.below_since = time
            if time - st.below_since + 1e-9 >= th.hold_s:
                return self._end(label, st, st.below_since)
            return None
        st.below_since = None
        return self._maybe_update(label, st, time, score)

    def _start(self, label: str, st: _LabelState, time: float, score: float) -> Event:
        assert st.pending_since is not None
        st.count = self.counters[label] = self.counters.get(label, 0) + 1
        st.active = True
        st.start = st.pending_since
        st.pending_since = None
        st.below_since = None
        st.peak = score
        st.last_sent_score, st.last_sent_peak, st.last_sent_at = score, score, time
        return Event(self._id(label, st), label, "start", score, score, st.start, None)

    def _maybe_update(self, label: str, st: _LabelState, time: float, score: float) -> Event | None:
        moved = (
            abs(score - st.last_sent_score) >= self.update_delta
            or st.peak - st.last_sent_peak >= self.update_delta
        )
        if not moved or time - st.last_sent_at < self.update_interval_s:
            return None
        st.last_sent_score, st.last_sent_peak, st.last_sent_at = score, st.peak, time
        return Event(self._id(label, st), label, "update", score, st.peak, st.start, None)

    def _end(self, label: str, st: _LabelState, end: float) -> Event:
        st.active = False
        st.below_since = None
        return Event(self._id(label, st), label, "end", st.last_score, st.peak, st.start, end)

    def _id(self, label: str, st: _LabelState) -> str:
        return f"{self.stream}-{label}-{st.count}"
