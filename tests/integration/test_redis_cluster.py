"""A real 3-node Redis Cluster started by the test: the publisher's sharded pub/sub (`SPUBLISH`)
and per-key logs reach the subscriber API, which finds out by itself that it talks to a cluster;
the worker directory (claims, adverts, peer choice) works across its shards, and the live page's
SSE bridge reads the sharded channels; a whole `scenestream serve` worker on the cluster is seen
by `scenestream events`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from stream.embedded_redis import find_redis_server, free_port
from stream.live.page import LiveBridge
from stream.metrics import Metrics
from stream.publish import messages as m
from stream.publish.redis_publisher import RedisPublisher
from stream.routes import add_live_routes
from stream.scaleout.directory import WorkerDirectory
from stream.scaleout.redis_client import detect_cluster
from stream.subscribe import Subscription

pytestmark = pytest.mark.integration

PREFIX = "cl"


def _redis_cli(server: str) -> str | None:
    return shutil.which("redis-cli") or (
        str(Path(server).with_name("redis-cli"))
        if Path(server).with_name("redis-cli").exists()
        else None
    )


def _port_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """Three masters on 127.0.0.1, slots spread by `redis-cli --cluster create`."""
    server = find_redis_server()
    cli = _redis_cli(server)
    version = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", version)
    if cli is None or found is None or int(found.group(1)) < 7:
        pytest.skip(f"needs redis-server 7+ (SPUBLISH) and redis-cli: {version.strip()}")
    work = tempfile.TemporaryDirectory(prefix="scenestream-cluster-")
    ports = [_port_pair() for _ in range(3)]
    procs = [_node(server, port, work.name) for port in ports]
    try:
        for port in ports:
            _until(lambda port=port: _ping(port), 10, f"node {port} up")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        for port in ports:
            _until(lambda port=port: _cluster_ok(port), 15, f"node {port} sees the cluster ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        work.cleanup()


def _node(server: str, port: int, work: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
         "--dir", work, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _ping(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _cluster_ok(port: int) -> bool:
    info: Any = redis.Redis(port=port, socket_timeout=1).cluster("info")
    return bool(info["cluster_state"] == "ok")


def _until(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def event(stream: str, n: int) -> m.Message:
    return m.event_message(
        stream=stream, engine="silero-vad", event_id=f"{stream}-speech-{n}", label="speech",
        phase="start", score=0.9, peak_score=0.9, start=1000.0 + n, end=None, published_at=0.0,
    )  # fmt: skip


def scene(stream: str, seq: int) -> m.Message:
    return m.scene_message(
        stream=stream, engine="silero-vad", seq=seq, start=1.0, end=2.0, gaps=(),
        scores={"speech": 0.2}, active=(), latency=m.LatencyBreakdown(0, 0, 0), published_at=0.0,
    )  # fmt: skip


async def test_sharded_pubsub_and_logs_reach_the_subscriber(cluster_url: str) -> None:
    assert await detect_cluster(cluster_url)
    streams = [f"cam{i}" for i in range(6)]  # names that hash to different shards
    pub = RedisPublisher(cluster_url, PREFIX, Metrics(process=False), cluster=True)
    await pub.start()
    got: list[m.Message] = []
    logged: list[m.Message] = []
    try:
        async with (
            Subscription(
                cluster_url, prefix=PREFIX, streams=streams, kinds=["scene", "events", "status"]
            ) as sub,
            # All streams' events: logs found by SCAN over every node, read one XREAD each.
            Subscription(
                cluster_url, prefix=PREFIX, kinds=["events"], scan_interval_s=0.2
            ) as every,
        ):
            assert sub.cluster is True  # "auto" asked the server
            for stream in streams:
                pub.stream_status(stream, "online", "connected")
                pub.publish(scene(stream, 1))
                pub.publish(event(stream, 1))
            async with asyncio.timeout(15):
                async for msg in sub:
                    got.append(msg)
                    if len(got) == 3 * len(streams):
                        break
                async for msg in every:
                    logged.append(msg)
                    if len(logged) == len(streams):
                        break
        assert pub.connected
        assert pub.protocol_errors == 0
    finally:
        await pub.close()
    for stream in streams:
        kinds = sorted(str(msg["type"]) for msg in got if msg["stream"] == stream)
        assert kinds == ["event", "scene", "status"], (stream, kinds)
    assert sorted(str(msg["stream"]) for msg in logged) == streams
    # The channels were sharded ones (a plain PUBLISH/SUBSCRIBE would not show here), spread
    # over more than one node, and the logs are ordinary per-key Redis Streams.
    client = RedisCluster.from_url(cluster_url)
    try:
        await client.initialize()
        nodes = {str(client.get_node_from_key(f"{PREFIX}:{s}:scene")) for s in streams}
        assert len(nodes) > 1
        for stream in streams:
            assert await client.xlen(f"{PREFIX}:{stream}:log") == 1
    finally:
        await client.aclose()


async def test_all_streams_scene_discovery_and_worker_directory_on_a_cluster(
    cluster_url: str,
) -> None:
    lost: list[str] = []
    a = WorkerDirectory(RedisCluster.from_url(cluster_url), PREFIX, 1, worker_id="wa")
    b = WorkerDirectory(
        RedisCluster.from_url(cluster_url), PREFIX, 4, worker_id="wb", on_lost=lost.append
    )
    await a.start("http://a:1")
    await b.start("http://b:2")
    pub = RedisPublisher(cluster_url, PREFIX, Metrics(process=False), cluster=True)
    await pub.start()
    try:
        assert await a.claim("door")
        assert not await b.claim("door")  # unique across workers on a cluster too
        assert await b.claim("yard")
        peer = await a.peer_with_room()
        assert peer is not None
        assert peer.url == "http://b:2"
        got: list[m.Message] = []
        async with Subscription(
            cluster_url, prefix=PREFIX, kinds=["scene"], scan_interval_s=0.2
        ) as sub:
            # streams=None: no sharded pattern subscription exists; the advertised streams are.
            async with asyncio.timeout(15):
                while {str(msg["stream"]) for msg in got} != {"door", "yard"}:
                    pub.publish(scene("door", len(got)))
                    pub.publish(scene("yard", len(got)))
                    try:
                        async with asyncio.timeout(0.5):
                            got.append(await anext(sub))
                    except TimeoutError:
                        continue
    finally:
        await pub.close()
        await a.close()
        await b.close()
    assert lost == []


async def _sse_kinds(resp: aiohttp.ClientResponse, want: set[str], within_s: float) -> set[str]:
    """SSE event names seen on `resp` until all of `want` came (or time ran out)."""
    seen: set[str] = set()
    async with asyncio.timeout(within_s):
        while not want <= seen:
            line = (await resp.content.readline()).decode()
            if line.startswith("event:"):
                seen.add(line.partition(":")[2].strip())
    return seen


async def test_live_page_bridge_reads_sharded_channels(cluster_url: str) -> None:
    app = web.Application()
    add_live_routes(app, LiveBridge(cluster_url, PREFIX, poll_s=0.05, cluster=True))
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    worker = WorkerDirectory(RedisCluster.from_url(cluster_url), PREFIX, 4, worker_id="wl")
    await worker.start("http://w:1")
    pub = RedisPublisher(cluster_url, PREFIX, Metrics(process=False), cluster=True)
    await pub.start()

    async def keep_publishing() -> None:
        for n in range(200):  # until the SSE reader has (re)subscribed and seen them
            pub.publish(scene("porch", n))
            pub.stream_status("porch", "online", "connected")
            await asyncio.sleep(0.1)

    assert await worker.claim("porch")  # advertised: the all-streams view discovers it
    feeder = asyncio.create_task(keep_publishing())
    try:
        async with aiohttp.ClientSession() as http:
            for query in ("?stream=porch", ""):
                async with http.get(f"http://127.0.0.1:{port}/api/live{query}") as resp:
                    assert resp.status == 200
                    seen = await _sse_kinds(resp, {"scene", "status"}, 10)
                    assert {"scene", "status"} <= seen, query
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await pub.close()
        await worker.close()
        await runner.cleanup()


async def test_serve_send_and_events_cli_on_a_cluster(cluster_url: str) -> None:
    """The whole path on a cluster, as a user runs it: every part finds out by itself."""
    port = free_port()
    env = {
        **os.environ,
        "SCENESTREAM_ENGINES__ENABLED": '["silero-vad"]',
        "SCENESTREAM_SESSION__INCLUDE_LOOPBACK": "true",
        "SCENESTREAM_REDIS__PREFIX": "cli",
    }
    serve = await _cli("serve", "--port", str(port), "--redis", cluster_url, env=env, read=False)
    events: asyncio.subprocess.Process | None = None
    try:
        await _wait_ready(port, serve)
        events = await _cli(
            "events", "--redis", cluster_url, "--prefix", "cli", "--kind", "status",
            "--kind", "scene", "--json", "--seconds", "12", env=env,
        )  # fmt: skip
        await asyncio.sleep(1.5)  # the CLI subscribes before the stream starts
        send = await _cli(
            "send", f"http://127.0.0.1:{port}/whip/lobby", "--scenario", "conversation",
            "--seconds", "4",
        )  # fmt: skip
        _, send_err = await asyncio.wait_for(send.communicate(), 30)
        assert send.returncode == 0, send_err.decode()
        out, err = await asyncio.wait_for(events.communicate(), 30)
        assert events.returncode == 0, err.decode()
    finally:
        for proc in (events, serve):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 20)
    lines = [json.loads(line) for line in out.decode().splitlines()]
    states = [(x["state"], x["reason"]) for x in lines if x["type"] == "status"]
    assert states == [("online", "connected"), ("offline", "deleted")], states
    scenes = [x for x in lines if x["type"] == "scene"]
    assert scenes, "no scene message reached the CLI"
    assert {x["stream"] for x in scenes} == {"lobby"}
    assert {x["engine"] for x in scenes} == {"silero-vad"}


async def _cli(
    *args: str, env: dict[str, str] | None = None, read: bool = True
) -> asyncio.subprocess.Process:
    """A `scenestream` subprocess; output unread (`read=False`) goes nowhere, never a full pipe."""
    out = asyncio.subprocess.PIPE if read else asyncio.subprocess.DEVNULL
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "scenestream"), *args, env=env, stdout=out, stderr=out
    )


async def _wait_ready(port: int, serve: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while serve.returncode is None:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("scenestream serve exited on a cluster")
