"""Hostile offers against the running service: real redis-server, scale-out claims, real aiortc.

2,000 seeded mutations of real publishers' offers (`tests/support/sdp_mutations.py`) are posted
to a whole worker (engines, publisher, worker directory on a real Redis): none may get a 5xx or
leave a task exception unretrieved, and afterwards no stream, session or Redis claim is left and
a good offer still gets 201. The 16 broken offers that used to leak every slot are replayed too.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from stream.config import load_settings
from stream.embedded_redis import EmbeddedRedis
from stream.ingest.session import IngestSession
from stream.service import Service
from tests.support.sdp_mutations import load_offers, mutations
from tests.support.whip_support import wait_for, wait_for_async

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]

FUZZ_COUNT = int(os.environ.get("SCENESTREAM_FUZZ_COUNT", "2000"))
FUZZ_SEED = int(os.environ.get("SCENESTREAM_FUZZ_SEED", "14"))
CONCURRENCY = 4
PREFIX = "fuzz"
# The offer from issue 14 (its lines, CRLF-separated): aiortc asserted on its m-line, and each
# POST leaked a stream slot and its Redis claim.
ISSUE_OFFER = b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 x 96\r\n"


class Unretrieved:
    """The loop's exception handler, recording what would otherwise only be logged."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        loop.default_exception_handler(context)


@asynccontextmanager
async def worker(redis_url: str, max_streams: int = 8) -> AsyncIterator[Service]:
    """A whole worker (silero-vad only: light) with scale-out claims on `redis_url`."""
    settings = load_settings(
        None,
        server={"port": 0, "max_streams": max_streams, "post_rate_per_minute": 1_000_000},
        session={"setup_timeout_s": 5.0, "media_timeout_s": 5.0},
        redis={"url": redis_url, "prefix": PREFIX},
        engines={"enabled": ["silero-vad"]},
    )
    service = Service(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.close()


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str, str]:
    async with http.post(url, data=body, headers={"Content-Type": "application/sdp"}) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def claims(redis_url: str) -> list[bytes]:
    client = aioredis.from_url(redis_url)
    try:
        return [key async for key in client.scan_iter(f"{PREFIX}:_claims:*")]
    finally:
        await client.aclose()


async def assert_clean_and_good_offer_accepted(service: Service, redis_url: str) -> None:
    await wait_for(lambda: len(service.admission) == 0, 10, "every stream freed")
    assert service.admission.sessions() == []

    async def no_claims() -> bool:
        return not await claims(redis_url)

    await wait_for_async(no_claims, 10, "no stream claim left in Redis")
    async with aiohttp.ClientSession() as http:
        status, location, text = await post(
            http, f"{service.url}/whip/after", load_offers()["chromium.sdp"].encode()
        )
        assert status == 201, text
        async with http.delete(service.url + location) as resp:
            assert resp.status == 200
        async with http.get(f"{service.url}/metrics") as resp:
            assert "scenestream_active_streams 0.0" in await resp.text()


async def test_sixteen_broken_offers_are_400_and_the_seventeenth_good_one_is_201(
    redis_server: EmbeddedRedis,
) -> None:
    async with (
        worker(redis_server.url, max_streams=16) as service,
        aiohttp.ClientSession() as http,
    ):
        results = [await post(http, f"{service.url}/whip/cam{i}", ISSUE_OFFER) for i in range(16)]
        assert [status for status, _, _ in results] == [400] * 16, results[0][2]
        assert "m-line 1" in results[0][2]
        assert len(service.admission) == 0
        assert await claims(redis_server.url) == []
        status, location, text = await post(
            http, f"{service.url}/whip/cam16", load_offers()["aiortc.sdp"].encode()
        )
        assert status == 201, text
        async with http.get(f"{service.url}/api/streams") as resp:
            assert [r["stream"] for r in (await resp.json())["streams"]] == ["cam16"]
        async with http.delete(service.url + location) as resp:
            assert resp.status == 200


async def test_two_thousand_mutated_real_offers_never_5xx_and_leave_nothing(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    unretrieved = Unretrieved()
    loop.set_exception_handler(unretrieved)
    caplog.set_level(logging.WARNING)
    cases = mutations(FUZZ_COUNT, FUZZ_SEED)
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[tuple[int, str, str, str]] = []
    started = time.monotonic()
    try:
        async with worker(redis_server.url) as service, aiohttp.ClientSession() as http:
            queue = collections.deque(enumerate(cases))

            async def run() -> None:
                while queue:
                    i, (name, offer) = queue.popleft()
                    body = offer.encode("utf-8", "surrogatepass")
                    status, location, text = await post(http, f"{service.url}/whip/f{i}", body)
                    statuses[status] += 1
                    if status >= 500:
                        failures.append((status, name, offer, text))
                    if status == 201:
                        async with http.delete(service.url + location) as resp:
                            assert resp.status == 200

            await asyncio.gather(*(run() for _ in range(CONCURRENCY)))
            elapsed = time.monotonic() - started
            counts = dict(sorted(statuses.items()))
            print(f"{FUZZ_COUNT} mutated offers in {elapsed:.1f} s: {counts}")
            await assert_clean_and_good_offer_accepted(service, redis_server.url)
        gc.collect()  # a task exception nobody retrieved is reported when the task is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert not failures, failures[:3]
    assert sum(statuses.values()) == FUZZ_COUNT
    assert set(statuses) <= {201, 400, 422}, statuses
    assert min(statuses[201], statuses[400], statuses[422]) > 0  # the mutations reach every path
    assert unretrieved.contexts == []
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or "aiortc's parser" in r.msg]
    assert noisy == [], [r.getMessage() for r in noisy[:5]]


async def test_a_fault_of_ours_is_a_generic_500_logged_once_and_frees_everything(
    redis_server: EmbeddedRedis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(self: IngestSession, offer: str, kinds: object = ()) -> str:
        raise RuntimeError("'NoneType' object has no attribute 'transport'")

    monkeypatch.setattr(IngestSession, "answer", broken)
    caplog.set_level(logging.INFO, logger="stream")
    async with worker(redis_server.url) as service, aiohttp.ClientSession() as http:
        offer = load_offers()["firefox.sdp"].encode()
        async with http.post(f"{service.url}/whip/oops", data=offer,
                             headers={"Content-Type": "application/sdp"}) as resp:  # fmt: skip
            assert resp.status == 500
            assert resp.headers["Content-Type"].startswith("application/problem+json")
            detail = (await resp.json())["detail"]
        assert "NoneType" not in detail
        monkeypatch.undo()
        await assert_clean_and_good_offer_accepted(service, redis_server.url)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert getattr(logged[0], "stream", None) == "oops"
