"""A small composition of the ingest service: settings, metrics, sinks and specs → aiohttp app.

Used by the ingest tests and the benchmark, and runnable on its own until `scenestream serve`
wires engines and Redis around the same factory:

    python -m stream.ingest_service --port 8080      # WHIP on /whip/{stream}, windows counted
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from stream.config import Settings, load_settings
from stream.metrics import Metrics
from stream.status import LogStatusSink, StatusSink
from stream.whip.app import create_app
from stream.windows import AudioSpec, VideoSpec, Window, WindowSink, WindowSpec

# What a typical engine asks for: 1 s windows every 0.5 s, 8 frames of 224x224, 16 kHz audio.
DEFAULT_SPECS: dict[str, WindowSpec] = {
    "ingest": WindowSpec(
        length_s=1.0,
        hop_s=0.5,
        video=VideoSpec(frames=8, fps=8.0, height=224, width=224),
        audio=AudioSpec(sample_rate=16_000, samples=16_000),
    )
}


@dataclass
class CountingWindowSink:
    """A `WindowSink` that keeps only counts (no engine attached); optionally the last windows."""

    keep: int = 0
    submitted: dict[str, int] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)

    def submit(self, window: Window) -> None:
        self.submitted[window.stream] = self.submitted.get(window.stream, 0) + 1
        if self.keep:
            self.windows.append(window)
            del self.windows[: -self.keep]

    def stream_ended(self, stream: str) -> None:
        self.ended.append(stream)


def build_ingest_app(
    settings: Settings,
    metrics: Metrics | None = None,
    *,
    specs: Mapping[str, WindowSpec] | None = None,
    window_sink: WindowSink | None = None,
    status: StatusSink | None = None,
    ready: Callable[[], Awaitable[bool]] | None = None,
) -> web.Application:
    """`create_app` with defaults for whatever is not given (no engine: windows are counted)."""
    return create_app(
        settings,
        metrics if metrics is not None else Metrics(),
        specs=specs if specs is not None else DEFAULT_SPECS,
        window_sink=window_sink if window_sink is not None else CountingWindowSink(),
        status=status if status is not None else LogStatusSink(),
        ready=ready,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the ingest service alone (WHIP + /api/streams + /metrics), until Ctrl-C."""
    parser = argparse.ArgumentParser(description="scenestream ingest only (no engines, no Redis)")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from pathlib import Path

    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(Path(args.config) if args.config else None, server=server)
    if settings.server.host in ("127.0.0.1", "localhost") and not settings.session.include_loopback:
        settings = load_settings(
            Path(args.config) if args.config else None, server=server,
            session={"include_loopback": True},
        )  # fmt: skip
    app = build_ingest_app(settings)
    web.run_app(app, host=settings.server.host, port=settings.server.port)


if __name__ == "__main__":
    main()
