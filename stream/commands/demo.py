"""`scenestream demo`: the whole path on one machine, with nothing to set up.

Starts the service on the embedded Redis, a synthetic camera+mic (`scenestream send
--scenario`, in its own process so that rendering and encoding do not compete with the service
for the GIL) publishing a scripted scene over loopback WebRTC, and prints the live events as a
subscriber sees them. `--seconds N` stops by itself with a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from engines.errors import UserError
from stream.commands import install_stop_signals, quiet_library_logs, settings_from_args
from stream.commands.events import format_line
from stream.service import Service
from stream.subscribe import Subscription

STREAM = "demo-cam"


@dataclass
class Tally:
    """What the demo saw, for the closing summary."""

    events: dict[str, int] = field(default_factory=dict)
    scenes: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, msg: dict[str, object]) -> None:
        if msg.get("type") == "scene":
            self.scenes += 1
            latency = msg.get("latency_ms")
            if isinstance(latency, dict):
                self.latencies_ms.append(float(latency.get("capture_to_publish", 0.0)))
        elif msg.get("type") == "event" and msg.get("phase") == "start":
            label = str(msg.get("label"))
            self.events[label] = self.events.get(label, 0) + 1

    def summary(self) -> str:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> str:
            return f"{lat[min(len(lat) - 1, int(q * len(lat)))]:.0f} ms" if lat else "n/a"

        started = ", ".join(f"{k} x{v}" for k, v in sorted(self.events.items())) or "none"
        return (
            f"summary: {self.scenes} windows published, events started: {started}; "
            f"capture-to-publish p50 {pct(0.5)}, p95 {pct(0.95)}"
        )


async def _sender(url: str, scenario: str, seconds: float | None) -> asyncio.subprocess.Process:
    cmd = [sys.executable, "-m", "stream.cli", "send", url, "--scenario", scenario, "--loop"]
    if seconds is not None:
        cmd += ["--seconds", str(seconds)]
    return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)


async def _print_events(service: Service, tally: Tally, ready: asyncio.Event) -> None:
    kinds = ("scene", "events", "status")
    prefix = service.settings.redis.prefix
    async with Subscription(service.redis_url, prefix=prefix, streams=[STREAM], kinds=kinds) as sub:
        ready.set()
        async for msg in sub:
            tally.add(msg)
            if msg.get("type") != "scene":
                print(format_line(msg), flush=True)


async def _demo(args: argparse.Namespace) -> int:
    if args.port is None:
        args.port = 0  # a free port: the demo must not collide with a running service
    settings = settings_from_args(args, session={"include_loopback": True})
    service = Service(settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    tally = Tally()
    try:
        print("starting scenestream (loading and warming engines)...", flush=True)
        await service.start()
        print(f"service on {service.url}; live page: {service.url}/", flush=True)
        subscribed = asyncio.Event()
        printer = asyncio.create_task(_print_events(service, tally, subscribed), name="demo-print")
        await subscribed.wait()
        url = f"{service.url}/whip/{STREAM}"
        print(f"camera: scenario {args.scenario!r} → {url}", flush=True)
        sender = await _sender(url, args.scenario, args.seconds)
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(stop.wait(), name="demo-stop"),
            printer,
        ]
        if args.seconds is not None:
            waits.append(asyncio.create_task(asyncio.sleep(args.seconds + 1.5), name="demo-timer"))
        waits.append(asyncio.create_task(sender.wait(), name="demo-sender"))
        started = time.monotonic()
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if sender.returncode not in (None, 0) and time.monotonic() - started < 5:
            raise UserError(f"the synthetic camera exited with status {sender.returncode}")
        await asyncio.sleep(0)  # let the last printed lines out
        with contextlib.suppress(ProcessLookupError):
            sender.terminate()
        await sender.wait()
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    finally:
        await service.close()
    print(tally.summary(), flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream demo`."""
    if args.seconds is not None and args.seconds <= 0:
        raise UserError("--seconds must be positive")
    quiet_library_logs(args.verbose)
    return asyncio.run(_demo(args))
