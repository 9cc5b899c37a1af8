"""Publishing against a real redis-server: channels, the capped log, a Redis restart mid-stream,
and cancellation mid-publish through a delaying proxy."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
import redis.asyncio as aioredis

from stream.embedded_redis import EmbeddedRedis
from stream.metrics import Metrics
from stream.publish import messages as m
from stream.publish.redis_publisher import RedisPublisher
from tests.support.delay_proxy import DelayProxy
from tests.support.message_support import event

pytestmark = pytest.mark.integration


def scene(n: int, stream: str = "cam1") -> m.Message:
    return m.scene_message(
        stream=stream, engine="avfusion", seq=n, start=time.time() - 1, end=time.time(), gaps=(),
        scores={"siren": 0.5}, active=(), latency=m.LatencyBreakdown(0, 0, 0), published_at=0.0,
    )  # fmt: skip


async def log_entries(url: str, key: str) -> list[m.Message]:
    client = aioredis.Redis.from_url(url)
    try:
        entries = await client.xrange(key) or []
    finally:
        await client.aclose()
    return [m.decode((fields or {})[b"data"]) for _, fields in entries]


async def test_messages_reach_channels_and_events_the_log(redis_server: EmbeddedRedis) -> None:
    metrics = Metrics(process=False)
    sent: list[m.Message] = []
    pub = RedisPublisher(redis_server.url, "ss", metrics, log_maxlen=100, on_sent=sent.append)
    sub_client = aioredis.Redis.from_url(redis_server.url)
    pubsub = sub_client.pubsub()
    await pubsub.subscribe("ss:cam1:scene", "ss:cam1:events", "ss:status")
    await pub.start()
    try:
        pub.stream_status("cam1", "online", "connected")
        pub.publish(scene(1))
        pub.publish(event(1))
        assert await pub.flush(5.0)
        got: dict[str, m.Message] = {}
        async with asyncio.timeout(5):
            while len(got) < 3:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    got[msg["channel"].decode()] = m.decode(msg["data"])
        assert got["ss:status"]["state"] == "online"
        assert got["ss:cam1:scene"]["seq"] == 1
        assert got["ss:cam1:events"]["id"] == "cam1-siren-1"
        # published_at is stamped at send time, and the scene's latency agrees with it.
        s = got["ss:cam1:scene"]
        assert s["published_at"] > 0
        expected_ms = (s["published_at"] - s["window"]["end"]) * 1000
        assert s["latency_ms"]["capture_to_publish"] == pytest.approx(expected_ms, abs=0.01)
        assert [e["id"] for e in await log_entries(redis_server.url, "ss:cam1:log")] == [
            "cam1-siren-1"
        ]
        assert [x["type"] for x in sent] == ["status", "scene", "event"]
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await sub_client.aclose()
        assert await pub.close() == 0


async def test_log_is_capped(redis_server: EmbeddedRedis) -> None:
    pub = RedisPublisher(redis_server.url, "ss", Metrics(process=False), log_maxlen=100)
    await pub.start()
    for n in range(1000):
        pub.publish(event(n))
    assert await pub.close(10.0) == 0
    entries = await log_entries(redis_server.url, "ss:cam1:log")
    assert 100 <= len(entries) < 1000  # MAXLEN ~ trims whole macro nodes
    assert entries[-1]["id"] == "cam1-siren-999"


async def test_redis_killed_and_restarted_loses_no_outage_event(
    redis_server: EmbeddedRedis,
) -> None:
    metrics = Metrics(process=False)
    pub = RedisPublisher(redis_server.url, "ss", metrics, outbox_max=10_000, socket_timeout_s=1.0)
    await pub.start()
    n = 0
    try:
        for _ in range(10):  # healthy for a moment
            pub.publish(scene(n))
            pub.publish(event(n))
            n += 1
            await asyncio.sleep(0.02)
        assert await pub.flush(5.0)
        redis_server.kill()
        first_outage = n
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:  # keep producing while Redis is gone
            pub.publish(scene(n))
            pub.publish(event(n))
            n += 1
            await asyncio.sleep(0.02)
        assert not pub.connected
        assert metrics.publish_failures._value.get() > 0
        assert len(pub.outbox) > 0
        redis_server.start()  # same port
        for _ in range(10):
            pub.publish(event(n))
            n += 1
        assert await pub.flush(15.0)
        assert pub.connected
        ids = [e["id"] for e in await log_entries(redis_server.url, "ss:cam1:log")]
        expected = [f"cam1-siren-{i}" for i in range(first_outage, n)]
        assert ids == expected  # every outage event, once, in order
        assert sum(pub.outbox.dropped.values()) == 0
    finally:
        await pub.close(2.0)


async def test_outbox_overflow_during_outage_drops_scenes_first_and_counts(
    redis_server: EmbeddedRedis,
) -> None:
    metrics = Metrics(process=False)
    pub = RedisPublisher(redis_server.url, "ss", metrics, outbox_max=50, socket_timeout_s=1.0)
    await pub.start()
    try:
        redis_server.kill()
        for n in range(40):
            pub.publish(scene(n))
            pub.publish(event(n))
        assert len(pub.outbox) == 50
        assert pub.outbox.dropped == {"scene": 30}
        assert metrics.outbox_dropped.labels(type="scene")._value.get() == 30
        redis_server.start()
        assert await pub.flush(15.0)
        ids = [e["id"] for e in await log_entries(redis_server.url, "ss:cam1:log")]
        assert ids == [f"cam1-siren-{i}" for i in range(40)]
    finally:
        await pub.close(2.0)


async def test_cancel_mid_publish_loses_and_corrupts_nothing(redis_server: EmbeddedRedis) -> None:
    rng = random.Random(7)
    async with DelayProxy(redis_server.port, delay_s=0.05) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        pub = RedisPublisher(url, "ss", Metrics(process=False), batch_max=16)
        await pub.start()
        n = 0
        cancelled_mid_send = 0
        try:
            for _ in range(8):
                for _ in range(30):
                    pub.publish(event(n))
                    n += 1
                await asyncio.sleep(rng.uniform(0.03, 0.2))
                in_flight = len(pub.outbox) > pub.outbox.waiting
                cancelled_mid_send += in_flight
                # Cancel the writer as a parent task group would, then start it again on the
                # same client: its connection must not hand back replies out of step.
                writer = next(t for t in asyncio.all_tasks() if t.get_name() == "redis-publisher")
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
                await pub.start()
            assert await pub.flush(30.0)
        finally:
            await pub.close(2.0)
        assert cancelled_mid_send >= 3  # the test really cancelled during sends
        assert proxy.bytes_forwarded > 0
    assert pub.protocol_errors == 0
    ids = [e["id"] for e in await log_entries(redis_server.url, "ss:cam1:log")]
    first_seen = list(dict.fromkeys(ids))
    # Nothing lost, order kept; a batch Redis applied just before the cancel may repeat.
    assert first_seen == [f"cam1-siren-{i}" for i in range(n)]
    assert len(ids) - len(first_seen) <= 8 * 16


async def test_publishing_never_blocks_when_redis_was_never_up() -> None:
    from stream.embedded_redis import free_port

    pub = RedisPublisher(f"redis://127.0.0.1:{free_port()}/0", "ss", Metrics(process=False))
    await pub.start()
    t0 = time.perf_counter()
    for n in range(1000):
        pub.publish(event(n))
    assert time.perf_counter() - t0 < 0.5
    await asyncio.sleep(0.2)
    assert not pub.connected
    assert await pub.close(0.2) == 1000


def test_status_messages_validate() -> None:
    msg = m.status_message(stream="cam1", state="offline", reason="media timeout", published_at=1)
    assert m.decode(json.dumps(msg)) == msg
