"""`scenestream serve`: run the service until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from stream.config import Settings, load_settings
from stream.service import Service


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from `--config`, the environment and the `--host/--port/--redis` flags."""
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    overrides: dict[str, Any] = {"server": server, **extra}
    if args.redis:
        overrides["redis"] = {"url": args.redis}
    config: Path | None = args.config
    return load_settings(config, **overrides)


async def serve_until_stopped(service: Service, stop: asyncio.Event) -> None:
    """Start `service`, wait for `stop` (set by a signal), then close it."""
    try:
        await service.start()
        print(f"scenestream serving on {service.url} (WHIP: {service.url}/whip/STREAM)", flush=True)
        await stop.wait()
    finally:
        await service.close()


def quiet_library_logs(verbose: bool) -> None:
    """Per-candidate ICE and per-request access lines only with `--verbose`."""
    if not verbose:
        for name in ("aioice", "aiohttp.access", "aiortc"):
            logging.getLogger(name).setLevel(logging.WARNING)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop` (graceful: sessions closed, outbox flushed)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream serve`."""
    settings = settings_from_args(args)
    if not args.verbose:
        logging.getLogger().setLevel(settings.log_level)
    quiet_library_logs(args.verbose)

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await serve_until_stopped(Service(settings), stop)

    asyncio.run(main())
    return 0
