"""The live page and its Server-Sent Events bridge from Redis pub/sub.

`GET /` serves the page, `GET /static/...` its script and style, and `GET /api/live?stream=ID`
streams the scene, event and status messages of one stream (or of all streams without `stream`)
as SSE. Each browser gets its own Redis subscription and a bounded buffer (`ClientBuffer`): a
slow browser loses old scene messages, never events; everything is released on disconnect.

When the service has bearer tokens, `/api/live` wants one too: as `?token=` (the browser's
EventSource cannot send headers) or as `Authorization: Bearer`. The page and its static files
stay open: they hold no data.

On a Redis Cluster (`cluster=True`) the bridge reads the same channels with sharded pub/sub
(`SSUBSCRIBE`); a view of all streams subscribes to the channels of the streams the workers
advertise, re-checked about once a second (a cluster has no sharded pattern subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.client import PubSub

from stream.config import STREAM_ID_PATTERN
from stream.http.problems import problem_response
from stream.live.sse import CHANNEL_KINDS, ClientBuffer, format_event, route, subscription
from stream.publish.messages import encode, status_message
from stream.publish.status import StreamState
from stream.scaleout import sharded
from stream.scaleout.redis_client import REDIS_ERRORS, AnyRedis, close_pubsub, open_client

logger = logging.getLogger(__name__)

Statuses = Callable[[], Iterable[tuple[str, StreamState, str]]]
"""The current `(stream, state, reason)` of every live stream (`StreamAdmission.statuses`)."""

WEB_DIR = Path(__file__).resolve().parent
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
_RETRY_MS = 2000  # the browser's EventSource reconnect delay after a cut-off


class LiveBridge:
    """Bridges Redis pub/sub to SSE clients; one per application.

    Its routes are added by `stream.routes.add_live_routes`.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        max_clients: int = 64,
        heartbeat_s: float = 15.0,
        poll_s: float = 1.0,
        max_scenes: int = 16,
        max_pending: int = 1024,
        tokens: Sequence[str] = (),
        cluster: bool = False,
        statuses: Statuses | None = None,
    ) -> None:
        self.redis_url = redis_url
        self._statuses = statuses  # sent first to a new client: status is only sent on change
        self.cluster = cluster
        self._tokens = tuple(t.encode() for t in tokens)
        self.prefix = prefix
        self.max_clients = max_clients
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s  # how often an idle handler checks that its browser is still there
        self.max_scenes = max_scenes
        self.max_pending = max_pending
        self._redis: AnyRedis | None = None
        self._wakers: dict[int, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._closing = False

    @property
    def clients(self) -> int:
        """SSE clients connected right now."""
        return len(self._wakers)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: one Redis client for the application's lifetime."""
        self._redis = open_client(self.redis_url, self.cluster, decode_responses=True)
        yield
        await self._redis.aclose()
        self._redis = None

    async def shutdown(self, app: web.Application) -> None:
        """on_shutdown: end every SSE response so the server can stop promptly."""
        self._closing = True
        for wake in self._wakers.values():
            wake.set()

    async def index(self, request: web.Request) -> web.FileResponse:
        """`GET /`: the live page."""
        return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    def _authorised(self, request: web.Request) -> bool:
        if not self._tokens:
            return True
        header = request.headers.get("Authorization", "")
        supplied = request.query.get("token") or header.removeprefix("Bearer ").strip()
        given = supplied.encode()
        # compare against every token, always: no early exit that times a match
        return sum(hmac.compare_digest(given, t) for t in self._tokens) > 0

    async def live(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/live[?stream=ID][&kinds=scene,events,status]`: SSE of live messages."""
        if not self._authorised(request):
            return problem_response(
                401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"}
            )
        stream = request.query.get("stream") or None
        if stream is not None and not _STREAM_ID.match(stream):
            return problem_response(400, "stream must match " + STREAM_ID_PATTERN)
        kinds = [k for k in request.query.get("kinds", ",".join(CHANNEL_KINDS)).split(",") if k]
        if not kinds or any(k not in CHANNEL_KINDS for k in kinds):
            return problem_response(400, "kinds is a comma list of: " + ", ".join(CHANNEL_KINDS))
        if self._closing or self._redis is None:
            return problem_response(503, "shutting down", headers={"Retry-After": "5"})
        if len(self._wakers) >= self.max_clients:
            return problem_response(503, "too many live viewers", headers={"Retry-After": "10"})
        client_id = next(self._ids)
        wake = asyncio.Event()
        self._wakers[client_id] = wake  # counted before any await: max_clients holds
        try:
            return await self._serve(request, client_id, wake, stream, kinds)
        finally:
            del self._wakers[client_id]

    async def _serve(
        self,
        request: web.Request,
        client_id: int,
        wake: asyncio.Event,
        stream: str | None,
        kinds: list[str],
    ) -> web.StreamResponse:
        assert self._redis is not None
        sub = subscription(self.prefix, stream, kinds)
        try:
            if self.cluster:
                pubsub = await sharded.subscribe_channels(self._redis, sub.channels, ())
            else:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                if sub.channels:
                    await pubsub.subscribe(*sub.channels)
                if sub.patterns:
                    await pubsub.psubscribe(*sub.patterns)
        except REDIS_ERRORS:
            await close_pubsub(pubsub)
            logger.warning("live view: redis unavailable", extra={"client": client_id})
            return problem_response(503, "redis unavailable", headers={"Retry-After": "5"})
        buffer = ClientBuffer(max_scenes=self.max_scenes, max_pending=self.max_pending)
        if "status" in kinds:
            self._current_status(buffer, stream)
        reading = (
            self._read_sharded(pubsub, sub.patterns, buffer, wake, stream)
            if self.cluster
            else self._read(pubsub, buffer, wake, stream)
        )
        reader = asyncio.create_task(reading, name=f"live-sse-reader-{client_id}")
        reader.add_done_callback(lambda _: wake.set())
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # proxies must not buffer an event stream
            }
        )
        try:
            await response.prepare(request)
            await response.write(f"retry: {_RETRY_MS}\n: connected\n\n".encode())
            await self._pump(request, response, buffer, wake, reader)
        except ConnectionError:
            pass  # the browser went away mid-write: nothing to tell it
        finally:
            reader.cancel()
            try:
                await asyncio.wait({reader})  # our own cancellation still propagates
            finally:
                await close_pubsub(pubsub)
            logger.info(
                "live view closed",
                extra={
                    "client": client_id,
                    "dropped_scenes": buffer.dropped_scenes,
                    "stream": stream,
                },
            )
        return response

    def _current_status(self, buffer: ClientBuffer, stream: str | None) -> None:
        """Queue the current status of the live streams (or of `stream`) for a new client.

        Taken after SUBSCRIBE: a change racing with it arrives again from Redis, so the page
        ends on the latest status either way.
        """
        if self._statuses is None:
            return
        now = time.time()
        for name, state, reason in self._statuses():
            if stream is None or name == stream:
                message = status_message(stream=name, state=state, reason=reason, published_at=now)
                buffer.push("status", encode(message))

    def _forward(
        self, message: dict[str, Any], buffer: ClientBuffer, wake: asyncio.Event, stream: str | None
    ) -> bool:
        """Route one Redis message into the client's buffer; False when the client must be cut
        off (too slow even for events)."""
        data = message["data"]
        kind = route(self.prefix, message["channel"], data, stream)
        if kind is None:
            return True
        ok = buffer.push(kind, data)
        wake.set()
        if not ok:
            logger.warning("live view too slow for events: cut off")
        return ok

    async def _read(
        self, pubsub: PubSub, buffer: ClientBuffer, wake: asyncio.Event, stream: str | None
    ) -> None:
        """Moves Redis messages into the client's buffer; ends when the client must be cut."""
        try:
            async for message in pubsub.listen():
                if message.get("type") not in ("message", "pmessage"):
                    continue
                if not self._forward(message, buffer, wake, stream):
                    return
        except (aioredis.RedisError, OSError):
            logger.warning("live view lost redis", exc_info=True)
        except Exception:
            logger.exception("live view reader failed")

    async def _read_sharded(
        self,
        pubsub: PubSub,
        patterns: Sequence[str],
        buffer: ClientBuffer,
        wake: asyncio.Event,
        stream: str | None,
    ) -> None:
        """`_read` on a cluster: patterns become the channels of the advertised streams."""
        assert self._redis is not None
        known: set[str] = set()
        last_scan = -float("inf")
        try:
            while True:
                if patterns and time.monotonic() - last_scan >= 1.0:
                    last_scan = time.monotonic()
                    new = await sharded.live_streams(self._redis, self.prefix) - known
                    known |= new
                    channels = [p.replace("*", s) for p in patterns for s in sorted(new)]
                    await sharded.add_channels(pubsub, channels)
                message = await sharded.next_message(pubsub, self.poll_s)
                if message is None or message.get("type") not in sharded.DATA_TYPES:
                    continue
                if not self._forward(message, buffer, wake, stream):
                    return
        except REDIS_ERRORS:
            logger.warning("live view lost redis", exc_info=True)
        except Exception:
            logger.exception("live view reader failed")

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        buffer: ClientBuffer,
        wake: asyncio.Event,
        reader: asyncio.Task[None],
    ) -> None:
        """Writes buffered messages; a write that blocks on a slow browser lets scenes drop."""
        last_write = time.monotonic()
        reported_drops = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await wake.wait()
            wake.clear()
            transport = request.transport
            if self._closing or transport is None or transport.is_closing():
                return
            chunks = []
            if buffer.dropped_scenes != reported_drops:  # before the items: a running total
                reported_drops = buffer.dropped_scenes
                lag = json.dumps({"dropped_scenes": reported_drops})
                chunks.append(format_event("lag", lag))
            chunks += [format_event(kind, data) for kind, data in buffer.drain()]
            if chunks:
                await response.write(b"".join(chunks))
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= self.heartbeat_s:
                await response.write(b": ping\n\n")  # keeps proxies open, detects a gone peer
                last_write = time.monotonic()
            if reader.done():
                return  # cut off (overflow) or Redis lost: the browser reconnects


LIVE_BRIDGE = web.AppKey("scenestream_live_bridge", LiveBridge)
