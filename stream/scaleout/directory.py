"""`WorkerDirectory`: this worker's presence in Redis and the cross-worker admission decisions.

Every `refresh_s` one task (a) rewrites the advert with a TTL, (b) extends the claim of every
stream this worker carries, and (c) looks for peers whose advert has expired while they still
list streams: a worker killed without a graceful shutdown cannot publish `offline` itself, so the
first live worker to take the `reaper` lock (`SET NX`) publishes it for each of those streams,
unless the stream has been claimed again by a live worker since, and frees their claims.

Redis errors never stop the service: a failed claim admits the stream locally (availability over
strict uniqueness while Redis is away) and a failed peer lookup answers `503` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from stream.scaleout.advert import Advert, Keys, pick_peer
from stream.scaleout.redis_client import REDIS_ERRORS, AnyRedis

logger = logging.getLogger(__name__)

# Extend a claim only while it is still ours (it may have expired and been taken meanwhile).
_EXTEND = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"  # noqa: E501
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_ERRORS = REDIS_ERRORS


class WorkerDirectory:
    """Advertises one worker and answers the admission questions of its WHIP endpoint.

    `on_lost(stream)` is called (on the loop, must not block) for each stream of a lost worker;
    the composition root publishes `offline` status there.
    """

    def __init__(
        self,
        client: AnyRedis,
        prefix: str,
        max_streams: int,
        *,
        ttl_s: float = 3.0,
        refresh_s: float = 1.0,
        on_lost: Callable[[str], None] | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.max_streams = max_streams
        self.ttl_ms = int(ttl_s * 1000)
        self.refresh_s = refresh_s
        self.on_lost = on_lost
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.url = ""
        self.owned: set[str] = set()
        self.refusing = False  # admission by headroom: no room advertised while set
        self.reaped = 0
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._releases: dict[str, asyncio.Task[None]] = {}  # stream -> its release in flight

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, url: str) -> None:
        """Advertise at `url` (what peers put in their `307`) and keep the advert fresh."""
        self.url = url.rstrip("/")
        with contextlib.suppress(*_ERRORS):
            await self._advertise()
        self._task = asyncio.create_task(self._run(), name="scaleout-directory")

    def set_room(self, has_room: bool) -> None:
        """Admission by headroom changed its mind: while this worker refuses newcomers it
        advertises itself full at its current count, so that peers stop redirecting here."""
        self.refusing = not has_room
        self._refresh_soon()

    async def drain(self) -> None:
        """Shutdown begins: advertise no room, so that peers stop redirecting here (the advert
        itself stays until `close`, or peers would report our still-open streams as lost)."""
        self.max_streams = 0
        await self._advertise_quietly()

    async def close(self) -> None:
        """Graceful shutdown: stop refreshing, release claims, delete the advert and index."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        try:
            for stream in list(self.owned):
                await self._release(stream)
            await self.client.delete(self.keys.advert(self.worker_id))
            await self.client.delete(self.keys.streams(self.worker_id))
            await self.client.zrem(self.keys.index, self.worker_id)
        except _ERRORS:
            logger.warning("could not withdraw the worker advert; it expires by its TTL")
        with contextlib.suppress(*_ERRORS):
            await self.client.aclose()

    # -- admission (called by the WHIP endpoint) --------------------------------------------
    async def claim(self, stream: str) -> bool:
        """Claim `stream` for this worker; False if a live worker already owns it."""
        key = self.keys.claim(stream)
        releasing = self._releases.get(stream)
        if releasing is not None:  # the stream ended here a moment ago: let that finish first
            await asyncio.wait({releasing})
        try:
            won = await self.client.set(key, self.worker_id, nx=True, px=self.ttl_ms)
            if not won:
                owner: Any = await self.client.get(key)
                if owner is None or owner.decode() != self.worker_id:
                    return False
            await self.client.sadd(self.keys.streams(self.worker_id), stream)
        except _ERRORS:
            logger.warning("stream claim not checked: redis unavailable", extra={"stream": stream})
        self.owned.add(stream)
        self._refresh_soon()
        return True

    def release_soon(self, stream: str) -> None:
        """A session ended: free its claim in the background (the caller is synchronous)."""
        self.owned.discard(stream)
        if self._closed:
            return  # `close` released every claim already
        task = asyncio.get_running_loop().create_task(self._release(stream))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        self._releases[stream] = task
        task.add_done_callback(
            lambda t: self._releases.pop(stream, None) if self._releases.get(stream) is t else None
        )

    async def peer_with_room(self) -> Advert | None:
        """The live peer with the most room, or None (then the endpoint answers 503)."""
        try:
            ids: Any = await self.client.zrange(self.keys.index, 0, -1)
            others = [i.decode() for i in ids if i.decode() != self.worker_id]
            raws = [await self.client.get(self.keys.advert(i)) for i in others]
        except _ERRORS:
            return None
        adverts = [a for a in (Advert.decode(r) for r in raws if r is not None) if a is not None]
        return pick_peer(adverts, self.worker_id, time.time(), stale_s=self.ttl_ms / 1000)

    # -- the refresh loop -------------------------------------------------------------------
    async def _run(self) -> None:
        # Not `while True`: a cancellation that lands inside a redis-py command can come out as a
        # connection error (caught below), and `close` would then wait for this loop forever.
        while not self._closed:
            await asyncio.sleep(self.refresh_s)
            try:
                await self._advertise()
                for stream in list(self.owned):
                    await self._extend(stream)
                await self._reap()
            except _ERRORS as exc:
                logger.debug("worker advert not refreshed", extra={"error": str(exc)})

    async def _extend(self, stream: str) -> None:
        """Keep our claim; after a stall that let it expire, take it back if still free."""
        key = self.keys.claim(stream)
        if await self.client.eval(_EXTEND, 1, key, self.worker_id, self.ttl_ms):
            return
        if await self.client.set(key, self.worker_id, nx=True, px=self.ttl_ms):
            await self.client.sadd(self.keys.streams(self.worker_id), stream)
        else:
            logger.warning("stream claimed by another worker meanwhile", extra={"stream": stream})

    async def _advertise(self) -> None:
        now = time.time()
        capacity = min(self.max_streams, len(self.owned)) if self.refusing else self.max_streams
        advert = Advert(self.worker_id, self.url, len(self.owned), capacity, now)
        await self.client.set(self.keys.advert(self.worker_id), advert.encode(), px=self.ttl_ms)
        await self.client.zadd(self.keys.index, {self.worker_id: now})

    def _refresh_soon(self) -> None:
        """Publish the new load at once (a burst of POSTs must see it before the next tick)."""
        if self._task is None:
            return
        task = asyncio.get_running_loop().create_task(self._advertise_quietly())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _advertise_quietly(self) -> None:
        with contextlib.suppress(*_ERRORS):
            await self._advertise()

    async def _release(self, stream: str) -> None:
        with contextlib.suppress(*_ERRORS):
            await self.client.eval(_RELEASE, 1, self.keys.claim(stream), self.worker_id)
            await self.client.srem(self.keys.streams(self.worker_id), stream)
        if self._task is not None:
            await self._advertise_quietly()

    async def _reap(self) -> None:
        """Publish `offline` for the streams of peers whose advert has expired."""
        ids: Any = await self.client.zrange(self.keys.index, 0, -1)
        for worker in (i.decode() for i in ids):
            if worker == self.worker_id or await self.client.exists(self.keys.advert(worker)):
                continue
            if not await self.client.set(self.keys.reaper(worker), self.worker_id, nx=True, ex=30):
                continue  # another worker is on it
            streams: Any = await self.client.smembers(self.keys.streams(worker))
            for stream in sorted(s.decode() for s in streams):
                await self._reap_stream(worker, stream)
            await self.client.delete(self.keys.streams(worker))
            await self.client.zrem(self.keys.index, worker)
            logger.warning("worker lost", extra={"worker": worker, "streams": len(streams)})

    async def _reap_stream(self, worker: str, stream: str) -> None:
        key = self.keys.claim(stream)
        owner: Any = await self.client.get(key)
        if owner is not None and owner.decode() != worker:
            return  # the stream is live again elsewhere: not offline
        if owner is not None:
            await self.client.eval(_RELEASE, 1, key, worker)
        self.reaped += 1
        if self.on_lost is not None:
            self.on_lost(stream)
