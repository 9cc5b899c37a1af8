"""The scheduler under load and faults, with real engines-by-interface (they sleep: this is about
scheduling, not models), the real pipeline and a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from engines.window import Window, WindowSpec
from stream.embedded_redis import EmbeddedRedis
from stream.interpret import Interpreter
from stream.metrics import OUTCOMES, Metrics
from stream.publish import messages as m
from stream.publish.redis_publisher import RedisPublisher
from stream.publish.status import LogStatusSink
from stream.scheduler.health import HealthTracker
from stream.scheduler.runner import Scheduler, WindowResult

pytestmark = pytest.mark.integration


@dataclass
class SleepyEngine:
    """An `EngineRuntime` that sleeps `base_s + per_window_s * n` per batch (a slow backend),
    raises on the calls listed in `fail_calls`, and records every call for ordering checks."""

    name: str = "sleepy"
    labels: tuple[str, ...] = ("siren",)
    spec: WindowSpec = field(default_factory=lambda: WindowSpec(length_s=1.0, hop_s=0.1))
    batch_sizes: tuple[int, ...] = (1, 2, 4)
    budget_s: float = 0.3
    max_queue_delay_s: float = 0.02
    backend_name: str = "sleep"
    base_s: float = 0.05
    per_window_s: float = 0.02
    fail_calls: frozenset[int] = frozenset()
    # ("infer", [(stream, seq), ...]) or ("release", [(stream, -1)]), in call order
    calls: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def infer(self, windows: Sequence[Window]) -> list[dict[str, float]]:
        self.threads.add(threading.current_thread().name)
        n_call = sum(1 for kind, _ in self.calls if kind == "infer")
        self.calls.append(("infer", [(w.stream, w.seq) for w in windows]))
        time.sleep(self.base_s + self.per_window_s * len(windows))
        if n_call in self.fail_calls:
            raise RuntimeError("backend failed on this batch")
        # A siren for the first second of every two (capture clock): events come and go.
        return [{"siren": 0.9 if w.end % 2.0 < 1.0 else 0.1} for w in windows]

    def release(self, stream: str) -> None:
        self.calls.append(("release", [(stream, -1)]))


def window(stream: str, seq: int, engine: str = "sleepy") -> Window:
    end = time.time()
    return Window(stream, engine, seq, end - 1.0, end, None, None, None, cut_at=time.monotonic())


async def feed(scheduler: Scheduler, streams: list[str], seconds: float, hop: float,
               seqs: dict[str, int]) -> None:  # fmt: skip
    """Cut a window for every stream every hop, as the window cutter does."""
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        for s in streams:
            seqs[s] = seqs.get(s, -1) + 1
            scheduler.submit(window(s, seqs[s]))
        await asyncio.sleep(hop)


def outcomes(metrics: Metrics, engine: str) -> dict[str, int]:
    return {o: int(metrics.windows.labels(engine=engine, outcome=o)._value.get()) for o in OUTCOMES}


# Real-time bounds on a shared 2-core machine: one stall elsewhere can miss them; a rerun
# must pass the same bounds (every failed attempt is still reported).
@pytest.mark.flaky(reruns=2, reruns_delay=1)
async def test_slow_engine_sheds_keeps_p99_in_budget_and_reports_degraded(
    redis_server: EmbeddedRedis,
) -> None:
    engine = SleepyEngine()
    metrics = Metrics(process=False)
    publisher = RedisPublisher(redis_server.url, "ss", metrics)
    pipeline = Interpreter([engine], publisher, metrics)
    publisher.on_sent = pipeline.message_sent
    scheduler = Scheduler([engine], metrics, pipeline, publisher)
    client = aioredis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("ss:*:scene", "ss:status")
    await publisher.start()
    await scheduler.start()
    streams = [f"s{i}" for i in range(8)]
    seqs: dict[str, int] = {}
    try:
        # 8 streams x 10 windows/s against an engine that manages ~30/s: overload.
        await feed(scheduler, streams, 3.0, 0.1, seqs)
        mid = outcomes(metrics, "sleepy")
        assert mid["stale"] + mid["superseded"] > 0.3 * sum(seqs.values())
        # Load drops to one stream: it recovers.
        for s in streams[1:]:
            scheduler.stream_ended(s)
        await feed(scheduler, streams[:1], 3.0, 0.1, seqs)
        scheduler.stream_ended("s0")
        await asyncio.sleep(0.5)
        assert await publisher.flush(5.0)
        scenes: list[m.Message] = []
        statuses: list[m.Message] = []
        quiet = 0
        while quiet < 3:  # read until the channel has been quiet for a while
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is None:
                quiet += 1
                continue
            quiet = 0
            decoded = m.decode(msg["data"])
            (scenes if decoded["type"] == "scene" else statuses).append(decoded)
    finally:
        await scheduler.close()
        await publisher.close()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    got = outcomes(metrics, "sleepy")
    submitted = sum(n + 1 for n in seqs.values())
    assert sum(got.values()) == submitted  # every window has exactly one outcome
    assert got["error"] == 0
    c2p = sorted(s["latency_ms"]["capture_to_publish"] for s in scenes)
    assert len(c2p) == got["published"] + got["late"]
    p99 = c2p[int(0.99 * (len(c2p) - 1))]
    assert p99 <= engine.budget_s * 1000, f"p99 {p99:.0f} ms over budget"
    degraded = {s["stream"] for s in statuses if s["state"] == "degraded"}
    assert len(degraded) >= 4
    assert ("s0", "online") in [(s["stream"], s["state"]) for s in statuses]
    assert len(engine.threads) == 1  # one inference thread per engine
    batch_sizes = [len(c) for kind, c in engine.calls if kind == "infer"]
    assert max(batch_sizes) == 4  # it batched across streams


@dataclass
class RecordingSink:
    """A `ResultSink` that records what it receives, in order."""

    log: list[tuple[str, str, int]] = field(default_factory=list)

    def window_result(self, result: WindowResult) -> None:
        self.log.append(("result", result.window.stream, result.window.seq))

    def stream_closed(self, stream: str, engine: str) -> None:
        self.log.append(("closed", stream, -1))


async def test_engine_error_fails_only_that_batch() -> None:
    engine = SleepyEngine(fail_calls=frozenset({3}), base_s=0.02, per_window_s=0.0)
    metrics = Metrics(process=False)
    sink = RecordingSink()
    scheduler = Scheduler([engine], metrics, sink, LogStatusSink())
    await scheduler.start()
    seqs: dict[str, int] = {}
    try:
        await feed(scheduler, ["a", "b", "c"], 1.0, 0.1, seqs)
        for s in "abc":
            scheduler.stream_ended(s)
        await asyncio.sleep(0.3)
    finally:
        await scheduler.close()
    infer_calls = [c for kind, c in engine.calls if kind == "infer"]
    failed_batch = infer_calls[3]
    got = outcomes(metrics, "sleepy")
    assert got["error"] == len(failed_batch)
    results = {(s, q) for kind, s, q in sink.log if kind == "result"}
    assert not results & set(failed_batch)
    # The streams went on: windows cut after the failure were delivered.
    last_seq = {
        s: max(q for kind, st, q in sink.log if kind == "result" and st == s) for s in "abc"
    }
    failed_seq = max(q for _, q in failed_batch)
    assert all(q > failed_seq for q in last_seq.values())
    assert sum(got.values()) - got["published"] - got["late"] + len(results) == sum(
        n + 1 for n in seqs.values()
    )


async def test_streams_join_and_leave_while_batches_are_in_flight() -> None:
    engine = SleepyEngine(base_s=0.08, per_window_s=0.01, budget_s=0.5, max_queue_delay_s=0.0)
    metrics = Metrics(process=False)
    sink = RecordingSink()
    health = HealthTracker()
    scheduler = Scheduler([engine], metrics, sink, LogStatusSink(), health=health)
    await scheduler.start()
    seqs: dict[str, int] = {}
    try:
        feeders = [
            asyncio.create_task(feed(scheduler, ["a", "b"], 1.5, 0.1, seqs)),
            asyncio.create_task(feed(scheduler, ["c"], 0.6, 0.05, seqs)),
        ]
        await asyncio.sleep(0.3)
        # "c" leaves while its windows are queued or being computed, then rejoins.
        await feeders[1]
        scheduler.stream_ended("c")
        await asyncio.sleep(0.02)
        feeders.append(asyncio.create_task(feed(scheduler, ["c", "d"], 0.5, 0.1, seqs)))
        await asyncio.gather(*feeders)
        for s in "abcd":
            scheduler.stream_ended(s)
        await asyncio.sleep(0.5)
    finally:
        await scheduler.close()
    # Releases run on the inference thread after every batch holding that stream, and the
    # sink hears `closed` only after the stream's last result of that incarnation.
    releases = [i for i, (kind, s) in enumerate(engine.calls) if kind == "release"]
    assert [engine.calls[i][1][0][0] for i in releases] == ["c", "a", "b", "c", "d"]
    first_c_release = releases[0]
    rejoin = [c for kind, c in engine.calls[first_c_release:] if kind == "infer"]
    c_after = [q for batch in rejoin for s, q in batch if s == "c"]
    c_before = [
        q
        for kind, batch in engine.calls[:first_c_release]
        if kind == "infer"
        for s, q in batch
        if s == "c"
    ]
    assert c_before
    assert c_after
    assert min(c_after) > max(c_before)
    closed_at = [i for i, (kind, s, _) in enumerate(sink.log) if kind == "closed" and s == "c"]
    assert len(closed_at) == 2
    assert all(not (kind == "result" and s == "c") for kind, s, _ in sink.log[closed_at[1] :])
    got = outcomes(metrics, "sleepy")
    results = sum(1 for kind, *_ in sink.log if kind == "result")
    assert results + got["stale"] + got["superseded"] + got["error"] == sum(
        n + 1 for n in seqs.values()
    )
    assert health.shed_ratio("a") == 0.0  # forgotten when it ended


# Real-time bounds on a shared 2-core machine: one stall elsewhere can miss them; a rerun
# must pass the same bounds (every failed attempt is still reported).
@pytest.mark.flaky(reruns=2, reruns_delay=1)
async def test_engines_run_side_by_side_each_on_its_own_thread() -> None:
    # 0.4 s leaves room for a scheduling hiccup on a busy CI machine; sharing the slow
    # engine's thread (150 ms calls) would still cost the fast one windows.
    fast = SleepyEngine(name="fast", base_s=0.01, per_window_s=0.0, budget_s=0.4)
    slow = SleepyEngine(name="slow", base_s=0.15, per_window_s=0.0, budget_s=0.5)
    metrics = Metrics(process=False)
    sink = RecordingSink()
    scheduler = Scheduler([fast, slow], metrics, sink, LogStatusSink())
    await scheduler.start()
    try:
        t_end = time.monotonic() + 1.0
        seq = 0
        while time.monotonic() < t_end:
            scheduler.submit(window("a", seq, engine="fast"))
            if seq % 2 == 0:
                scheduler.submit(window("a", seq, engine="slow"))
            scheduler.submit(window("a", seq, engine="missing"))  # no such engine: counted
            seq += 1
            await asyncio.sleep(0.1)
        scheduler.stream_ended("a")
        await asyncio.sleep(0.4)
        info = scheduler.engines()
    finally:
        await scheduler.close()
    assert fast.threads.isdisjoint(slow.threads)
    # The slow engine did not hold the fast one back: all of its windows were computed.
    assert outcomes(metrics, "fast")["stale"] + outcomes(metrics, "fast")["superseded"] == 0
    assert sum(len(c) for k, c in fast.calls if k == "infer") == seq
    assert sum(len(c) for k, c in slow.calls if k == "infer") == (seq + 1) // 2
    assert ("release", [("a", -1)]) in fast.calls
    assert ("release", [("a", -1)]) in slow.calls
    assert metrics.windows.labels(engine="missing", outcome="error")._value.get() == seq
    assert info["slow"]["compute_ms"]["1"] > info["fast"]["compute_ms"]["1"]
    assert [x for x in sink.log if x[0] == "closed"] == [("closed", "a", -1)] * 2


async def test_close_right_after_streams_end_still_releases_them() -> None:
    engine = SleepyEngine(base_s=0.15, per_window_s=0.0, budget_s=1.0, max_queue_delay_s=0.0)
    sink = RecordingSink()
    scheduler = Scheduler([engine], Metrics(process=False), sink, LogStatusSink())
    await scheduler.start()
    scheduler.submit(window("a", 0))
    scheduler.submit(window("b", 0))
    await asyncio.sleep(0.05)  # a batch is now computing
    scheduler.stream_ended("a")
    scheduler.stream_ended("b")
    await scheduler.close()
    assert sorted(s for kind, s, _ in sink.log if kind == "closed") == ["a", "b"]
    assert [c for k, c in engine.calls if k == "release"] == [[("a", -1)], [("b", -1)]]
