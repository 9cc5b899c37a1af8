"""Shared pieces of the WHIP/ingest integration tests: a live service and a recording sink.

Real components only: an ingest-only worker composed by the service's own root
(`stream.service.Service` with a window sink) on a real 127.0.0.1 socket, real aiortc peers (ICE
on loopback through the `loopback_ice` fixture), a `WindowSink` that records what it is given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from engines.window import AudioSpec, VideoSpec, Window, WindowSpec
from stream.config import Settings, load_settings
from stream.http.admission import StreamAdmission
from stream.metrics import Metrics
from stream.publish.status import LogStatusSink
from stream.service import Service as Worker

# Every frame of a 30 fps source at a small size, so the tests can check each one.
SYNC_SPECS = {
    "probe": WindowSpec(
        length_s=1.0,
        hop_s=0.5,
        video=VideoSpec(frames=30, fps=30.0, height=120, width=160),
        audio=AudioSpec(sample_rate=16_000, samples=16_000),
    )
}


@dataclass
class RecordingSink:
    """A `WindowSink` that keeps every window (and when it was cut) and every `stream_ended`."""

    windows: list[Window] = field(default_factory=list)
    cut_at: list[float] = field(default_factory=list)  # wall-clock time each window arrived
    ended: list[str] = field(default_factory=list)

    def submit(self, window: Window) -> None:
        self.windows.append(window)
        self.cut_at.append(time.time())

    def stream_ended(self, stream: str) -> None:
        self.ended.append(stream)


@dataclass
class Service:
    """A running ingest service and what it reports to."""

    url: str
    worker: Worker
    sink: RecordingSink
    status: LogStatusSink
    metrics: Metrics

    @property
    def registry(self) -> StreamAdmission:
        return self.worker.admission

    def whip(self, stream: str) -> str:
        return f"{self.url}/whip/{stream}"

    def states(self, stream: str) -> list[tuple[str, str]]:
        return [(state, reason) for s, state, reason in self.status.history if s == stream]


def settings(**sections: Any) -> Settings:
    """Test settings: fast timeouts, a high rate limit, small capacity (overridable)."""
    base: dict[str, Any] = {
        "server": {"max_streams": 3, "post_rate_per_minute": 100_000, "max_body_bytes": 20_000},
        "session": {"setup_timeout_s": 3.0, "media_timeout_s": 2.0},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(None, **base)


@asynccontextmanager
async def running_service(
    config: Settings | None = None, specs: dict[str, WindowSpec] | None = None
) -> AsyncIterator[Service]:
    """An ingest-only worker on a free 127.0.0.1 port; shut down (every session closed) on exit."""
    sink, status, metrics = RecordingSink(), LogStatusSink(), Metrics(process=False)
    config = config or settings()
    config = config.model_copy(update={"server": config.server.model_copy(update={"port": 0})})
    worker = Worker(config, metrics=metrics, window_sink=sink, specs=specs or SYNC_SPECS,
                    status=status)  # fmt: skip
    await worker.start()
    try:
        yield Service(worker.url, worker, sink, status, metrics)
    finally:
        await worker.close()


async def wait_for(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll `predicate` until true; fail with `what` after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_for_async(
    predicate: Callable[[], Awaitable[bool]], within_s: float, what: str
) -> None:
    """`wait_for` for a condition that needs I/O to check (e.g. a Redis read)."""
    deadline = time.monotonic() + within_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)
