"""Server process of one benchmark trial: the service, the ingest alone, or the naive baseline.

    python -m stream.benchmark.servers {service,ingest,naive} --engine avfusion [--user-dir D]
        [--redis URL] [--max-streams N] [--admission {count,headroom}]

Prints `ready PORT REDIS_URL` on stdout once it accepts WHIP offers, then runs until SIGTERM
and shuts down gracefully. Listens on 127.0.0.1 only and offers only loopback ICE candidates.
A service given `--redis` joins the workers already on that Redis (scale-out: a full worker
answers `307` to one with room); without it, it starts its own embedded Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from stream.config import Settings, load_settings
from stream.logs import configure as configure_logging

MODES = ("service", "ingest", "naive")


def bench_settings(
    engines: list[str],
    user_dir: Path | None,
    *,
    redis_url: str | None = None,
    max_streams: int = 64,
    admission: str = "count",
) -> Settings:
    """Service settings for a trial: loopback, any free port, room for `max_streams` streams;
    admission by count unless asked (the capacity search measures what the machine holds)."""
    shared = {"redis": {"url": redis_url}} if redis_url else {}
    return load_settings(
        None,
        server={
            "host": "127.0.0.1",
            "port": 0,
            "max_streams": max_streams,
            "post_rate_per_minute": 100_000,
            "admission": admission,
        },
        session={"include_loopback": True},
        engines={"enabled": engines, "user_dir": user_dir},
        **shared,
    )


async def _until_term() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _loopback_only() -> None:
    from stream.webrtc.loopback import use_loopback_candidates

    use_loopback_candidates(only=True)


async def run_service(settings: Settings) -> None:
    """The real service (engines, scheduler, publisher) from its composition root."""
    from stream.service import Service

    await _serve_worker(Service(settings))


async def run_ingest(settings: Settings) -> None:
    """Ingest and window cutting only (windows counted, no engine, no Redis), composed by the
    same root."""
    from stream.ingest.window_sink import CountingWindowSink
    from stream.service import Service

    await _serve_worker(Service(settings, window_sink=CountingWindowSink()))


async def _serve_worker(service: Any) -> None:
    try:
        await service.start()
        _loopback_only()  # after start, which adds loopback next to the host's addresses
        print(f"ready {service.port} {service.redis_url or '-'}", flush=True)
        await _until_term()
    finally:
        await service.close()


async def run_naive(settings: Settings) -> None:
    """The per-frame baseline with the service's first engine, publishing to embedded Redis."""
    import redis.asyncio as aioredis

    from engines.runtime.loader import load_engines
    from stream.benchmark.naive import naive_app
    from stream.embedded_redis import EmbeddedRedis

    (engine, _), *_ = await asyncio.to_thread(load_engines, settings.engines)
    embedded = await asyncio.to_thread(EmbeddedRedis().start)
    client = aioredis.from_url(embedded.url)
    try:
        await _serve_app(naive_app(engine, client, settings.redis.prefix), embedded.url)
    finally:
        await client.aclose()
        engine.close()
        await asyncio.to_thread(embedded.close)


async def _serve_app(app: web.Application, redis_url: str) -> None:
    _loopback_only()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        print(f"ready {port} {redis_url}", flush=True)
        await _until_term()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the server process."""
    parser = argparse.ArgumentParser(description="benchmark server process")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--engine", action="append", default=[], help="engines to run")
    parser.add_argument("--user-dir", type=Path, help="engines.user_dir")
    parser.add_argument("--redis", help="join the workers on this Redis (service only)")
    parser.add_argument("--max-streams", type=int, default=64, help="server.max_streams")
    parser.add_argument("--admission", choices=("count", "headroom"), default="count",
                        help="server.admission")  # fmt: skip
    args = parser.parse_args(argv)
    configure_logging(logging.WARNING)
    settings = bench_settings(
        args.engine, args.user_dir, redis_url=args.redis, max_streams=args.max_streams,
        admission=args.admission,
    )  # fmt: skip
    runners: dict[str, Any] = {"service": run_service, "ingest": run_ingest, "naive": run_naive}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runners[args.mode](settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
