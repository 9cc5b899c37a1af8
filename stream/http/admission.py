"""Admission: the live streams of this worker (one session per stream, a capacity) and their
per-stream figures for `/api/streams`."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Protocol, cast

from stream.ingest.stream_ingest import StreamIngest
from stream.metrics import Metrics
from stream.publish.status import StreamState

CLOSED_KEPT = 32  # recently closed sessions listed by `/api/streams` (with their reason)


class LiveStream(Protocol):
    """What admission holds per stream: a WHIP `IngestSession` or a pulled `CameraSource`."""

    stream: str
    id: str
    state: str
    created: float
    missing: frozenset[str]
    close_reason: str | None

    status: tuple[str, str]

    ingest: StreamIngest

    async def close(self, reason: str) -> None: ...


class StreamLive(Exception):
    """The stream id already has a live (or starting) session."""


class AtCapacity(Exception):
    """The worker already carries its maximum number of streams."""


class StreamAdmission:
    """Live sessions by stream id. `reserve` is synchronous, so two racing POSTs cannot both win."""

    def __init__(self, max_streams: int, metrics: Metrics) -> None:
        self.max_streams = max_streams
        self._metrics = metrics
        self._reserved: set[str] = set()
        self._sessions: dict[str, LiveStream] = {}
        self._closed: deque[dict[str, Any]] = deque(maxlen=CLOSED_KEPT)

    def __len__(self) -> int:
        return len(self._reserved)

    def reserve(self, stream: str) -> None:
        """Claim `stream` before any await; raises `StreamLive` or `AtCapacity`."""
        if stream in self._reserved:
            raise StreamLive(stream)
        if len(self._reserved) >= self.max_streams:
            raise AtCapacity(stream)
        self._reserved.add(stream)
        self._metrics.active_streams.set(len(self._reserved))

    def full_for(self, stream: str) -> bool:
        """Whether `reserve(stream)` would raise `AtCapacity` (not `StreamLive`) right now."""
        return stream not in self._reserved and len(self._reserved) >= self.max_streams

    def add(self, session: LiveStream) -> None:
        """Attach the session of a reserved stream."""
        self._sessions[session.stream] = session

    def release(self, stream: str, session: LiveStream | None = None) -> None:
        """Free `stream` (only if `session`, when given, is still the one registered)."""
        current = self._sessions.get(stream)
        if session is not None and current is not None and current is not session:
            return
        gone = self._sessions.pop(stream, None)
        if gone is not None and gone.close_reason is not None:
            self._closed.append(
                {"stream": stream, "session": gone.id, "reason": gone.close_reason,
                 "closed_at": round(time.time(), 3)}
            )  # fmt: skip
        self._reserved.discard(stream)
        self._metrics.active_streams.set(len(self._reserved))

    def stream_status(self, stream: str, state: StreamState, reason: str) -> None:
        """A `StatusSink` for what others report about a live stream (the scheduler's
        `degraded`/`online`), so `/api/streams` shows the status last published."""
        session = self._sessions.get(stream)
        if session is not None and session.close_reason is None:
            session.status = (state, reason)

    def statuses(self) -> list[tuple[str, StreamState, str]]:
        """`(stream, state, reason)` of every live stream that has published a status: what the
        live page shows a viewer who connects after the change (status is sent on change)."""
        current = []
        for session in self._sessions.values():
            state, reason = session.status
            if session.close_reason is None and state in ("online", "degraded"):
                current.append((session.stream, cast(StreamState, state), reason))
        return current

    def recently_closed(self) -> list[dict[str, Any]]:
        """The last sessions that ended on this worker, newest first, with why they ended."""
        return list(reversed(self._closed))

    def get(self, stream: str, session_id: str) -> LiveStream | None:
        """The live session `session_id` of `stream`, if any."""
        session = self._sessions.get(stream)
        return session if session is not None and session.id == session_id else None

    def sessions(self) -> list[LiveStream]:
        """All live sessions."""
        return list(self._sessions.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """The `/api/streams` rows: per-stream fps, counts, drops and last window latency."""
        mono, now = time.monotonic(), time.time()
        rows = []
        for session in self._sessions.values():
            stats = session.ingest.stats
            latency = stats.last_window_latency_s
            rows.append(
                {
                    "stream": session.stream,
                    "session": session.id,
                    "state": session.state,
                    "uptime_s": round(now - session.created, 1),
                    "fps": round(stats.fps(mono), 1),
                    "frames_received": dict(stats.received),
                    "frames_dropped": dict(stats.dropped),
                    "windows": stats.windows,
                    "last_window_latency_ms": None if latency is None else round(latency * 1e3, 1),
                    "resolution": list(stats.resolution) if stats.resolution else None,
                    "missing": sorted(session.missing),
                    "status": session.status[0],
                    "reason": session.status[1],
                    "clock": session.ingest.clock,
                }
            )
        return rows
