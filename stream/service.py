"""The composition root: builds every part of a worker from `Settings` and owns their lives.

Start order follows the data path backwards, so that nothing produces into a part that is not
running yet: Redis (embedded when no URL) → publisher → engines (loaded and warmed in a thread;
`/readyz` stays 503 until they are) → interpretation → scheduler → ingest sessions → HTTP.
Shutdown runs forwards: stop accepting, close sessions, drain the scheduler, flush the outbox,
stop the embedded Redis.

An ingest-only worker (`window_sink=` given: no engines, no Redis; the load benchmark's
`--no-engine` trials and the ingest tests) is composed here too, from the same parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from engines.runtime.engine import Engine
from engines.runtime.loader import LoadReport, load_engines
from engines.window import WindowSpec
from stream.config import Settings
from stream.embedded_redis import EmbeddedRedis
from stream.gpu import GpuMonitor, open_reader, uses_gpu
from stream.http.admission import StreamAdmission
from stream.http.api import Readiness
from stream.http.cameras import Cameras
from stream.http.headroom import AdmissionGate, HeadroomPolicy, LoadMonitor, Thresholds
from stream.http.rejects import RejectedRequestLog
from stream.http.whip import WhipEndpoint
from stream.ingest.session import SessionFactory
from stream.ingest.stream_ingest import StreamIngest
from stream.ingest.window_sink import INGEST_ONLY_SPECS, WindowSink
from stream.interpret import Interpreter
from stream.live.page import LiveBridge
from stream.metrics import OUTCOMES, REFUSAL_REASONS, SHED_REASONS, Metrics
from stream.publish.redis_publisher import RedisPublisher
from stream.publish.status import LogStatusSink, StatusSink, TeeStatusSink
from stream.routes import build_app
from stream.scaleout.directory import WorkerDirectory
from stream.scaleout.redis_client import open_client, redis_problem, resolve_cluster
from stream.scheduler.runner import Scheduler
from stream.webrtc.loopback import use_loopback_candidates
from stream.webrtc.rtcp import watch_decode_errors

logger = logging.getLogger(__name__)

# Frames above 1080p are resized off the loop: a loop stalled for each resize delays packet
# arrival stamps, which aiortc's bandwidth estimator reads as congestion.
RESIZE_THREADS = 2


class Service:
    """One running scenestream worker. Use `await Service(settings).start()`, then `close()`.

    With `window_sink`, the worker is ingest only: windows cut for `specs` (default
    `INGEST_ONLY_SPECS`) go to that sink, status changes to `status` (default: logged).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        window_sink: WindowSink | None = None,
        specs: Mapping[str, WindowSpec] | None = None,
        status: StatusSink | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.ingest_only = window_sink is not None
        self.engines: list[Engine] = []
        self.reports: list[LoadReport] = []
        self.redis_url = ""
        self.port = 0
        self.started_at = time.time()
        self.admission = StreamAdmission(settings.server.max_streams, self.metrics)
        self.load = _load_monitor(settings, self.admission, self._room_changed)
        self.app: web.Application | None = None
        self._window_sink = window_sink
        self._specs = specs
        self._status = status
        self._redis: EmbeddedRedis | None = None
        self._publisher: RedisPublisher | None = None
        self._scheduler: Scheduler | None = None
        self._interpreter: Interpreter | None = None
        self._runner: web.AppRunner | None = None
        self._probe: aioredis.Redis | None = None
        self._directory: WorkerDirectory | None = None
        self._gpu: GpuMonitor | None = None
        self._resize_pool: ThreadPoolExecutor | None = None
        self._unwatch_decode: Callable[[], None] | None = None
        self.cameras: Cameras | None = None

    @property
    def url(self) -> str:
        """Base HTTP URL of this worker."""
        host = self.settings.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.port}"

    async def start(self) -> Service:
        """Bring the whole service up; raises on a misconfiguration (engine, Redis, port)."""
        s = self.settings
        if not s.server.tokens:
            logger.warning("no bearer tokens configured: the WHIP endpoint is open to anyone")
        if s.session.include_loopback:
            use_loopback_candidates()
        for reason in REFUSAL_REASONS:
            self.metrics.streams_refused.labels(reason=reason)
        for kind in ("audio", "video"):  # zero until a loss: dashboards and alerts see a series
            self.metrics.rtp_packets_lost.labels(kind=kind)
            self.metrics.rtp_packets_late.labels(kind=kind)
        if self.ingest_only:
            self.app = self._ingest_only_app()
        else:
            self.app = await self._full_app()
        self._watch_decode_errors()
        self._runner = web.AppRunner(
            self.app, handle_signals=False, shutdown_timeout=5.0,
            logger=RejectedRequestLog(self.metrics),  # parser refusals: no log flood
        )  # fmt: skip
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.server.host, s.server.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        if self._directory is not None:
            await self._directory.start(s.server.public_url or self.url)
        if self.cameras is not None:
            await self.cameras.start()  # they connect in the background (`/api/cameras`)
        if self.load is not None:
            self.load.start()  # now: the stalls of loading engines are no load to judge by
        logger.info("scenestream listening on %s", self.url)
        return self

    async def _full_app(self) -> web.Application:
        """Redis, publisher, engines, interpretation, scheduler, scale-out, then the routes."""
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
            threads = report.details.get("intra_op_threads")
            on = f" ({threads} intra-op threads)" if threads else ""
            logger.info("engine ready: %s on %s%s", report.engine, report.backend, on)
        await self._start_gpu_monitor()
        self._interpreter = Interpreter(self.engines, self._publisher, self.metrics, settings=s)
        self._publisher.on_sent = self._interpreter.message_sent
        status = TeeStatusSink(self._publisher, self.admission)  # /api/streams shows it too
        self._scheduler = Scheduler(
            self.engines, self.metrics, self._interpreter, status,
            observe_lateness=None if self.load is None else self.load.window_lateness,
        )  # fmt: skip
        await self._scheduler.start()
        self._probe = aioredis.from_url(self.redis_url, socket_timeout=1.0)
        await self._check_redis_access()
        self._directory = self._new_directory(cluster)
        whip = self._whip({e.name: e.spec for e in self.engines}, self._scheduler, self._publisher)
        live = LiveBridge(
            self.redis_url, s.redis.prefix, cluster=cluster,
            tokens=[t.get_secret_value() for t in s.server.tokens],
            statuses=self.admission.statuses,
        )  # fmt: skip
        return build_app(
            s, self.metrics, whip, ready=self._ready, stream_figures=self._interpreter.streams,
            engine_reports=self._engine_reports, live=live, cameras=self.cameras,
        )  # fmt: skip

    def _ingest_only_app(self) -> web.Application:
        """Sessions, ingest and window cutting only: windows go to the given sink."""
        assert self._window_sink is not None
        specs = self._specs if self._specs is not None else INGEST_ONLY_SPECS
        status = self._status if self._status is not None else LogStatusSink()
        whip = self._whip(specs, self._window_sink, status)
        return build_app(
            self.settings, self.metrics, whip, ready=_always_ready, cameras=self.cameras
        )

    def _whip(
        self, specs: Mapping[str, WindowSpec], sink: WindowSink, status: StatusSink
    ) -> WhipEndpoint:
        """The WHIP endpoint, opening sessions whose windows go to `sink`."""
        s = self.settings
        self._resize_pool = ThreadPoolExecutor(RESIZE_THREADS, thread_name_prefix="ingest-resize")
        sessions = SessionFactory(
            specs, sink, status, self.metrics, s.ingest, s.session, executor=self._resize_pool
        )
        pool = self._resize_pool

        def open_ingest(stream: str, has_video: bool, has_audio: bool) -> StreamIngest:
            return StreamIngest(
                stream, specs, sink, self.metrics, s.ingest,
                has_video=has_video, has_audio=has_audio, executor=pool,
            )  # fmt: skip

        gate = AdmissionGate(self.metrics, self.load)
        # Pulled cameras: the same ingest and sink as WHIP streams, admitted alike.
        self.cameras = Cameras(s, self.admission, open_ingest, status, self.metrics,
                               on_disconnected=sink.stream_ended,
                               scaleout=self._directory, gate=gate)  # fmt: skip
        return WhipEndpoint(
            s, self.admission, sessions, scaleout=self._directory, gate=gate, metrics=self.metrics
        )

    async def close(self) -> None:
        """Graceful shutdown: sessions closed, windows drained, outbox flushed, Redis stopped."""
        if self._directory is not None:
            await self._directory.drain()  # peers stop sending us streams first
        if self._runner is not None:
            await self._runner.cleanup()  # stops accepting, runs on_shutdown (closes sessions)
            self._runner = None
        if self._unwatch_decode is not None:
            self._unwatch_decode()
            self._unwatch_decode = None
        if self._resize_pool is not None:
            self._resize_pool.shutdown(wait=False, cancel_futures=True)
            self._resize_pool = None
        if self._directory is not None:
            await self._directory.close()  # after the sessions: their claims are released
            self._directory = None
        if self._scheduler is not None:
            await self._scheduler.close()
            self._scheduler = None
        if self.load is not None:
            await self.load.close()
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

    def _room_changed(self, has_room: bool) -> None:
        """Admission by headroom flipped: tell the scale-out peers (no room while refusing)."""
        if self._directory is not None:
            self._directory.set_room(has_room)

    def _watch_decode_errors(self) -> None:
        """aiortc's decode failures counted as `frames_dropped{reason="decode_error"}`."""
        counters = {
            k: self.metrics.frames_dropped.labels(k, "decode_error") for k in ("video", "audio")
        }

        def count(kind: str) -> None:
            if kind in counters:
                counters[kind].inc()

        self._unwatch_decode = watch_decode_errors(count)

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
            for reason in SHED_REASONS:
                self.metrics.windows_shed.labels(engine=engine.name, reason=reason)
        for kind in ("scene", "event", "status"):
            self.metrics.outbox_dropped.labels(type=kind)

    async def _ready(self) -> Readiness:
        """Every engine loaded and warmed (true once `start` built them) and Redis answers."""
        if not self.engines or self._probe is None:
            return Readiness(False, "engines not loaded yet")
        try:
            return Readiness(bool(await self._probe.ping()))
        except (aioredis.RedisError, OSError) as exc:
            return Readiness(False, f"redis: {redis_problem(exc)}")

    async def _check_redis_access(self) -> None:
        """Say at start, in the log, when Redis refuses us (a wrong password otherwise shows only
        as a 503 on /readyz); the service still starts and buffers until Redis lets it in."""
        assert self._probe is not None
        try:
            await self._probe.ping()
        except (aioredis.RedisError, OSError) as exc:
            logger.error("redis %s", redis_problem(exc))

    def _engine_reports(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.reports]


def _load_monitor(
    settings: Settings, admission: StreamAdmission, on_change: Callable[[bool], None]
) -> LoadMonitor | None:
    """The sampler behind admission by headroom (None with `server.admission = "count"`)."""
    s = settings.server
    if s.admission != "headroom":
        return None
    thresholds = Thresholds(
        loop_busy=s.headroom_loop_busy,
        process_cpu=s.headroom_process_cpu,
        loop_lag_s=s.headroom_loop_lag_ms / 1e3,
        window_lateness_s=s.headroom_window_lateness_ms / 1e3,
    )
    return LoadMonitor(HeadroomPolicy(thresholds), lambda: len(admission), on_change=on_change)


async def _always_ready() -> bool:
    """An ingest-only worker has nothing to warm."""
    return True
