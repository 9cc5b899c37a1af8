"""Soak: many connect / stream / disconnect cycles against one worker, resources must stay flat.

    python -m tests.bench.bench_soak [--cycles 500] [--warmup 100] [--stream-seconds 1.5]

One service from its composition root (the bundled `avfusion`, the scheduler, embedded Redis,
admission by headroom: the defaults a deployment runs), in this process, on loopback; one WHIP
sender in the same process relays the benchmark clip (640x480@30 VP8 + Opus) for a short stream,
deletes it, waits until the worker has released it, and starts the next. Every `--every` cycles
(after a garbage collection, and once the last stream's own tasks have ended) it samples the
process's RSS, open file descriptors (the Redis clients' pooled connections apart: a pool grows
to the peak concurrency it has seen and stays there), asyncio tasks and threads, and the windows
published so far. After `--warmup` cycles (thread pools, codec and allocator caches filled) RSS
must grow by at most `--rss-limit-mb`, and file descriptors, tasks and threads must come back to
what they were at the end of the warm-up. Prints a table; exits 1 when a limit is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from stream.benchmark.clip import cached_clip
from stream.benchmark.servers import bench_settings
from stream.config import load_settings
from stream.metrics import Metrics
from stream.sender.relay import EncodedClip, LoopingPacketTrack, load_clip
from stream.sender.whip_client import WhipPublisher
from stream.service import Service
from stream.webrtc.loopback import use_loopback_candidates

RELEASE_TIMEOUT_S = 15.0
SETTLE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sample:
    """Resources of this process after `cycle` cycles."""

    cycle: int
    rss_mb: float
    fds: int  # besides the Redis connections
    redis_connections: int
    tasks: int
    threads: int
    windows_published: int


def _published(metrics: Metrics) -> int:
    total = 0.0
    for family in metrics.registry.collect():
        if family.name == "scenestream_windows":
            total += sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels.get("outcome") in ("published", "late")
            )
    return int(total)


def _sample(cycle: int, metrics: Metrics, redis_port: int) -> Sample:
    gc.collect()
    proc = psutil.Process()
    redis = sum(1 for c in proc.net_connections("tcp") if c.raddr and c.raddr.port == redis_port)
    return Sample(
        cycle=cycle,
        rss_mb=proc.memory_info().rss / 2**20,
        fds=proc.num_fds() - redis,
        redis_connections=redis,
        tasks=len(asyncio.all_tasks()),
        threads=threading.active_count(),
        windows_published=_published(metrics),
    )


async def _until(predicate: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _cycle(
    service: Service, clip: dict[str, EncodedClip], cycle: int, seconds: float
) -> None:
    publisher = WhipPublisher(f"{service.url}/whip/soak{cycle % 4}")
    start = time.time() + 0.2
    tracks = [LoopingPacketTrack(c, start=start) for c in clip.values()]
    try:
        await publisher.publish(tracks, codec="vp8")
        await asyncio.sleep(seconds)
    finally:
        await publisher.close()
    if not await _until(lambda: len(service.admission) == 0, RELEASE_TIMEOUT_S):
        raise RuntimeError(f"cycle {cycle}: the stream was not released")


async def soak(args: argparse.Namespace) -> tuple[list[Sample], list[str]]:
    """Run the cycles; return the samples and the broken limits."""
    clip = load_clip(cached_clip(load_settings(None).engines.cache_dir))
    settings = bench_settings(["avfusion"], None, max_streams=4, admission="headroom")
    metrics = Metrics()
    service = await Service(settings, metrics=metrics).start()
    use_loopback_candidates(only=True)  # after start, which adds loopback next to the host's
    port = int(service.redis_url.rsplit(":", 1)[1].split("/")[0])
    samples: list[Sample] = []
    idle_tasks = len(asyncio.all_tasks())
    try:
        for cycle in range(1, args.cycles + 1):
            await _cycle(service, clip, cycle, args.stream_seconds)
            if cycle % args.every == 0 or cycle in (args.warmup, args.cycles):
                # The closed stream's own tasks (DTLS close, ICE consent) end on their own.
                await _until(lambda: len(asyncio.all_tasks()) <= idle_tasks, SETTLE_TIMEOUT_S)
                samples.append(_sample(cycle, metrics, port))
                s = samples[-1]
                print(f"cycle {cycle}: RSS {s.rss_mb:.1f} MB, {s.fds} fds + "
                      f"{s.redis_connections} redis, {s.tasks} tasks, "
                      f"{s.threads} threads, {s.windows_published} windows",
                      flush=True)  # fmt: skip
        base = next(s for s in samples if s.cycle == args.warmup)
        # Give what the last stream started (DTLS shutdown, decoder threads) time to end.
        await _until(lambda: _sample(args.cycles, metrics, port).fds <= base.fds, SETTLE_TIMEOUT_S)
        samples.append(_sample(args.cycles, metrics, port))
    finally:
        await service.close()
    return samples, _broken(samples, base, args)


def _broken(samples: list[Sample], base: Sample, args: argparse.Namespace) -> list[str]:
    end = samples[-1]
    why = []
    if end.rss_mb - base.rss_mb > args.rss_limit_mb:
        why.append(f"RSS grew {end.rss_mb - base.rss_mb:.1f} MB after the warm-up")
    for name in ("fds", "tasks", "threads"):
        if getattr(end, name) > getattr(base, name):
            why.append(
                f"{name}: {getattr(end, name)} at the end, {getattr(base, name)} after warm-up"
            )
    if end.windows_published <= base.windows_published:
        why.append("no window published after the warm-up")
    return why


def _table(samples: list[Sample], warmup: int) -> str:
    lines = [
        "| cycle | RSS MB | RSS vs warm-up | fds (+ Redis pool) | asyncio tasks | threads"
        " | windows published |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = next(s for s in samples if s.cycle == warmup)
    for s in samples:
        lines.append(
            f"| {s.cycle} | {s.rss_mb:.1f} | {s.rss_mb - base.rss_mb:+.1f}"
            f" | {s.fds} (+{s.redis_connections}) | {s.tasks}"
            f" | {s.threads} | {s.windows_published} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100, help="cycles before the baseline")
    parser.add_argument("--stream-seconds", type=float, default=2.0, help="each stream's life")
    parser.add_argument("--every", type=int, default=50, help="sample every N cycles")
    parser.add_argument("--rss-limit-mb", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args()
    if not 0 < args.warmup < args.cycles:
        parser.error("--warmup must be within 1..cycles-1")
    started = time.monotonic()
    samples, broken = asyncio.run(soak(args))
    print()
    print(_table(samples, args.warmup))
    print(f"\n{args.cycles} cycles of {args.stream_seconds:g} s streams in "
          f"{time.monotonic() - started:.0f} s; load average {psutil.getloadavg()}")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(s) for s in samples], indent=2))
    if broken:
        print("FAILED: " + "; ".join(broken))
        return 1
    print("flat: RSS within the limit; fds, tasks and threads back to the warm-up baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
