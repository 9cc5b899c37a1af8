"""Subscribing to scenestream: a small async API (`scenestream events` is built on it).

    async for msg in subscribe("redis://127.0.0.1:6379/0", streams=["cam1"]):
        ...

Scene messages and status changes come over pub/sub (a consumer that was away misses them: they
are superseded by the next anyway). Lifecycle events are read from each stream's Redis Stream log
(`{prefix}:{stream}:log`, `XREAD BLOCK` from the last id seen), not from pub/sub, so after a
dropped connection or a Redis restart the subscriber resumes exactly where it was and misses no
event that reached the log. With `streams=None`, new streams' logs are discovered by `SCAN`
about once a second and read from their first entry. The publisher writes the log at least once
(a batch whose reply was lost to a dropped connection is sent again, with `published_at`
stamped again), so an entry whose `uid` field repeats one of the last `REPEAT_MEMORY` entries of
its log is dropped (and counted in `repeats`); an entry without a `uid` (written by something
else) is compared by its bytes instead.

Every message is parsed and validated against the shipped JSON Schema; invalid ones are logged
and skipped. Use `Subscription` as an async context manager when you need to know the
subscription is in place before something else starts publishing.

On a Redis Cluster (`cluster=True`, or "auto": asked of the server) scene and status messages
come by sharded pub/sub (`SSUBSCRIBE`, same channel names) and each log is read with its own
`XREAD`; with `streams=None`, streams for scene messages are discovered from the workers'
advertised stream sets (a cluster has no sharded pattern subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from stream.publish.messages import InvalidMessage, Message, decode
from stream.scaleout import sharded
from stream.scaleout.redis_client import (
    REDIS_ERRORS,
    AnyRedis,
    close_pubsub,
    open_client,
    resolve_cluster,
)

logger = logging.getLogger(__name__)

KINDS = ("scene", "events", "status")
DEFAULT_KINDS = ("events", "status")
REPEAT_MEMORY = 64  # log entries per stream remembered to drop repeated writes
_DONE = object()


def _cancel_requested() -> bool:
    """True once someone cancelled the current task, even if a library swallowed the
    `CancelledError` (redis-py can turn it into a `ConnectionError` or a normal reply when the
    cancellation lands on a reconnecting socket): the readers check it after every command."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _stream_id(text: str) -> tuple[int, int]:
    """A Redis Stream id `ms-seq` as a comparable pair."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _public_url(url: str) -> str:
    """The URL without credentials (for error messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Subscription:
    """A live subscription (see the module docstring); iterate it for messages."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "scenestream",
        streams: Iterable[str] | None = None,
        kinds: Iterable[str] = DEFAULT_KINDS,
        block_ms: int = 1000,
        scan_interval_s: float = 1.0,
        backoff_max_s: float = 2.0,
        queue_max: int = 1000,
        cluster: bool | Literal["auto"] = "auto",
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.prefix = prefix
        self.streams = None if streams is None else frozenset(streams)
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be among {KINDS}, got {sorted(self.kinds)}")
        self.block_ms = block_ms
        self.scan_interval_s = scan_interval_s
        self.backoff_max_s = backoff_max_s
        self.reconnects = 0
        self.invalid = 0
        self.cursors: dict[str, str] = {}  # log key -> last id read
        self.repeats = 0  # log entries dropped as repeats of a recent one (at-least-once writes)
        self._recent: dict[str, deque[bytes]] = {}  # log key -> last entries' uids (or bytes)
        self._queue: asyncio.Queue[Message | BaseException] = asyncio.Queue(maxsize=queue_max)
        self._client: AnyRedis | None = None
        self._scene_streams: set[str] = set()  # cluster, streams=None: discovered so far
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> Subscription:
        self.cluster = await resolve_cluster(self.url, self.cluster)
        self._client = open_client(
            self.url,
            self.cluster,
            retry=Retry(NoBackoff(), 0),  # reconnection is ours: with backoff, resuming
            socket_connect_timeout=5.0,
            socket_timeout=self.block_ms / 1000 + 10.0,
        )
        try:
            await self._client.ping()
            if "events" in self.kinds:
                await self._init_cursors()
            if self.kinds & {"scene", "status"}:
                self._pubsub = await self._open_pubsub()
        except REDIS_ERRORS as exc:
            await self._close_client()
            raise ConnectionError(f"cannot reach Redis at {_public_url(self.url)}: {exc}") from exc
        if "events" in self.kinds:
            self._spawn(self._read_logs(), "subscribe-logs")
        if self._pubsub is not None:
            self._spawn(self._read_pubsub(), "subscribe-pubsub")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and close the connections."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=2.0)
            if pending and isinstance(self._client, aioredis.Redis):
                # A read that ignored its cancellation: cut the sockets under it.
                await self._client.connection_pool.disconnect()
                await asyncio.wait(pending, timeout=2.0)
        self._tasks.clear()
        await self._close_client()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    # -- setup ------------------------------------------------------------------------------
    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._reader_done)
        self._tasks.append(task)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a Redis outage (those are retried): surface it to the consumer.
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(task.exception())  # type: ignore[arg-type]

    def _log_key(self, stream: str) -> str:
        return f"{self.prefix}:{stream}:log"

    async def _init_cursors(self) -> None:
        """Start every known log at its newest entry: events from now on."""
        assert self._client is not None
        keys = [self._log_key(s) for s in self.streams] if self.streams else await self._scan()
        for key in keys:
            last: Any = await self._client.xrevrange(key, count=1)
            self.cursors[key] = last[0][0].decode() if last else "0-0"

    async def _scan(self) -> list[str]:
        assert self._client is not None
        pattern = f"{self.prefix}:*:log"
        return [k.decode() async for k in self._client.scan_iter(match=pattern, _type="stream")]

    async def _open_pubsub(self) -> PubSub:
        assert self._client is not None
        channels = [f"{self.prefix}:status"] if "status" in self.kinds else []
        patterns = []
        if "scene" in self.kinds:
            if self.streams is not None:
                channels += [f"{self.prefix}:{s}:scene" for s in self.streams]
            elif self.cluster:
                self._scene_streams = await sharded.live_streams(self._client, self.prefix)
                channels += [f"{self.prefix}:{s}:scene" for s in self._scene_streams]
            else:
                patterns.append(f"{self.prefix}:*:scene")
        return await sharded.subscribe_channels(self._client, channels, patterns)

    async def _discover_scene_streams(self) -> None:
        """Cluster, all streams: subscribe to the scene channels of newly advertised streams."""
        assert self._client is not None
        assert self._pubsub is not None
        new = await sharded.live_streams(self._client, self.prefix) - self._scene_streams
        await sharded.add_channels(self._pubsub, (f"{self.prefix}:{s}:scene" for s in new))
        self._scene_streams |= new

    async def _close_client(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await close_pubsub(pubsub)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # -- readers ----------------------------------------------------------------------------
    async def _emit(self, raw: bytes | str) -> None:
        try:
            msg = decode(raw)
        except InvalidMessage as exc:
            self.invalid += 1
            logger.warning("invalid message skipped", extra={"error": str(exc)[:200]})
            return
        if self.streams is not None and msg.get("stream") not in self.streams:
            return
        await self._queue.put(msg)

    async def _read_logs(self) -> None:
        assert self._client is not None
        client = self._client
        last_scan = time.monotonic() if self.streams is None else float("inf")
        backoff = 0.1
        resync = False
        while True:
            try:
                if resync:
                    await self._resync_cursors()
                    resync = False
                if time.monotonic() - last_scan >= self.scan_interval_s:
                    last_scan = time.monotonic()
                    for key in await self._scan():
                        self.cursors.setdefault(key, "0-0")  # new since we started
                if not self.cursors:
                    await asyncio.sleep(self.scan_interval_s)
                    continue
                replies = await sharded.read_logs(client, self.cursors, self.block_ms, 500)
                backoff = 0.1
            except REDIS_ERRORS:
                if self._closing or _cancel_requested():
                    raise asyncio.CancelledError from None
                self.reconnects += 1
                resync = True
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            if self._closing or _cancel_requested():
                raise asyncio.CancelledError
            for key, entries in replies:
                name = key.decode()
                recent = self._recent.setdefault(name, deque(maxlen=REPEAT_MEMORY))
                for entry_id, fields in entries:
                    self.cursors[name] = entry_id.decode()
                    data = fields.get(b"data", b"")
                    seen = fields.get(b"uid") or data
                    if seen in recent:
                        self.repeats += 1
                        continue
                    recent.append(seen)
                    await self._emit(data)

    async def _resync_cursors(self) -> None:
        """After a reconnect: a log whose newest id is below our cursor (or that is gone) is
        not the one we were reading — Redis restarted without persistence, possibly with its
        clock behind — so it is read from its start rather than silently skipped."""
        assert self._client is not None
        for key, cursor in list(self.cursors.items()):
            last: Any = await self._client.xrevrange(key, count=1)
            newest = last[0][0].decode() if last else "0-0"
            if _stream_id(newest) < _stream_id(cursor):
                self.cursors[key] = "0-0"

    async def _read_pubsub(self) -> None:
        backoff = 0.1
        discover = self.cluster and self.streams is None and "scene" in self.kinds
        last_scan = time.monotonic()
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._open_pubsub()
                if discover and time.monotonic() - last_scan >= self.scan_interval_s:
                    last_scan = time.monotonic()
                    await self._discover_scene_streams()
                msg = await sharded.next_message(self._pubsub, self.block_ms / 1000)
                backoff = 0.1
            except REDIS_ERRORS:
                if self._closing or _cancel_requested():
                    raise asyncio.CancelledError from None
                self.reconnects += 1
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await close_pubsub(pubsub)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            if self._closing or _cancel_requested():
                raise asyncio.CancelledError
            if msg is not None and msg.get("type") in sharded.DATA_TYPES:
                await self._emit(msg["data"])


async def subscribe(
    url: str,
    *,
    prefix: str = "scenestream",
    streams: Iterable[str] | None = None,
    kinds: Iterable[str] = DEFAULT_KINDS,
    cluster: bool | Literal["auto"] = "auto",
) -> AsyncGenerator[Message, None]:
    """Yield validated messages of the given kinds (`scene`, `events`, `status`) for the given
    streams (None: all), reconnecting by itself and resuming lifecycle events from the log.

    `cluster`: a Redis Cluster (sharded pub/sub); "auto" asks the server. Raises
    `ConnectionError` if Redis cannot be reached at the start. Close it with
    `contextlib.aclosing` (or let the loop end) to stop its reader tasks promptly.
    """
    async with Subscription(
        url, prefix=prefix, streams=streams, kinds=kinds, cluster=cluster
    ) as sub:
        async for msg in sub:
            yield msg
