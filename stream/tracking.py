"""Tracks in the interpretation stage: one tracker per stream and detector engine, and the
lifecycle events of its tracks.

A confirmed track is announced with a `start` event labelled with its object's scene label
(`vehicle`, `person`, or the class name where no label map applies), carries `update`s at most
once per `update_interval_s` while it is seen, and `end`s when the tracker drops it (unseen for
longer than `max_age_s`) or the stream ends. Event ids are `"{stream}-{label}-track{n}"`, `n`
the stream's track id (counted per stream, never reused). Pure logic: the interpreter formats
and publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engines.detect.decode import Detection
from engines.detect.tracker import Track, Tracker, TrackerParams
from engines.events import Event, Phase


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """A lifecycle event of one track, with the track as it was then."""

    event: Event
    track: Track
    ttc_s: float | None


class StreamTracks:
    """One stream's tracker on one detector engine (see the module docstring)."""

    def __init__(
        self,
        stream: str,
        params: TrackerParams,
        counters: dict[str, int],
        update_interval_s: float = 1.0,
    ) -> None:
        self.stream = stream
        self.tracker = Tracker(params, counters)
        self.update_interval_s = update_interval_s
        self._last_sent: dict[int, float] = {}

    def observe(
        self, at: float, detections: Sequence[Detection]
    ) -> tuple[list[TrackEvent], list[Track]]:
        """Feed one window's detections (capture time `at`): the events they cause and the
        tracks to report (confirmed and lost)."""
        step = self.tracker.update(at, detections)
        out: list[TrackEvent] = []
        for track in step.ended:
            out.append(self._event(track, "end"))
        for track in step.started:
            self._last_sent[track.id] = at
            out.append(self._event(track, "start"))
        for track in step.tracks:
            last = self._last_sent.get(track.id)
            seen_now = track.last_seen == at and track.state == "confirmed"
            if seen_now and last is not None and at - last >= self.update_interval_s - 1e-9:
                self._last_sent[track.id] = at
                out.append(self._event(track, "update"))
        return out, step.tracks

    def close(self) -> list[TrackEvent]:
        """The stream ended: every track ends."""
        return [self._event(t, "end") for t in self.tracker.close()]

    def ttc(self, track: Track) -> float | None:
        """The track's time to contact under this tracker's settings."""
        return track.ttc(self.tracker.params.ttc_window_s)

    def _event(self, track: Track, phase: Phase) -> TrackEvent:
        if phase == "end":
            self._last_sent.pop(track.id, None)
        label = track.label or track.class_name
        event = Event(
            id=f"{self.stream}-{label}-track{track.id}",
            label=label,
            phase=phase,
            score=track.score,
            peak_score=track.peak_score,
            start=track.first_seen,
            end=track.last_seen if phase == "end" else None,
        )
        return TrackEvent(event, track, self.ttc(track))
