"""Admission: the live streams of this worker (one session per stream, a capacity) and their
per-stream figures for `/api/streams`."""

from __future__ import annotations

import time
from typing import Any

from stream.ingest.session import IngestSession
from stream.metrics import Metrics


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
        self._sessions: dict[str, IngestSession] = {}

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

    def add(self, session: IngestSession) -> None:
        """Attach the session of a reserved stream."""
        self._sessions[session.stream] = session

    def release(self, stream: str, session: IngestSession | None = None) -> None:
        """Free `stream` (only if `session`, when given, is still the one registered)."""
        current = self._sessions.get(stream)
        if session is not None and current is not None and current is not session:
            return
        self._sessions.pop(stream, None)
        self._reserved.discard(stream)
        self._metrics.active_streams.set(len(self._reserved))

    def get(self, stream: str, session_id: str) -> IngestSession | None:
        """The live session `session_id` of `stream`, if any."""
        session = self._sessions.get(stream)
        return session if session is not None and session.id == session_id else None

    def sessions(self) -> list[IngestSession]:
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
                }
            )
        return rows
