"""`WorkerDirectory` on a real redis-server: adverts, claims across workers, the peer choice,
graceful withdrawal, and `offline` for the streams of a worker that vanished without a word."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from stream.embedded_redis import EmbeddedRedis
from stream.scaleout.advert import Keys
from stream.scaleout.directory import WorkerDirectory
from tests.support.whip_support import wait_for, wait_for_async

pytestmark = pytest.mark.integration

PREFIX = "t"
KEYS = Keys(PREFIX)


@asynccontextmanager
async def directory(
    url: str,
    worker: str,
    max_streams: int,
    lost: list[str] | None = None,
    ttl_s: float = 3.0,
    refresh_s: float = 0.2,
) -> AsyncIterator[WorkerDirectory]:
    d = WorkerDirectory(
        aioredis.Redis.from_url(url), PREFIX, max_streams, ttl_s=ttl_s, refresh_s=refresh_s,
        on_lost=None if lost is None else lost.append, worker_id=worker,
    )  # fmt: skip
    await d.start(f"http://{worker}.example:8080/")
    try:
        yield d
    finally:
        await d.close()


async def test_advert_carries_load_and_is_withdrawn_on_close(redis_server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    async with directory(redis_server.url, "wa", 4) as a:
        assert await a.claim("cam1")

        async def advert_counts_it() -> bool:
            raw = await client.get(KEYS.advert("wa"))
            return raw is not None and json.loads(raw)["streams"] == 1

        await wait_for_async(advert_counts_it, 3, "the advert to count the stream")
        raw = await client.get(KEYS.advert("wa"))
        assert raw is not None
        advert = json.loads(raw)
        assert advert["url"] == "http://wa.example:8080"
        assert (advert["streams"], advert["max_streams"]) == (1, 4)
        assert 0 < await client.pttl(KEYS.advert("wa")) <= 3000
        assert await client.smembers(KEYS.streams("wa")) == {b"cam1"}
        assert await client.get(KEYS.claim("cam1")) == b"wa"
        await a.drain()  # shutting down: no room advertised, streams still claimed
        raw = await client.get(KEYS.advert("wa"))
        assert raw is not None
        assert json.loads(raw)["max_streams"] == 0
        assert await client.get(KEYS.claim("cam1")) == b"wa"
    assert await client.keys("t:*") == []  # graceful: nothing left behind
    await client.aclose()


async def test_claim_is_unique_across_workers_and_freed_on_release(
    redis_server: EmbeddedRedis,
) -> None:
    async with (
        directory(redis_server.url, "wa", 4) as a,
        directory(redis_server.url, "wb", 4) as b,
    ):
        assert await a.claim("cam1")
        assert not await b.claim("cam1")
        a.release_soon("cam1")

        async def released() -> bool:
            return await b.client.get(KEYS.claim("cam1")) is None

        await wait_for_async(released, 3, "the claim to be released")
        assert await b.claim("cam1")
        assert not await a.claim("cam1")


async def test_stream_restarted_before_its_release_ran_keeps_its_claim(
    redis_server: EmbeddedRedis,
) -> None:
    async with (
        directory(redis_server.url, "wa", 4, refresh_s=30) as a,  # no refresh heals it here
        directory(redis_server.url, "wb", 4) as b,
    ):
        assert await a.claim("cam1")
        a.release_soon("cam1")  # the old session ended...
        assert await a.claim("cam1")  # ...and the sender is back before the release ran
        await wait_for(lambda: not a._pending, 3, "the pending release to run")
        assert not await b.claim("cam1")
        assert await a.client.smembers(KEYS.streams("wa")) == {b"cam1"}


async def test_claims_outlive_their_ttl_while_refreshed(redis_server: EmbeddedRedis) -> None:
    async with (
        directory(redis_server.url, "wa", 4, ttl_s=0.6) as a,
        directory(redis_server.url, "wb", 4, ttl_s=0.6) as b,
    ):
        assert await a.claim("cam1")
        await asyncio.sleep(1.5)  # more than twice the TTL
        assert not await b.claim("cam1")


async def test_peer_with_room_is_the_emptiest_other_worker(redis_server: EmbeddedRedis) -> None:
    async with (
        directory(redis_server.url, "wa", 1) as a,
        directory(redis_server.url, "wb", 2) as b,
        directory(redis_server.url, "wc", 3) as c,
    ):
        assert await a.claim("s1")
        assert await c.claim("s2")

        def chosen(worker: str | None) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                peer = await a.peer_with_room()
                return (peer.worker_id if peer is not None else None) == worker

            return check

        await wait_for_async(chosen("wb"), 3, "wb as the emptiest peer")
        peer = await a.peer_with_room()
        assert peer is not None
        assert (peer.worker_id, peer.url, peer.room) == ("wb", "http://wb.example:8080", 2)
        assert await b.claim("s3")
        assert await b.claim("s4")
        await wait_for_async(chosen("wc"), 3, "wc once wb is full")
        assert await c.claim("s5")
        assert await c.claim("s6")
        await wait_for_async(chosen(None), 3, "no peer once all are full")  # the endpoint: 503


async def test_streams_of_a_vanished_worker_are_reported_lost_once(
    redis_server: EmbeddedRedis,
) -> None:
    lost_b: list[str] = []
    lost_c: list[str] = []
    async with (
        directory(redis_server.url, "wb", 4, lost_b, ttl_s=0.6) as b,
        directory(redis_server.url, "wc", 4, lost_c, ttl_s=0.6),
    ):
        a = WorkerDirectory(
            aioredis.Redis.from_url(redis_server.url), PREFIX, 4, ttl_s=0.6, refresh_s=0.2,
            worker_id="wa",
        )  # fmt: skip
        await a.start("http://wa.example:8080")
        assert await a.claim("cam1")
        assert await a.claim("cam2")
        assert await a.claim("moved")

        async def advertised() -> bool:
            raw = await b.client.get(KEYS.advert("wa"))
            return raw is not None and json.loads(raw)["streams"] == 3

        await wait_for_async(advertised, 3, "wa's advert with its three streams")
        # "wa" dies without a word: its task stops, nothing is withdrawn.
        assert a._task is not None
        a._task.cancel()
        await asyncio.gather(a._task, *a._pending, return_exceptions=True)
        await a.client.aclose()
        # "moved" reconnects to wb before the reaper runs: it must not be declared offline.
        await b.client.delete(KEYS.claim("moved"))
        assert await b.claim("moved")
        await wait_for(lambda: len(lost_b) + len(lost_c) >= 2, 5, "lost streams reported")
        await asyncio.sleep(0.5)  # a second report would show up by now
        assert sorted(lost_b + lost_c) == ["cam1", "cam2"]
        assert not (lost_b and lost_c), "both workers reported the same loss"
        client = b.client
        assert sorted(await client.zrange(KEYS.index, 0, -1)) == [b"wb", b"wc"]
        assert await client.exists(KEYS.claim("cam1")) == 0
        assert await client.get(KEYS.claim("moved")) == b"wb"


async def test_worker_refusing_for_headroom_advertises_no_room(redis_server: EmbeddedRedis) -> None:
    async with (
        directory(redis_server.url, "wa", 8) as a,
        directory(redis_server.url, "wb", 8) as b,
    ):
        assert await a.claim("cam1")

        async def peer_of_b() -> str | None:
            peer = await b.peer_with_room()
            return None if peer is None else peer.worker_id

        await wait_for_async(lambda: _is(peer_of_b, "wa"), 3, "wa to have room")
        a.set_room(False)  # the load monitor of wa says: no headroom
        await wait_for_async(lambda: _is(peer_of_b, None), 3, "wa to advertise no room")
        a.set_room(True)
        await wait_for_async(lambda: _is(peer_of_b, "wa"), 3, "wa to have room again")


async def _is(read: Callable[[], Awaitable[str | None]], expected: str | None) -> bool:
    return await read() == expected
