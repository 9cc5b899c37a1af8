"""One benchmark trial: start a server process and a sender process, measure, stop both.

The server and the sender each run in their own process so that the server's CPU time is its
own. Latency is read where consumers see it: every scene message on Redis gives
`published_at - window.end` (capture to publish, both on this host's clock). Drops come from the
server's `/metrics`, CPU and RSS from the process (and its children, i.e. the embedded Redis)
via psutil. Every wait is bounded; the processes are stopped whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import numpy as np
import psutil
import redis.asyncio as aioredis

from stream.benchmark.report import (
    Samples,
    TrialResult,
    counter_delta,
    gauge,
    histogram_means,
    live_streams,
    merge_samples,
    overload_verdict,
    parse_metrics,
    percentiles_ms,
    thirds_trend,
    verdict,
)
from stream.benchmark.sender import RAMP_S
from stream.scaleout.redis_client import close_pubsub

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 180.0  # engine load + warm-up on a busy 2-core machine
PUBLISH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SAMPLE_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class TrialPlan:
    """What one trial runs."""

    server: str  # servers.MODES
    streams: int
    seconds: float
    warmup: float
    clip: Path
    engines: tuple[str, ...]
    user_dir: Path | None
    log_dir: Path
    expected_per_stream: float  # scene messages per stream-second of the measured engine
    prefix: str = "scenestream"
    workers: int = 1  # service worker processes on one Redis (scale-out on one host)
    admission: str = "count"  # server.admission of the service
    overload: bool = False  # the sender counts refused streams and goes on with the others


@dataclass
class LatencyCollector:
    """Scene messages of one engine from Redis: (window end, capture-to-publish seconds)."""

    engine: str
    seen: list[tuple[float, float]] = field(default_factory=list)
    streams: list[tuple[float, str]] = field(default_factory=list)  # (window end, stream)
    # capture-to-publish minus the message's own queue + infer: network, jitter buffer, decode,
    # waiting for the window's media, interpret and publish (by window end)
    outside: dict[float, float] = field(default_factory=dict)

    def add(self, raw: bytes | str) -> None:
        """Record one pub/sub payload (other engines and malformed messages are skipped)."""
        try:
            msg = json.loads(raw)
            if msg.get("engine") != self.engine:
                return
            end = float(msg["window"]["end"])
            latency = float(msg["published_at"]) - end
            self.seen.append((end, latency))
            self.streams.append((end, str(msg.get("stream", ""))))
            parts = msg.get("latency_ms") or {}
            if "queue" in parts and "infer" in parts:
                spent = (float(parts["queue"]) + float(parts["infer"])) / 1e3
                self.outside[end] = latency - spent
        except (ValueError, KeyError, TypeError):
            return

    def outside_p50(self, t0: float, t1: float) -> float | None:
        """Median of the latency spent outside queue + infer, for windows ending in [t0, t1]."""
        values = [v for end, v in self.outside.items() if t0 <= end <= t1]
        return float(np.median(values)) if values else None

    def per_stream(self, t0: float, t1: float) -> dict[str, int]:
        """Scene messages per stream for the windows that ended inside [t0, t1]."""
        counts: dict[str, int] = {}
        for end, stream in self.streams:
            if t0 <= end <= t1:
                counts[stream] = counts.get(stream, 0) + 1
        return counts

    def between(self, t0: float, t1: float) -> list[float]:
        """Latencies of the windows that ended inside [t0, t1], in window order."""
        return [lat for end, lat in sorted(self.seen) if t0 <= end <= t1]


async def _collect(redis_url: str, pattern: str, collector: LatencyCollector) -> None:
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.psubscribe(pattern)
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None and msg.get("type") == "pmessage":
                collector.add(msg["data"])
    finally:
        await close_pubsub(pubsub)
        await client.aclose()


async def _read_line(proc: asyncio.subprocess.Process, prefix: str, within_s: float) -> str:
    """The first stdout line of `proc` starting with `prefix`, waiting at most `within_s`."""
    assert proc.stdout is not None

    async def scan() -> str:
        assert proc.stdout is not None
        while line := (await proc.stdout.readline()).decode():
            if line.startswith(prefix):
                return line.strip()
        raise RuntimeError(f"process exited ({await proc.wait()}) before '{prefix}'")

    return await asyncio.wait_for(scan(), within_s)


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


async def _scrape(http: aiohttp.ClientSession, url: str) -> Samples:
    try:
        async with http.get(f"{url}/metrics") as resp:
            return parse_metrics(await resp.text()) if resp.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError):
        return {}


async def _scrape_all(http: aiohttp.ClientSession, urls: list[str]) -> Samples:
    """Every worker's metrics, summed series by series."""
    return merge_samples([await _scrape(http, url) for url in urls])


async def _stop(proc: asyncio.subprocess.Process | None) -> None:
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _spawn(args: list[str], log: IO[bytes]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=log
    )


async def run_trial(plan: TrialPlan) -> TrialResult:
    """Run and measure one trial; raises RuntimeError when the server does not start."""
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = plan.log_dir / f"{plan.server}-{plan.streams}.log"
    engine_args = [a for name in plan.engines for a in ("--engine", name)]
    if plan.user_dir is not None:
        engine_args += ["--user-dir", str(plan.user_dir)]
    if plan.workers > 1:  # each worker takes its share, then answers 307 to one with room
        engine_args += ["--max-streams", str(-(-plan.streams // plan.workers))]
    if plan.server == "service":
        engine_args += ["--admission", plan.admission]
    servers: list[asyncio.subprocess.Process] = []
    sender = None
    collect: asyncio.Task[None] | None = None
    with log_path.open("wb") as log:
        try:
            redis_url, urls = await _start_workers(plan, engine_args, log, servers)
            collector = LatencyCollector(plan.engines[0] if plan.engines else "")
            if redis_url != "-":
                pattern = f"{plan.prefix}:*:scene"
                collect = asyncio.create_task(
                    _collect(redis_url, pattern, collector), name="collect"
                )
            tolerate = ["--tolerate-refusals"] if plan.overload else []
            sender = await _spawn(
                ["-m", "stream.benchmark.sender", urls[0], "--streams", str(plan.streams),
                 "--seconds", str(plan.warmup + plan.seconds + 2), "--clip", str(plan.clip),
                 *tolerate],
                log,
            )  # fmt: skip
            try:
                # With refusals tolerated, the sender re-offers refused streams for RAMP_S first.
                within = PUBLISH_TIMEOUT_S + (RAMP_S if plan.overload else 0.0)
                line = await _read_line(sender, "published", within)
            except RuntimeError:
                return _refused(plan)
            words = line.split()
            refused = int(words[3]) if len(words) >= 4 and words[2] == "refused" else 0
            pids = [s.pid for s in servers]
            return await _measure(plan, pids, sender.pid, urls, collector, refused)
        finally:
            if collect is not None:
                collect.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await collect
            await _stop(sender)
            for server in reversed(servers):  # the first worker owns the embedded Redis
                await _stop(server)


async def _start_workers(
    plan: TrialPlan, args: list[str], log: IO[bytes], started: list[asyncio.subprocess.Process]
) -> tuple[str, list[str]]:
    """Start the server, or `plan.workers` service workers sharing the first one's Redis.

    Appends each process to `started` as soon as it exists (the caller stops them). Returns
    the Redis URL ("-" when the server has none) and every worker's base URL, first first.
    """
    urls: list[str] = []
    redis_url = "-"
    for i in range(plan.workers):
        extra = ["--redis", redis_url] if i > 0 else []
        proc = await _spawn(["-m", "stream.benchmark.servers", plan.server, *args, *extra], log)
        started.append(proc)
        _, port, url = (await _read_line(proc, "ready ", READY_TIMEOUT_S)).split()
        redis_url = url if i == 0 else redis_url
        urls.append(f"http://127.0.0.1:{port}")
    return redis_url, urls


def _refused(plan: TrialPlan) -> TrialResult:
    result = TrialResult(plan.server, plan.streams, 0.0, percentiles_ms([]), 0, 0.0, 0.0)
    result.refused = True
    result.why = verdict(result)
    return result


async def _measure(
    plan: TrialPlan,
    pids: list[int],
    sender_pid: int,
    urls: list[str],
    collector: LatencyCollector,
    refused: int = 0,
) -> TrialResult:
    """Warm up, then sample CPU (servers and sender), RSS, queue depth and metrics over
    `plan.seconds`; with several workers, their figures are summed."""
    await asyncio.sleep(plan.warmup)
    roots = [psutil.Process(pid) for pid in pids]
    procs, senders = [p for pid in pids for p in _tree(pid)], _tree(sender_pid)
    timeout = aiohttp.ClientTimeout(total=5.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        before = await _scrape_all(http, urls)
        cpu0, sent0, t0, mono0 = _cpu_s(procs), _cpu_s(senders), time.time(), time.monotonic()
        rss: list[float] = []
        queue: list[float] = []
        while time.monotonic() - mono0 < plan.seconds:
            await asyncio.sleep(SAMPLE_EVERY_S)
            with contextlib.suppress(psutil.Error):
                rss.append(sum(root.memory_info().rss for root in roots) / 2**20)
            if plan.server == "service":
                queue.append(gauge(await _scrape_all(http, urls), "scenestream_queue_depth"))
        cpu1, sent1 = _cpu_s(procs), _cpu_s(senders)
        t1, wall = time.time(), time.monotonic() - mono0
        per_worker = [await _scrape(http, url) for url in urls]
        after = merge_samples(per_worker)
    # windows that end by t1 may still be in flight: give them the budget to arrive
    await asyncio.sleep(0.5)
    latencies = collector.between(t0, t1)
    engine = plan.engines[0] if plan.engines else ""
    result = TrialResult(
        server=plan.server,
        streams=plan.streams,
        seconds=wall,
        latency_ms=percentiles_ms(latencies),
        messages=len(latencies),
        windows_per_s=len(latencies) / wall,
        expected_per_s=plan.expected_per_stream * plan.streams,
        outcomes=counter_delta(
            before, after, "scenestream_windows_total", "outcome", engine=engine
        ),
        shed=counter_delta(
            before, after, "scenestream_windows_shed_total", "reason", engine=engine
        ),
        frames_dropped=_drops(before, after),
        stages_ms=_stages(before, after, engine),
        cpu_cores=(cpu1 - cpu0) / wall,
        sender_cpu_cores=(sent1 - sent0) / wall,
        rss_mb=rss[-1] if rss else 0.0,
        rss_growth_mb=rss[-1] - rss[0] if rss else 0.0,
        latency_trend_ms=thirds_trend(latencies) * 1e3,
        outside_ms=_ms(collector.outside_p50(t0, t1)),
        queue_trend=thirds_trend(queue),
        workers=plan.workers,
        streams_per_worker=live_streams(per_worker),
        admission=plan.admission,
    )
    if plan.overload:
        admitted = plan.streams - refused
        result.refused_streams = refused
        result.expected_per_s = plan.expected_per_stream * admitted
        counts = _admitted_counts(collector.per_stream(t0, t1), admitted)
        expected = plan.expected_per_stream * wall
        result.min_stream_delivery = min(counts) / expected if counts and expected else None
        result.why = overload_verdict(result)
        result.held = not result.why
    elif plan.server != "ingest":  # ingest alone publishes nothing: no verdict, only costs
        result.why = verdict(result)
        result.held = not result.why
    return result


def _admitted_counts(per_stream: dict[str, int], admitted: int) -> list[int]:
    """Scene messages of each admitted stream (one that published nothing counts as 0)."""
    counts = sorted(per_stream.values(), reverse=True)[:admitted]
    return counts + [0] * (admitted - len(counts))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _stages(before: Samples, after: Samples, engine: str) -> dict[str, float]:
    """Mean time per stage (ms); ingest has no engine label, the others this engine's."""
    name = "scenestream_stage_seconds"
    means = histogram_means(before, after, name, "stage", engine=engine)
    means.update(histogram_means(before, after, name, "stage", stage="ingest"))
    return {stage: seconds * 1e3 for stage, seconds in means.items()}


def _drops(before: Samples, after: Samples) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in ("video", "audio"):
        for reason, n in counter_delta(
            before, after, "scenestream_frames_dropped_total", "reason", kind=kind
        ).items():
            if n:
                out[f"{kind}:{reason}"] = n
    return out
