"""Two `scenestream serve` workers (real subprocesses) on one real Redis, senders on loopback.

One subscriber sees both workers' streams; a full worker redirects a POST with `307` and
`scenestream send` follows it to the worker with room; a stream id live on one worker is refused
on the other (`409`); SIGKILL of a worker ends its streams with `offline` (published by the
surviving worker once the dead one's advert expires) while the other worker's streams carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis

from stream.embedded_redis import EmbeddedRedis, free_port
from stream.publish.messages import Message
from stream.subscribe import Subscription
from tests.support.sdp_mutations import load_offers
from tests.support.whip_support import wait_for

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent / "scenestream"
TTL_S = 2.0
TOKEN = "scale-out-token"  # the same on every worker; the sender must keep it across the 307


@dataclass
class Worker:
    """A `scenestream serve` subprocess."""

    proc: subprocess.Popen[bytes]
    url: str

    @staticmethod
    def start(redis_url: str, max_streams: int) -> Worker:
        port = free_port()
        env = {
            **os.environ,
            "SCENESTREAM_ENGINES__ENABLED": '["silero-vad"]',  # light: audio only
            "SCENESTREAM_SERVER__MAX_STREAMS": str(max_streams),
            "SCENESTREAM_SERVER__ADVERTISE_TTL_S": str(TTL_S),
            "SCENESTREAM_SESSION__INCLUDE_LOOPBACK": "true",
            "SCENESTREAM_SERVER__TOKENS": json.dumps([TOKEN]),
        }
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port), "--redis", redis_url],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return Worker(proc, f"http://127.0.0.1:{port}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def workers(redis_server: EmbeddedRedis) -> Iterator[tuple[Worker, Worker]]:
    """Worker A (room for 1 stream) and worker B (room for 4), both advertised."""
    a = Worker.start(redis_server.url, 1)
    b = Worker.start(redis_server.url, 4)
    try:
        deadline = time.monotonic() + 60
        index = redis.Redis.from_url(redis_server.url)
        while not (a.ready() and b.ready() and index.zcard("scenestream:_workers") == 2):
            assert a.proc.poll() is None, "worker A exited at start"
            assert b.proc.poll() is None, "worker B exited at start"
            assert time.monotonic() < deadline, "workers not ready in 60 s"
            time.sleep(0.2)
        index.close()
        yield a, b
    finally:
        a.stop()
        b.stop()


async def send(url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN), "send", url, "--scenario", "sync", "--seconds", "60", "--token", TOKEN,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def api_streams(http: aiohttp.ClientSession, worker: Worker) -> list[str]:
    async with http.get(f"{worker.url}/api/streams") as resp:
        assert resp.status == 200
        body: Any = await resp.json()
    return sorted(row["stream"] for row in body["streams"] if row["state"] == "live")


async def post_offer(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    """A raw WHIP POST of a real (Chromium) offer: a full worker redirects before reading it,
    a stream live elsewhere is refused once the offer is checked (nothing is claimed before)."""
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {TOKEN}"}
    offer = load_offers()["chromium.sdp"]
    async with http.post(url, data=offer, headers=headers, allow_redirects=False) as resp:
        await resp.read()
        return resp


class Collector:
    """Every status and scene message of the bus, as one consumer sees it."""

    def __init__(self, sub: Subscription) -> None:
        self.messages: list[Message] = []
        self.task = asyncio.create_task(self._run(sub))

    async def _run(self, sub: Subscription) -> None:
        async for msg in sub:
            self.messages.append(msg)

    def statuses(self, stream: str) -> list[tuple[str, str]]:
        return [
            (m["state"], m["reason"])
            for m in self.messages
            if m["type"] == "status" and m["stream"] == stream
        ]

    def scenes(self, stream: str, after: float = 0.0) -> int:
        return sum(
            1
            for m in self.messages
            if m["type"] == "scene" and m["stream"] == stream and m["published_at"] > after
        )

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_workers_share_the_bus_redirect_when_full_and_report_a_killed_worker(
    workers: tuple[Worker, Worker], redis_server: EmbeddedRedis
) -> None:
    a, b = workers
    senders: list[asyncio.subprocess.Process] = []
    async with (
        Subscription(redis_server.url, kinds=["status", "scene"]) as sub,
        aiohttp.ClientSession() as http,
    ):
        bus = Collector(sub)
        try:
            senders += [await send(f"{a.url}/whip/cam-a"), await send(f"{b.url}/whip/cam-b")]
            await wait_for(
                lambda: bus.scenes("cam-a") > 0 and bus.scenes("cam-b") > 0, 30,
                "scene messages of both workers' streams on one subscriber",
            )  # fmt: skip
            assert ("online", "connected") in bus.statuses("cam-a")
            assert ("online", "connected") in bus.statuses("cam-b")

            # A is full: a POST there is redirected to B, the only worker with room.
            resp = await post_offer(http, f"{a.url}/whip/cam-c")
            assert resp.status == 307
            assert resp.headers["Location"] == f"{b.url}/whip/cam-c"
            # A stream live on A cannot start on B.
            assert (await post_offer(http, f"{b.url}/whip/cam-a")).status == 409

            # `scenestream send` follows the redirect; the session lives on B.
            senders.append(await send(f"{a.url}/whip/cam-c"))
            await wait_for(lambda: bus.scenes("cam-c") > 0, 30, "cam-c's scenes (sent via A)")
            assert await api_streams(http, a) == ["cam-a"]
            assert await api_streams(http, b) == ["cam-b", "cam-c"]

            # Kill A: no graceful shutdown, so B must publish cam-a's offline.
            a.proc.send_signal(signal.SIGKILL)
            killed_at = time.time()
            await wait_for(
                lambda: ("offline", "worker lost") in bus.statuses("cam-a"),
                TTL_S + 8, "cam-a offline after its worker was killed",
            )  # fmt: skip
            lost_after = next(
                m["published_at"] for m in bus.messages
                if m["type"] == "status" and m["stream"] == "cam-a" and m["state"] == "offline"
            )  # fmt: skip
            assert lost_after - killed_at < TTL_S + 3
            # B carries on: its streams keep publishing, and none of them went offline.
            await wait_for(
                lambda: bus.scenes("cam-b", lost_after) > 0 and bus.scenes("cam-c", lost_after) > 0,
                10, "B's streams still publishing after A was killed",
            )  # fmt: skip
            assert all(state == "online" for state, _ in bus.statuses("cam-b"))
            assert all(state == "online" for state, _ in bus.statuses("cam-c"))
            assert await api_streams(http, b) == ["cam-b", "cam-c"]
            # The dead worker left nothing that blocks its stream id: cam-a may start on B.
            index = json.dumps(await _keys(redis_server.url))
            assert "_claims:cam-a" not in index, index
        finally:
            await bus.close()
            for proc in senders:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            for proc in senders:
                await asyncio.wait_for(proc.wait(), 20)


async def _keys(url: str) -> list[str]:
    client = aioredis.Redis.from_url(url)
    try:
        keys: Any = await client.keys("scenestream:_*")
        return sorted(k.decode() for k in keys)
    finally:
        await client.aclose()
