"""The aiohttp application: WHIP routes, health, readiness, metrics and `/api/streams`.

`create_app` is the injectable factory the composition root (and the tests) call; it owns the
stream registry and closes every session on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from stream.config import STREAM_ID_PATTERN, Settings
from stream.ingest import StreamIngest
from stream.metrics import Metrics
from stream.registry import AtCapacity, StreamLive, StreamRegistry
from stream.scaleout.advert import redirect_location
from stream.scaleout.directory import WorkerDirectory
from stream.session import IngestSession
from stream.status import StatusSink
from stream.webrtc.loopback import use_loopback_candidates
from stream.webrtc.rtcp import watch_decode_errors
from stream.whip.auth import token_allowed
from stream.whip.cors import cors_middleware
from stream.whip.problems import Problem, problem_response
from stream.whip.ratelimit import RateLimiter
from stream.whip.sdp import OfferError, validate_offer
from stream.windows import WindowSink, WindowSpec

logger = logging.getLogger(__name__)

REGISTRY: web.AppKey[StreamRegistry] = web.AppKey("registry", StreamRegistry)
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
SESSION_METHODS = "DELETE, OPTIONS"
RETRY_AFTER_FULL_S = 10
RESIZE_THREADS = 2


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as `application/problem+json` (RFC 9457)."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(instance=request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return problem_response(exc.status, exc.reason, headers=headers, instance=request.path)


class WhipEndpoint:
    """The WHIP handlers, with everything they need injected."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        specs: Mapping[str, WindowSpec],
        window_sink: WindowSink,
        status: StatusSink,
        scaleout: WorkerDirectory | None = None,
    ) -> None:
        self.settings, self.metrics, self.scaleout = settings, metrics, scaleout
        self.specs, self.window_sink, self.status = dict(specs), window_sink, status
        self.registry = StreamRegistry(settings.server.max_streams, metrics)
        self.tokens = [t.get_secret_value() for t in settings.server.tokens]
        self.limiter = RateLimiter(settings.server.post_rate_per_minute)
        # Frame resizing leaves the loop: a loop stalled for each resize delays packet arrival
        # stamps, which aiortc's bandwidth estimator reads as congestion (REMB every packet).
        self.resize_pool = ThreadPoolExecutor(RESIZE_THREADS, thread_name_prefix="ingest-resize")

    def _check(self, request: web.Request, stream: str) -> None:
        """Stream id, bearer token and rate limit, in that order."""
        if not _STREAM_ID.match(stream):
            raise Problem(400, f"invalid stream id; it must match {STREAM_ID_PATTERN}")
        if not token_allowed(request.headers.get("Authorization"), self.tokens):
            raise Problem(401, "missing or invalid bearer token",
                          headers={"WWW-Authenticate": 'Bearer realm="scenestream"'})  # fmt: skip
        address = request.remote or "unknown"
        if not self.limiter.allow(address, time.monotonic()):
            wait = max(1, round(self.limiter.retry_after(address)))
            raise Problem(429, "too many requests from this address",
                          headers={"Retry-After": str(wait)})  # fmt: skip

    async def post(self, request: web.Request) -> web.Response:
        """`POST /whip/{stream}`: an SDP offer in, `201` + answer + `Location` out.

        With scale-out, a full worker answers `307` to a peer with room, and a stream id live
        on another worker is refused with `409`.
        """
        stream = request.match_info["stream"]
        self._check(request, stream)
        if request.content_type != "application/sdp":
            raise Problem(415, "the offer must be sent as Content-Type: application/sdp")
        body = await _read_limited(request, self.settings.server.max_body_bytes)
        try:
            self.registry.reserve(stream)
        except StreamLive:
            raise Problem(409, f"stream {stream!r} is already live") from None
        except AtCapacity:
            return await self._full(stream)
        if self.scaleout is not None and not await self.scaleout.claim(stream):
            self.registry.release(stream)
            raise Problem(409, f"stream {stream!r} is already live on another worker")
        try:
            offer, summary = validate_offer(body, self.settings.server.max_body_bytes)
            session = self._new_session(stream, summary.has_video, summary.has_audio)
        except OfferError as exc:
            self.registry.release(stream)
            if self.scaleout is not None:
                self.scaleout.release_soon(stream)
            raise Problem(exc.status, exc.detail) from None
        self.registry.add(session)
        try:
            answer = await session.answer(offer)
        except asyncio.CancelledError:
            session.close_soon("client gone")  # the client hung up mid-negotiation
            raise
        except Exception as exc:
            await session.close("offer rejected")
            logger.info("offer could not be applied", extra={"stream": stream})
            raise Problem(400, f"the offer could not be applied: {exc}") from None
        location = f"/whip/{stream}/{session.id}"
        logger.info("session created", extra={"stream": stream, "session": session.id})
        return web.Response(
            status=201, text=answer, content_type="application/sdp",
            headers={"Location": location, "ETag": session.etag},
        )  # fmt: skip

    async def _full(self, stream: str) -> web.Response:
        """At capacity: `307` to the peer with the most room, else `503` + `Retry-After`."""
        peer = None if self.scaleout is None else await self.scaleout.peer_with_room()
        if peer is None:
            raise Problem(503, "this worker is at capacity; retry later",
                          headers={"Retry-After": str(RETRY_AFTER_FULL_S)})  # fmt: skip
        location = redirect_location(peer.url, stream)
        logger.info("at capacity: redirected", extra={"stream": stream, "to": peer.url})
        return web.Response(status=307, text=f"redirected to {location}\n",
                            headers={"Location": location})  # fmt: skip

    def _new_session(self, stream: str, has_video: bool, has_audio: bool) -> IngestSession:
        ingest = StreamIngest(
            stream, self.specs, self.window_sink, self.metrics, self.settings.ingest,
            has_video=has_video, has_audio=has_audio, executor=self.resize_pool,
        )  # fmt: skip
        missing = frozenset(k for k, has in (("video", has_video), ("audio", has_audio)) if not has)
        return IngestSession(
            stream, ingest, self.settings.session, self.status, self._closed, missing=missing
        )

    def _closed(self, session: IngestSession) -> None:
        current = self.registry.get(session.stream, session.id) is session
        self.registry.release(session.stream, session)
        if current and self.scaleout is not None:
            self.scaleout.release_soon(session.stream)
        self.window_sink.stream_ended(session.stream)

    async def delete(self, request: web.Request) -> web.Response:
        """`DELETE /whip/{stream}/{session}`: close and free the session."""
        stream, session_id = request.match_info["stream"], request.match_info["session"]
        self._check(request, stream)
        session = self.registry.get(stream, session_id)
        if session is None:
            raise Problem(404, "no such session (already closed, or never existed)")
        await session.close("deleted")
        return web.Response(status=200)

    async def patch(self, request: web.Request) -> web.Response:
        """Trickle ICE and ICE restart are not supported: `405` + `Allow` (RFC 9725 §4.3)."""
        self._check(request, request.match_info["stream"])
        raise Problem(405, "trickle ICE and ICE restart are not supported; send a full offer",
                      headers={"Allow": SESSION_METHODS})  # fmt: skip

    async def close_all(self, _: web.Application) -> None:
        """Shutdown: close every session, then the resize threads."""
        sessions = self.registry.sessions()
        await asyncio.gather(*(s.close("shutdown") for s in sessions), return_exceptions=True)
        self.resize_pool.shutdown(wait=False, cancel_futures=True)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it exceeds `limit` (never buffers more)."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, f"offer over {limit} bytes")
    chunks, size = [], 0
    while chunk := await request.content.read(65_536):
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"offer over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: Settings,
    metrics: Metrics,
    *,
    specs: Mapping[str, WindowSpec],
    window_sink: WindowSink,
    status: StatusSink,
    ready: Callable[[], Awaitable[bool]] | None = None,
    stream_figures: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    scaleout: WorkerDirectory | None = None,
) -> web.Application:
    """The HTTP application; `ready` decides `/readyz` (engines warmed, Redis answering).

    `stream_figures`, if given, returns per-stream, per-engine figures from downstream (the
    pipeline: published/late counts, latency); `/api/streams` adds them to each stream's row
    under `engines`. `scaleout`, if given, makes admission cross-worker (307, 409 across
    workers) through the shared Redis.
    """
    if settings.session.include_loopback:
        use_loopback_candidates()
    if not settings.server.tokens:
        logger.warning("no bearer tokens configured: the WHIP endpoint is open to anyone")
    whip = WhipEndpoint(settings, metrics, specs, window_sink, status, scaleout)
    app = web.Application(
        middlewares=[cors_middleware(settings.server.cors_origins), problem_middleware],
        client_max_size=settings.server.max_body_bytes + 1,
    )
    app[REGISTRY] = whip.registry
    app.router.add_post("/whip/{stream}", whip.post)
    app.router.add_delete("/whip/{stream}/{session}", whip.delete)
    app.router.add_patch("/whip/{stream}/{session}", whip.patch)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz(ready))
    app.router.add_get("/metrics", _metrics(metrics))
    app.router.add_get("/api/streams", _streams(whip.registry, stream_figures))
    app.on_shutdown.append(whip.close_all)
    decode_errors = {
        k: metrics.frames_dropped.labels(k, "decode_error") for k in ("video", "audio")
    }
    unwatch = watch_decode_errors(
        lambda kind: decode_errors[kind].inc() if kind in decode_errors else None
    )

    async def stop_watching(_: web.Application) -> None:
        unwatch()

    app.on_cleanup.append(stop_watching)
    return app


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _readyz(
    ready: Callable[[], Awaitable[bool]] | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        ok = True if ready is None else await ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    return handler


def _metrics(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler


def _streams(
    registry: StreamRegistry,
    figures: Callable[[], Mapping[str, Mapping[str, Any]]] | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        rows = registry.snapshot()
        if figures is not None:
            downstream = figures()
            for row in rows:
                row["engines"] = dict(downstream.get(row["stream"], {}))
        return web.json_response({"streams": rows})

    return handler
