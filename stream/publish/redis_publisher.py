"""Publishes scene messages, lifecycle events and stream status to Redis (`redis.asyncio`).

Keys (prefix configurable, README "Redis: channels and messages"): `{prefix}:{stream}:scene` and
`{prefix}:{stream}:events` (pub/sub), `{prefix}:status` (pub/sub), and every lifecycle event is
also appended to the Redis Stream `{prefix}:{stream}:log` (`XADD MAXLEN ~ N`) for consumers
that were away. The log entry is written before the PUBLISH in the same pipeline, so a
subscriber that sees an event live can always find it in the log. Each log entry carries, next
to the message (`data`), a `uid` unique to that message and the same on every resend: delivery
is at-least-once and a resent message is stamped again (`published_at`), so subscribers drop a
repeat by its `uid`, not by its bytes.

`publish` never blocks: messages go into a bounded `Outbox` and one writer task sends them in
pipelined batches. When Redis is unreachable the service keeps working, the outbox buffers
(dropping the oldest scene messages first), the writer reconnects with exponential backoff and
flushes the backlog in order. Cancelling the writer mid-send puts the batch back into the
outbox (redis-py drops the half-used connection), so nothing is lost or read out of step.

With `cluster=True` (a Redis Cluster) the client is a `RedisCluster` and messages go out with
sharded pub/sub (`SPUBLISH`) on the same channel names: each channel lives on the shard its
whole name hashes to, and a log key on its own shard, so no command spans two slots.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from stream.metrics import Metrics
from stream.publish.messages import Message, encode, stamp_published, status_message
from stream.publish.outbox import Kind, Outbox, Outgoing
from stream.publish.status import StreamState
from stream.scaleout.redis_client import REDIS_ERRORS, AnyRedis, open_client, redis_problem

logger = logging.getLogger(__name__)

KINDS: dict[str, Kind] = {"scene": "scene", "event": "event", "status": "status"}


def _cancel_requested() -> bool:
    """True once the current task was cancelled, even if a library swallowed the error."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class RedisPublisher:
    """The Redis side of the service; also the `StatusSink` that sessions report to.

    `on_sent(message)` (optional) is called for each message Redis acknowledged, after its
    `published_at` was stamped: the pipeline uses it for capture-to-publish accounting.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        metrics: Metrics,
        outbox_max: int = 10_000,
        log_maxlen: int = 10_000,
        *,
        batch_max: int = 256,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
        socket_timeout_s: float = 5.0,
        on_sent: Callable[[Message], None] | None = None,
        cluster: bool = False,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.prefix = prefix
        self.metrics = metrics
        self.log_maxlen = log_maxlen
        self.batch_max = batch_max
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.socket_timeout_s = socket_timeout_s
        self.on_sent = on_sent
        self.outbox = Outbox(outbox_max)
        self.connected = False
        self.protocol_errors = 0  # replies that did not match their commands (never expected)
        self._client: AnyRedis | None = None
        self._writer_id = secrets.token_hex(6)  # with an outbox key: a log entry's `uid`
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- keys -------------------------------------------------------------------------------
    def channel(self, stream: str, kind: str) -> str:
        """Pub/sub channel of a message kind (`scene`, `events`) or the status channel."""
        return f"{self.prefix}:status" if kind == "status" else f"{self.prefix}:{stream}:{kind}"

    def log_key(self, stream: str) -> str:
        """The Redis Stream holding a stream's lifecycle events."""
        return f"{self.prefix}:{stream}:log"

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the client and start the writer (a down Redis is not an error: it buffers).

        May be called again after `close`: whatever the outbox still holds is sent then.
        """
        if self._writer is not None and not self._writer.done():
            return
        if self._client is None:
            self._client = open_client(
                self.url,
                self.cluster,
                retry=Retry(NoBackoff(), 0),  # the writer owns retries: in order, with backoff
                socket_connect_timeout=self.socket_timeout_s,
                socket_timeout=self.socket_timeout_s,
            )
        self._writer = asyncio.create_task(self._run(), name="redis-publisher")
        self._wake.set()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every buffered message is acknowledged; False if time ran out."""
        try:
            async with asyncio.timeout(timeout_s):
                while len(self.outbox):
                    self._idle.clear()
                    self._wake.set()
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float = 5.0) -> int:
        """Flush for at most `timeout_s`, then stop the writer and the client.

        Returns the number of messages left undelivered (still in the outbox).
        """
        if self._writer is not None and not self._writer.done():
            await self.flush(timeout_s)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self.connected = False
        left = len(self.outbox)
        if left:
            logger.warning("publisher closed with undelivered messages", extra={"count": left})
        return left

    # -- input (never blocks) ---------------------------------------------------------------
    def publish(self, message: Message) -> None:
        """Queue a scene, event or status message for Redis."""
        kind = KINDS[message["type"]]
        dropped = self.outbox.push(Outgoing(kind, message, time.monotonic()))
        for item in dropped:
            self.metrics.outbox_dropped.labels(type=item.kind).inc()
        self.metrics.outbox_depth.set(len(self.outbox))
        self._wake.set()

    def stream_status(self, stream: str, state: StreamState, reason: str) -> None:
        """`StatusSink`: publish a stream's status change on `{prefix}:status`."""
        self.publish(
            status_message(stream=stream, state=state, reason=reason, published_at=time.time())
        )

    # -- the writer -------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = self.backoff_initial_s
        while True:
            if not self.outbox.waiting:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self.outbox.take(self.batch_max)
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                self.outbox.failed()  # back in front, in order: nothing lost
                raise
            except REDIS_ERRORS as exc:
                if _cancel_requested():  # redis-py reported our cancellation as an error
                    self.outbox.failed()
                    raise asyncio.CancelledError from None
                self._count_drops(self.outbox.failed())
                self._failed(batch, exc)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            self.outbox.done()
            backoff = self.backoff_initial_s
            self._sent(batch)
            if _cancel_requested():  # a cancellation swallowed below us still stops us
                raise asyncio.CancelledError

    async def _send(self, batch: list[Outgoing]) -> None:
        assert self._client is not None
        now = time.time()
        expected: list[type] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for item in batch:
                msg = item.message
                stamp_published(msg, now)
                text = encode(msg)
                stream = str(msg["stream"])
                if item.kind == "event":
                    pipe.xadd(
                        self.log_key(stream),
                        {"data": text, "uid": f"{self._writer_id}-{item.key}"},
                        maxlen=self.log_maxlen,
                        approximate=True,
                    )
                    self._publish(pipe, self.channel(stream, "events"), text)
                    expected += [bytes, int]
                else:
                    self._publish(pipe, self.channel(stream, item.kind), text)
                    expected.append(int)
            replies = await pipe.execute()
        # A reply of the wrong type means the connection is out of step with its commands:
        # never trust it, resend (the pipeline context has returned the connection already).
        if len(replies) != len(expected) or not all(
            isinstance(r, t) for r, t in zip(replies, expected, strict=False)
        ):
            self.protocol_errors += 1
            if isinstance(self._client, aioredis.Redis):
                await self._client.connection_pool.disconnect()
            raise RedisError("pipeline replies out of step with commands")

    def _publish(self, pipe: Any, channel: str, text: str) -> None:
        if self.cluster:
            pipe.spublish(channel, text)
        else:
            pipe.publish(channel, text)

    def _sent(self, batch: list[Outgoing]) -> None:
        if not self.connected:
            self.connected = True
            logger.info("redis publisher connected", extra={"backlog": len(self.outbox)})
        now = time.monotonic()
        for item in batch:
            engine = item.message.get("engine")
            if isinstance(engine, str):
                self.metrics.stage_seconds.labels(stage="publish", engine=engine).observe(
                    now - item.queued_at
                )
            if self.on_sent is not None:
                try:
                    self.on_sent(item.message)
                except Exception:
                    logger.exception("on_sent hook failed")
        self.metrics.outbox_depth.set(len(self.outbox))

    def _failed(self, batch: list[Outgoing], exc: BaseException) -> None:
        fresh = [item for item in batch if not item.failed]
        for item in fresh:
            item.failed = True
        self.metrics.publish_failures.inc(len(fresh))
        self.metrics.outbox_depth.set(len(self.outbox))
        if self.connected:
            self.connected = False
            logger.warning(
                "redis %s; buffering in the outbox",
                redis_problem(exc),
                extra={"error": type(exc).__name__, "backlog": len(self.outbox)},
            )

    def _count_drops(self, dropped: list[Outgoing]) -> None:
        for item in dropped:
            self.metrics.outbox_dropped.labels(type=item.kind).inc()

    def stats(self) -> dict[str, Any]:
        """Connection state and outbox figures, for `/api/streams` and `/readyz`."""
        return {
            "connected": self.connected,
            "outbox": len(self.outbox),
            "dropped": dict(self.outbox.dropped),
        }
