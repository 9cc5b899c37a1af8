"""A per-stream multi-object tracker: ByteTrack-style association over IoU.

Each frame's detections (from one detector on one stream) are split by score: `high` ones may
start tracks, `low` ones (at least `low_score`) can only keep an existing track alive, which
carries a track through a partial occlusion where the detector's confidence dips. Per frame:

1. every track's box is predicted forward with its smoothed velocity (centre and size);
2. tracks (confirmed, tentative and recently lost) are matched to high detections of the same
   class by IoU with the prediction, greedily from the best overlap, at least `match_iou`;
3. confirmed tracks left over are matched to low detections the same way;
4. high detections left over start tentative tracks; a tentative track is confirmed (and gets
   announced: `started`) after `min_hits` matched frames, and dropped if it misses one before;
5. a confirmed track unmatched for longer than `max_age_s` ends (`ended`); until then it is
   `lost` and can be picked up again with the same id.

Track ids count from 1 and never repeat; trackers given the same `counters` (a stream's, kept
across its reconnections) share the count. Times are capture-clock seconds. Pure
logic: no I/O; one tracker per stream and engine, fed in capture order.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engines.detect.boxes import iou_matrix
from engines.detect.decode import Box, Detection
from engines.detect.ttc import time_to_contact

State = Literal["tentative", "confirmed", "lost"]
HISTORY = 16  # scale samples kept per track for time to contact
TRACK_COUNTER = "__track__"  # key in shared `counters` (the others are labels, never this)


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Association thresholds and track lifetimes (the service's `[tracking]` section)."""

    high_score: float = 0.5
    low_score: float = 0.1
    match_iou: float = 0.3
    min_hits: int = 2
    max_age_s: float = 1.0
    ttc_window_s: float = 1.0
    velocity_smoothing: float = 0.5  # weight of the newest velocity in the running estimate


@dataclass(slots=True)
class Track:
    """One object followed across frames (boxes are `xyxy` fractions of the frame)."""

    id: int
    class_id: int
    class_name: str
    label: str | None
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    state: State = "tentative"
    peak_score: float = 0.0
    velocity: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # cx, cy, w, h per s
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def predicted(self, time: float) -> Box:
        """The box extrapolated to `time` with the smoothed velocity."""
        cx, cy, w, h = _cxcywh(self.box)
        dt = max(0.0, time - self.last_seen)
        vx, vy, vw, vh = self.velocity
        return _xyxy(cx + vx * dt, cy + vy * dt, max(w + vw * dt, 1e-4), max(h + vh * dt, 1e-4))

    def ttc(self, window_s: float) -> float | None:
        """Time to contact (s) from the growth of the box over the last `window_s`."""
        recent = [(t, s) for t, s in self.history if self.last_seen - t <= window_s + 1e-9]
        if len(recent) < 3:
            return None
        return time_to_contact([t for t, _ in recent], [s for _, s in recent])


@dataclass(frozen=True, slots=True)
class TrackerStep:
    """What one frame changed: tracks confirmed, tracks ended, and the confirmed tracks seen
    or still held (lost, within `max_age_s`)."""

    started: list[Track]
    ended: list[Track]
    tracks: list[Track]


class Tracker:
    """ByteTrack-style tracker for one stream's detections (see the module docstring)."""

    def __init__(
        self, params: TrackerParams | None = None, counters: dict[str, int] | None = None
    ) -> None:
        self.params = params or TrackerParams()
        self._tracks: list[Track] = []
        self._counters = counters if counters is not None else {}
        self.last_time: float | None = None

    @property
    def tracks(self) -> list[Track]:
        """Every live track (tentative, confirmed and lost)."""
        return list(self._tracks)

    def update(self, time: float, detections: Sequence[Detection]) -> TrackerStep:
        """Feed one frame's detections at capture time `time`; frames older than the last one
        are ignored (a late window cannot rewrite a track)."""
        if self.last_time is not None and time <= self.last_time:
            return TrackerStep([], [], self._reported())
        self.last_time = time
        p = self.params
        high = [d for d in detections if d.score >= p.high_score]
        low = [d for d in detections if p.low_score <= d.score < p.high_score]
        pool = list(self._tracks)
        matched, pool, high_left = _associate(pool, high, time, p.match_iou)
        confirmed_left = [t for t in pool if t.state != "tentative"]
        matched2, confirmed_left, _ = _associate(confirmed_left, low, time, p.match_iou)
        started: list[Track] = []
        for track, det in matched + matched2:
            self._observe(track, det, time)
            if track.state == "tentative" and track.hits >= p.min_hits:
                track.state = "confirmed"
                started.append(track)
            elif track.state == "lost":
                track.state = "confirmed"
        ended: list[Track] = []
        unmatched = {id(t) for t in pool if t.state == "tentative"}
        unmatched |= {id(t) for t in confirmed_left}
        survivors: list[Track] = []
        for track in self._tracks:
            if id(track) in unmatched:
                if track.state == "tentative":
                    continue  # a one-frame blip: never announced, forgotten
                track.state = "lost"
                if time - track.last_seen > p.max_age_s + 1e-9:
                    ended.append(track)
                    continue
            survivors.append(track)
        for det in high_left:
            track = self._new(det, time)
            survivors.append(track)
            if p.min_hits <= 1:
                track.state = "confirmed"
                started.append(track)
        self._tracks = survivors
        return TrackerStep(started, ended, self._reported())

    def close(self) -> list[Track]:
        """The stream ended: every confirmed or lost track ends."""
        ended = [t for t in self._tracks if t.state != "tentative"]
        self._tracks = []
        return ended

    def _reported(self) -> list[Track]:
        return [t for t in self._tracks if t.state != "tentative"]

    def _new(self, det: Detection, time: float) -> Track:
        self._counters[TRACK_COUNTER] = track_id = self._counters.get(TRACK_COUNTER, 0) + 1
        track = Track(
            id=track_id,
            class_id=det.class_id,
            class_name=det.class_name,
            label=det.label,
            box=det.box,
            score=det.score,
            first_seen=time,
            last_seen=time,
            peak_score=det.score,
        )
        track.history.append((time, _scale(det.box)))
        return track

    def _observe(self, track: Track, det: Detection, time: float) -> None:
        dt = time - track.last_seen
        if dt > 0:
            old, new = _cxcywh(track.box), _cxcywh(det.box)
            inst = tuple((n - o) / dt for n, o in zip(new, old, strict=True))
            a = self.params.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity = tuple(  # type: ignore[assignment]
                a * i + (1 - a) * v for i, v in zip(inst, track.velocity, strict=True)
            )
        track.box = det.box
        track.score = det.score
        track.peak_score = max(track.peak_score, det.score)
        track.last_seen = time
        track.hits += 1
        track.history.append((time, _scale(det.box)))


def _associate(
    tracks: list[Track], dets: list[Detection], time: float, min_iou: float
) -> tuple[list[tuple[Track, Detection]], list[Track], list[Detection]]:
    """Greedy IoU matching of predicted tracks to same-class detections, best overlap first."""
    if not tracks or not dets:
        return [], tracks, dets
    iou = iou_matrix([t.predicted(time) for t in tracks], [d.box for d in dets])
    same = np.array([[t.class_id == d.class_id for d in dets] for t in tracks], dtype=bool)
    iou = np.where(same, iou, 0.0)
    pairs: list[tuple[Track, Detection]] = []
    used_t: set[int] = set()
    used_d: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(dets))
        if iou[i, j] < min_iou:
            break
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        pairs.append((tracks[i], dets[j]))
    rest_t = [t for i, t in enumerate(tracks) if i not in used_t]
    rest_d = [d for j, d in enumerate(dets) if j not in used_d]
    return pairs, rest_t, rest_d


def _cxcywh(box: Box) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def _xyxy(cx: float, cy: float, w: float, h: float) -> Box:
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _scale(box: Box) -> float:
    """Image size of an object: the square root of its box's area."""
    x1, y1, x2, y2 = box
    return math.sqrt(max(x2 - x1, 0.0) * max(y2 - y1, 0.0))
