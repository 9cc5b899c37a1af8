"""The composition root: builds every part of the service from `Settings` and owns their lives.

Start order follows the data path backwards, so that nothing produces into a part that is not
running yet: Redis (embedded when no URL) → publisher → engines (loaded and warmed in a thread;
`/readyz` stays 503 until they are) → scheduler → HTTP/WHIP. Shutdown runs forwards: stop
accepting, close sessions, drain the scheduler, flush the outbox, stop the embedded Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from engines.engine import Engine
from engines.loader import LoadReport, load_engines
from stream.config import Settings
from stream.embedded_redis import EmbeddedRedis
from stream.gpu import GpuMonitor, open_reader, uses_gpu
from stream.metrics import OUTCOMES, Metrics
from stream.pipeline import Pipeline
from stream.publish.redis_publisher import RedisPublisher
from stream.scaleout.directory import WorkerDirectory
from stream.scaleout.redis_client import open_client, resolve_cluster
from stream.scheduler.runner import Scheduler
from stream.web.live import setup_live_routes
from stream.whip.app import create_app

logger = logging.getLogger(__name__)


@dataclass
class Service:
    """One running scenestream worker. Use `await Service(settings).start()`, then `close()`."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    engines: list[Engine] = field(default_factory=list)
    reports: list[LoadReport] = field(default_factory=list)
    redis_url: str = ""
    port: int = 0
    _redis: EmbeddedRedis | None = None
    _publisher: RedisPublisher | None = None
    _scheduler: Scheduler | None = None
    _pipeline: Pipeline | None = None
    _runner: web.AppRunner | None = None
    _probe: aioredis.Redis | None = None
    _directory: WorkerDirectory | None = None
    _gpu: GpuMonitor | None = None
    started_at: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        """Base HTTP URL of this worker."""
        host = self.settings.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.port}"

    async def start(self) -> Service:
        """Bring the whole service up; raises on a misconfiguration (engine, Redis, port)."""
        s = self.settings
        self.redis_url = s.redis.url or await self._start_embedded_redis()
        cluster = await resolve_cluster(self.redis_url, s.redis.cluster)
        self._publisher = RedisPublisher(
            self.redis_url, s.redis.prefix, self.metrics, s.redis.outbox_max, s.redis.log_maxlen,
            cluster=cluster,
        )  # fmt: skip
        await self._publisher.start()
        loaded = await asyncio.to_thread(load_engines, s.engines)
        self.engines = [engine for engine, _ in loaded]
        self.reports = [report for _, report in loaded]
        self._expose_zero_series()
        for report in self.reports:
            logger.info("engine ready: %s on %s", report.engine, report.backend)
        await self._start_gpu_monitor()
        self._pipeline = Pipeline(self.engines, self._publisher, self.metrics, settings=s)
        self._publisher.on_sent = self._pipeline.message_sent
        self._scheduler = Scheduler(self.engines, self.metrics, self._pipeline, self._publisher)
        await self._scheduler.start()
        self._probe = aioredis.from_url(self.redis_url, socket_timeout=1.0)
        self._directory = self._new_directory(cluster)
        app = create_app(
            s,
            self.metrics,
            specs={e.name: e.spec for e in self.engines},
            window_sink=self._scheduler,
            status=self._publisher,
            ready=self._ready,
            stream_figures=self._pipeline.streams,
            scaleout=self._directory,
        )
        setup_live_routes(app, redis_url=self.redis_url, prefix=s.redis.prefix, cluster=cluster)
        app.router.add_get("/api/engines", self._engines_handler)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.server.host, s.server.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        await self._directory.start(s.server.public_url or self.url)
        logger.info("scenestream listening on %s", self.url)
        return self

    async def close(self) -> None:
        """Graceful shutdown: sessions closed, windows drained, outbox flushed, Redis stopped."""
        if self._directory is not None:
            await self._directory.drain()  # peers stop sending us streams first
        if self._runner is not None:
            await self._runner.cleanup()  # stops accepting, runs on_shutdown (closes sessions)
            self._runner = None
        if self._directory is not None:
            await self._directory.close()  # after the sessions: their claims are released
            self._directory = None
        if self._scheduler is not None:
            await self._scheduler.close()
            self._scheduler = None
        for engine in self.engines:
            with contextlib.suppress(Exception):
                engine.close()
        if self._gpu is not None:
            await self._gpu.close()
            self._gpu = None
        if self._publisher is not None:
            left = await self._publisher.close()
            if left:
                logger.warning("%d messages could not be delivered to Redis at shutdown", left)
            self._publisher = None
        if self._probe is not None:
            await self._probe.aclose()
            self._probe = None
        if self._redis is not None:
            await asyncio.to_thread(self._redis.close)
            self._redis = None

    def _new_directory(self, cluster: bool) -> WorkerDirectory:
        """Scale-out: advert, cross-worker claims, `307`, `offline` for lost workers' streams."""
        s, publisher = self.settings, self._publisher
        assert publisher is not None

        def lost(stream: str) -> None:
            publisher.stream_status(stream, "offline", "worker lost")

        client = open_client(self.redis_url, cluster, socket_timeout=2.0)
        return WorkerDirectory(
            client, s.redis.prefix, s.server.max_streams, ttl_s=s.server.advertise_ttl_s,
            on_lost=lost,
        )  # fmt: skip

    async def _start_embedded_redis(self) -> str:
        self._redis = await asyncio.to_thread(EmbeddedRedis().start)
        print(f"embedded redis: {self._redis.url}", flush=True)
        return self._redis.url

    async def _start_gpu_monitor(self) -> None:
        """GPU gauges, sampled only while some engine runs on a GPU."""
        if not uses_gpu(r.details for r in self.reports):
            return
        reader = await asyncio.to_thread(open_reader)
        if reader is None:
            logger.warning("an engine runs on a GPU but neither NVML nor torch CUDA can see it")
            return
        self._gpu = GpuMonitor(reader, self.metrics)
        self._gpu.start()

    def _expose_zero_series(self) -> None:
        """Counters a healthy worker never increments (late/stale/... windows, dropped messages)
        are exposed at 0, so the dashboard's ratios and rates show 0 rather than no data."""
        for engine in self.engines:
            for outcome in OUTCOMES:
                self.metrics.windows.labels(engine=engine.name, outcome=outcome)
        for kind in ("scene", "event", "status"):
            self.metrics.outbox_dropped.labels(type=kind)

    async def _ready(self) -> bool:
        """Every engine loaded and warmed (true once `start` built them) and Redis answers."""
        if not self.engines or self._probe is None:
            return False
        try:
            return bool(await self._probe.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def _engines_handler(self, _: web.Request) -> web.Response:
        body: list[dict[str, Any]] = [r.as_dict() for r in self.reports]
        return web.json_response({"engines": body})
