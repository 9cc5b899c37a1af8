"""Shared pieces of the WHIP/ingest integration tests: a live service and a recording sink.

Real components only: the aiohttp app on a real 127.0.0.1 socket, real aiortc peers (ICE on
loopback through the `loopback_ice` fixture), a `WindowSink` that records what it is given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.config import Settings, load_settings
from stream.metrics import Metrics
from stream.registry import StreamRegistry
from stream.status import LogStatusSink
from stream.whip.app import REGISTRY, create_app
from stream.windows import AudioSpec, VideoSpec, Window, WindowSpec

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
    """A `WindowSink` that keeps every window and every `stream_ended`."""

    windows: list[Window] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def submit(self, window: Window) -> None:
        self.windows.append(window)

    def stream_ended(self, stream: str) -> None:
        self.ended.append(stream)


@dataclass
class Service:
    """A running ingest service and what it reports to."""

    url: str
    app: web.Application
    sink: RecordingSink
    status: LogStatusSink
    metrics: Metrics

    @property
    def registry(self) -> StreamRegistry:
        return self.app[REGISTRY]

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
    config: Settings | None = None,
    specs: dict[str, WindowSpec] | None = None,
    stream_figures: Callable[[], dict[str, dict[str, Any]]] | None = None,
) -> AsyncIterator[Service]:
    """The app on a free 127.0.0.1 port; shut down (every session closed) on exit."""
    sink, status, metrics = RecordingSink(), LogStatusSink(), Metrics(process=False)
    app = create_app(config or settings(), metrics, specs=specs or SYNC_SPECS,
                     window_sink=sink, status=status, stream_figures=stream_figures)  # fmt: skip
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Service(str(server.make_url("")).rstrip("/"), app, sink, status, metrics)
    finally:
        await server.close()


async def wait_for(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll `predicate` until true; fail with `what` after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)
