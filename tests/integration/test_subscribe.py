"""The subscriber API and `scenestream events` against a real redis-server: resuming after a
dropped connection or a Redis restart misses no lifecycle event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from stream.commands.events import format_line
from stream.embedded_redis import EmbeddedRedis, free_port
from stream.metrics import Metrics
from stream.publish import messages as m
from stream.publish.redis_publisher import RedisPublisher
from stream.subscribe import Subscription, subscribe
from tests.support.message_support import event
from tests.support.whip_support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def pub(redis_server: EmbeddedRedis) -> AsyncIterator[RedisPublisher]:
    """A started publisher on the test's redis-server, closed after the test."""
    publisher = RedisPublisher(redis_server.url, "ss", Metrics(process=False))
    await publisher.start()
    yield publisher
    await publisher.close()


async def produce(pub: RedisPublisher, count: int, every_s: float, start: int = 0) -> None:
    for n in range(start, start + count):
        pub.publish(event(n))
        await asyncio.sleep(every_s)


def cam1_events(url: str) -> Subscription:
    """A subscription to cam1's lifecycle events that polls the log every 0.2 s."""
    return Subscription(url, prefix="ss", streams=["cam1"], kinds=["events"], block_ms=200)


async def collect(sub: Subscription, into: list[m.Message], until: int) -> None:
    async for msg in sub:
        into.append(msg)
        if len(into) >= until:
            return


async def test_all_kinds_arrive_validated_and_filtered_by_stream(
    redis_server: EmbeddedRedis, pub: RedisPublisher
) -> None:
    got: list[m.Message] = []
    async with Subscription(
        redis_server.url, prefix="ss", streams=["cam1"], kinds=["scene", "events", "status"]
    ) as sub:
        pub.stream_status("cam1", "online", "connected")
        pub.stream_status("cam2", "online", "connected")  # another stream: filtered out
        pub.publish(event(1, "cam2"))
        pub.publish(
            m.scene_message(
                stream="cam1",
                engine="avfusion",
                seq=3,
                start=1.0,
                end=2.0,
                gaps=(),
                scores={"siren": 0.2},
                active=(),
                latency=m.LatencyBreakdown(0, 0, 0),
                published_at=0.0,
            )
        )
        pub.publish(event(1))
        # Garbage on a channel is skipped, not fatal.
        client = aioredis.Redis.from_url(redis_server.url)
        await client.publish("ss:status", b"not json")
        await client.aclose()
        async with asyncio.timeout(5):
            await collect(sub, got, 3)
        assert sub.invalid == 1
    assert sorted(x["type"] for x in got) == ["event", "scene", "status"]
    assert {x["stream"] for x in got} == {"cam1"}
    for msg in got:
        assert format_line(msg).split()[1] == "cam1"


async def test_resume_after_dropped_connection_misses_no_event(
    redis_server: EmbeddedRedis, pub: RedisPublisher
) -> None:
    got: list[m.Message] = []
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        async with Subscription(
            redis_server.url, prefix="ss", kinds=["events"], block_ms=200, scan_interval_s=0.1
        ) as sub:
            reader = asyncio.create_task(collect(sub, got, 150))
            producer = asyncio.create_task(produce(pub, 150, 0.01))
            for seen in (30, 70, 110):  # drop the subscriber's connections three times mid-stream
                await wait_for(lambda seen=seen: len(got) >= seen, 10, f"{seen} events read")
                await admin.client_kill_filter(_type="normal", skipme=True)
            await producer
            async with asyncio.timeout(10):
                await reader
            assert sub.reconnects >= 1
    finally:
        await admin.aclose()
    assert [x["id"] for x in got] == [f"cam1-siren-{n}" for n in range(150)]


async def test_resume_after_redis_restart_gets_every_outage_event(
    redis_server: EmbeddedRedis,
) -> None:
    pub = RedisPublisher(redis_server.url, "ss", Metrics(process=False), socket_timeout_s=1.0)
    await pub.start()
    got: list[m.Message] = []
    try:
        async with cam1_events(redis_server.url) as sub:
            reader = asyncio.create_task(collect(sub, got, 90))
            await produce(pub, 20, 0.01)
            await wait_for(lambda: len(got) >= 20, 5, "the subscriber to read them")
            before = len(got)
            redis_server.kill()
            await produce(pub, 50, 0.02, start=20)  # published while Redis is down
            redis_server.start()
            await produce(pub, 20, 0.01, start=70)
            async with asyncio.timeout(15):
                await reader
    finally:
        await pub.close()
    ids = [x["id"] for x in got]
    assert before == 20
    assert ids == [f"cam1-siren-{n}" for n in range(90)]  # in order, none missing, no repeat


async def test_a_batch_resent_after_its_reply_was_lost_is_delivered_once(
    redis_server: EmbeddedRedis, pub: RedisPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis applies a batch but the connection breaks before its reply: the publisher sends it
    # again, stamped again (`published_at` differs), so only the entries' `uid` tells the repeat.
    real_send = pub._send
    lost = 0

    async def send_reply_lost(batch: list[Any]) -> None:
        nonlocal lost
        await real_send(batch)
        if lost < 2:
            lost += 1
            await asyncio.sleep(0.01)  # the resend's clock moves on
            raise ConnectionError("connection reset before the reply")

    monkeypatch.setattr(pub, "_send", send_reply_lost)
    got: list[m.Message] = []
    async with cam1_events(redis_server.url) as sub:
        reader = asyncio.create_task(collect(sub, got, 6))
        await produce(pub, 6, 0.05)
        async with asyncio.timeout(10):
            await reader
        client = aioredis.Redis.from_url(redis_server.url)
        entries = await client.xrange("ss:cam1:log")
        await client.aclose()
    assert lost == 2
    assert [x["id"] for x in got] == [f"cam1-siren-{n}" for n in range(6)]
    uids = [fields[b"uid"] for _, fields in entries]
    assert len(entries) >= 8  # two batches were written twice
    assert len(set(uids)) == 6  # ... and each message kept its uid
    assert len({fields[b"data"] for _, fields in entries}) == len(entries)  # restamped resends
    assert sub.repeats == len(entries) - 6


async def test_log_recreated_with_lower_ids_after_restart_is_read_from_its_start(
    redis_server: EmbeddedRedis, pub: RedisPublisher
) -> None:
    # A restarted Redis without persistence whose clock is behind gives ids below our cursor:
    # they must be delivered, not skipped.
    got: list[m.Message] = []
    async with cam1_events(redis_server.url) as sub:
        reader = asyncio.create_task(collect(sub, got, 5))
        await produce(pub, 2, 0.01)
        await wait_for(lambda: len(got) >= 2, 5, "the subscriber to read them")
        redis_server.kill()
        await asyncio.sleep(0.3)
        redis_server.start()
        client = aioredis.Redis.from_url(redis_server.url)
        for n, entry_id in ((2, "5-1"), (3, "5-2"), (4, "6-0")):
            await client.xadd("ss:cam1:log", {"data": m.encode(event(n))}, id=entry_id)
        await client.aclose()
        async with asyncio.timeout(10):
            await reader
    assert [x["id"] for x in got] == [f"cam1-siren-{n}" for n in range(5)]


async def test_subscribe_generator_and_unreachable_redis() -> None:
    with pytest.raises(ConnectionError, match="cannot reach Redis"):
        async with contextlib.aclosing(subscribe(f"redis://127.0.0.1:{free_port()}/0")) as gen:
            await anext(gen)


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "events", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


async def test_events_cli_json_prints_one_valid_object_a_line(
    redis_server: EmbeddedRedis, pub: RedisPublisher
) -> None:
    args = ["--redis", redis_server.url, "--prefix", "ss", "--json", "--seconds", "4",
            "--kind", "events", "--kind", "status"]  # fmt: skip
    proc = asyncio.create_task(asyncio.to_thread(run_cli, *args))
    t_end = time.monotonic() + 3.5
    n = 0
    while time.monotonic() < t_end:  # the CLI needs a moment to start: keep publishing
        pub.publish(event(n))
        pub.stream_status("cam1", "online", f"tick {n}")
        n += 1
        await asyncio.sleep(0.05)
    done = await proc
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 10
    decoded = [m.validate(json.loads(line)) for line in lines]
    assert {d["type"] for d in decoded} == {"event", "status"}
    ids = [int(d["id"].rsplit("-", 1)[1]) for d in decoded if d["type"] == "event"]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # consecutive: none missed


def test_events_cli_errors_are_one_line() -> None:
    done = run_cli("--redis", f"redis://user:secret@127.0.0.1:{free_port()}/0", "--seconds", "1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "cannot reach Redis" in done.stderr
    assert "secret" not in done.stderr
