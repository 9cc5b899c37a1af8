"""`scenestream serve`: run the service until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import logging

from stream.commands import install_stop_signals, quiet_library_logs, settings_from_args
from stream.service import Service


async def serve_until_stopped(service: Service, stop: asyncio.Event) -> None:
    """Start `service`, wait for `stop` (set by a signal), then close it."""
    try:
        await service.start()
        print(f"scenestream serving on {service.url} (WHIP: {service.url}/whip/STREAM)", flush=True)
        await stop.wait()
    finally:
        await service.close()


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
