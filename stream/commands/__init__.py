"""The `scenestream` subcommands, one module each, named after the command (`serve.py` is
`scenestream serve`). Each exposes `run(args) -> int`; `stream.cli` declares the arguments and
imports a command's module only when it runs. What several commands share lives here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from stream.config import Settings, load_settings


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from `--config`, the environment and the `--host/--port/--redis` flags."""
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    overrides: dict[str, Any] = {"server": server, **extra}
    if args.redis:
        overrides["redis"] = {"url": args.redis}
    config: Path | None = args.config
    return load_settings(config, **overrides)


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
