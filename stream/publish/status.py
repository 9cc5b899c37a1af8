"""Stream status changes (`online`, `offline`, `degraded`) go through this small interface.

Sessions report here; the Redis publisher implements it for `scenestream:status`.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

StreamState = Literal["online", "offline", "degraded"]

logger = logging.getLogger(__name__)


class StatusSink(Protocol):
    """Receives stream status changes; must not block."""

    def stream_status(self, stream: str, state: StreamState, reason: str) -> None: ...


class LogStatusSink:
    """A status sink that only logs (used when nothing else is wired, e.g. in ingest tests)."""

    def __init__(self) -> None:
        self.history: list[tuple[str, StreamState, str]] = []

    def stream_status(self, stream: str, state: StreamState, reason: str) -> None:
        self.history.append((stream, state, reason))
        logger.info("stream status", extra={"stream": stream, "state": state, "reason": reason})


class TeeStatusSink:
    """Hands every status change to each of `sinks`, in order."""

    def __init__(self, *sinks: StatusSink) -> None:
        self._sinks = sinks

    def stream_status(self, stream: str, state: StreamState, reason: str) -> None:
        for sink in self._sinks:
            sink.stream_status(stream, state, reason)
