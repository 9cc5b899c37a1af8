"""Measures scale-out figures on this machine: `python -m tests.bench.bench_scaleout`.

Starts a redis-server and two `scenestream serve` workers (silero-vad only), then reports:
- the WHIP POST round trip of a full worker answering `307` (peer lookup in Redis) against the
  `409` of a stream live elsewhere (claim check only), median and p95 over `--posts` POSTs;
- the time from SIGKILL of a worker to its stream's `offline` status published by the other
  worker, over `--kills` trials, with the default `server.advertise_ttl_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from stream.embedded_redis import EmbeddedRedis, free_port
from stream.subscribe import Subscription

BIN = Path(sys.executable).parent / "scenestream"


def _serve(redis_url: str, max_streams: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "SCENESTREAM_ENGINES__ENABLED": '["silero-vad"]',
           "SCENESTREAM_SERVER__MAX_STREAMS": str(max_streams),
           "SCENESTREAM_SESSION__INCLUDE_LOOPBACK": "true",
           "SCENESTREAM_SERVER__POST_RATE_PER_MINUTE": "100000"}  # fmt: skip
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--redis", redis_url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("worker did not become ready")


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms"


async def _post_times(url: str, posts: int, status: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(posts):
            start = time.perf_counter()
            async with http.post(url, data="v=0\r\n", allow_redirects=False,
                                 headers={"Content-Type": "application/sdp"}) as resp:  # fmt: skip
                await resp.read()
                if resp.status != status:
                    raise RuntimeError(f"POST {url}: {resp.status}, expected {status}")
            times.append(time.perf_counter() - start)
    return times


async def _kill_trial(redis_url: str) -> float:
    a, a_url = _serve(redis_url, 1)
    sender = await asyncio.create_subprocess_exec(
        str(BIN), "send", f"{a_url}/whip/cam-k", "--scenario", "sync", "--seconds", "60",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with Subscription(redis_url, kinds=["status"], streams=["cam-k"]) as sub:
            async for msg in sub:
                if msg["state"] == "online":
                    break
            await asyncio.sleep(1.0)
            a.send_signal(signal.SIGKILL)
            killed = time.time()
            async for msg in sub:
                if msg["state"] == "offline":
                    return float(msg["published_at"]) - killed
    finally:
        a.kill()
        a.wait()
        sender.terminate()
        await sender.wait()
    raise RuntimeError("subscription ended")


async def main(args: argparse.Namespace) -> None:
    with EmbeddedRedis() as redis:
        b, b_url = _serve(redis.url, 64)
        a, a_url = _serve(redis.url, 1)
        sender: Any = None
        try:
            sender = await asyncio.create_subprocess_exec(
                str(BIN), "send", f"{a_url}/whip/cam-a", "--scenario", "sync", "--seconds", "120",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(4)
            redirects = await _post_times(f"{a_url}/whip/other", args.posts, 307)
            conflicts = await _post_times(f"{b_url}/whip/cam-a", args.posts, 409)
            print(f"307 from a full worker: {_quantiles(redirects)}")
            print(f"409 for a stream live elsewhere: {_quantiles(conflicts)}")
            sender.terminate()
            await sender.wait()
            a.terminate()
            a.wait()
            lost = [await _kill_trial(redis.url) for _ in range(args.kills)]
            print("SIGKILL -> offline: " + ", ".join(f"{t:.2f} s" for t in lost))
        finally:
            for proc in (a, b):
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
