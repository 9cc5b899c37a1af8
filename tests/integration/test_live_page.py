"""The live page's SSE bridge against a real redis-server: messages published to the stream's
channels reach the browser, other streams' do not, and a disconnect frees the subscription."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from stream.embedded_redis import EmbeddedRedis, free_port
from stream.live.page import LIVE_BRIDGE, LiveBridge
from stream.publish.messages import validate
from stream.publish.status import StreamState
from stream.routes import add_live_routes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PREFIX = "livetest"


@dataclass
class LiveApp:
    base: str
    bridge: LiveBridge
    runner: web.AppRunner
    redis: aioredis.Redis


async def _start(redis_url: str, **options: Any) -> tuple[web.Application, web.AppRunner, str]:
    """The live routes alone on a free loopback port: (app, runner, base URL)."""
    app = web.Application()
    add_live_routes(app, LiveBridge(redis_url, PREFIX, **options))
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return app, runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def live_app(redis_server: EmbeddedRedis) -> AsyncIterator[LiveApp]:
    app, runner, base = await _start(redis_server.url, poll_s=0.05)
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        yield LiveApp(base, app[LIVE_BRIDGE], runner, client)
    finally:
        await client.aclose()
        await runner.cleanup()


async def _next_event(resp: aiohttp.ClientResponse) -> tuple[str, str]:
    """The next SSE frame's (event, data); comments and `retry:` lines are skipped."""
    event, data = "message", list[str]()
    while True:
        raw = await resp.content.readline()
        assert raw, "event stream ended"
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                return event, "\n".join(data)
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)


async def _wait_subscribed(live: LiveApp, *, channel: str | None = None) -> None:
    """Until the bridge has subscribed to `channel` (or to a pattern when None)."""
    while True:
        if channel is None:
            count = await live.redis.pubsub_numpat()
        else:
            count = dict(await live.redis.pubsub_numsub(channel)).get(channel, 0)
        if count >= 1:
            return
        await asyncio.sleep(0.02)


async def _wait_released(live: LiveApp, channel: str) -> None:
    while True:
        numsub = dict(await live.redis.pubsub_numsub(channel)).get(channel, 0)
        if numsub == 0 and await live.redis.pubsub_numpat() == 0 and live.bridge.clients == 0:
            return
        await asyncio.sleep(0.05)


def _msg(kind: str, stream: str, **fields: object) -> str:
    return json.dumps({"v": 1, "type": kind, "stream": stream, **fields})


async def test_one_stream_gets_its_messages_and_disconnect_frees_subscription(
    live_app: LiveApp,
) -> None:
    scene_channel = f"{PREFIX}:cam1:scene"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live_app.base}/api/live?stream=cam1") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async with asyncio.timeout(5):
            await _wait_subscribed(live_app, channel=scene_channel)
        assert live_app.bridge.clients == 1
        r = live_app.redis
        await r.publish(f"{PREFIX}:cam2:events", _msg("event", "cam2", phase="start"))
        await r.publish(f"{PREFIX}:status", _msg("status", "cam2", state="online"))
        await r.publish(scene_channel, _msg("scene", "cam1", scores={"siren": 0.9}))
        await r.publish(f"{PREFIX}:cam1:events", _msg("event", "cam1", phase="start"))
        await r.publish(f"{PREFIX}:status", _msg("status", "cam1", state="online"))
        async with asyncio.timeout(5):
            got = [await _next_event(resp) for _ in range(3)]
        assert [kind for kind, _ in got] == ["scene", "event", "status"]
        assert {json.loads(data)["stream"] for _, data in got} == {"cam1"}
        assert json.loads(got[0][1])["scores"] == {"siren": 0.9}
    # The browser is gone: the handler notices, unsubscribes and forgets the client.
    async with asyncio.timeout(5):
        await _wait_released(live_app, scene_channel)


async def test_all_streams_and_kind_filter(live_app: LiveApp) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live_app.base}/api/live?kinds=events,status") as resp,
    ):
        assert resp.status == 200
        async with asyncio.timeout(5):
            await _wait_subscribed(live_app)
        r = live_app.redis
        await r.publish(f"{PREFIX}:cam1:scene", _msg("scene", "cam1"))  # not asked for
        await r.publish(f"{PREFIX}:cam1:events", _msg("event", "cam1", phase="start"))
        await r.publish(f"{PREFIX}:cam2:events", _msg("event", "cam2", phase="end"))
        await r.publish(f"{PREFIX}:status", _msg("status", "cam3", state="offline"))
        async with asyncio.timeout(5):
            got = [await _next_event(resp) for _ in range(3)]
        assert [(k, json.loads(d)["stream"]) for k, d in got] == [
            ("event", "cam1"),
            ("event", "cam2"),
            ("status", "cam3"),
        ]
    async with asyncio.timeout(5):
        await _wait_released(live_app, f"{PREFIX}:status")


async def test_page_static_files_and_bad_requests(live_app: LiveApp) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{live_app.base}/") as resp:
            assert resp.status == 200
            page = await resp.text()
            assert "/static/app.js" in page
            assert "/static/style.css" in page
        for path in ("/static/app.js", "/static/style.css"):
            async with http.get(live_app.base + path) as resp:
                assert resp.status == 200, path
        async with http.get(f"{live_app.base}/static/../live.py") as resp:
            assert resp.status in (403, 404)
        async with http.get(f"{live_app.base}/api/live?stream=bad*id") as resp:
            assert resp.status == 400
            assert resp.headers["Content-Type"].startswith("application/problem+json")
        async with http.get(f"{live_app.base}/api/live?kinds=nope") as resp:
            assert resp.status == 400
    assert live_app.bridge.clients == 0


async def test_viewer_limit_answers_503(redis_server: EmbeddedRedis) -> None:
    _, runner, base = await _start(redis_server.url, max_clients=1, poll_s=0.05)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/api/live") as first:
            assert first.status == 200
            async with http.get(f"{base}/api/live") as second:
                assert second.status == 503
                assert second.headers["Retry-After"]
    finally:
        await runner.cleanup()


async def test_shutdown_ends_open_event_streams(redis_server: EmbeddedRedis) -> None:
    app, runner, base = await _start(redis_server.url, poll_s=0.05)
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{base}/api/live?stream=cam1")
        assert resp.status == 200
        async with asyncio.timeout(5):
            await runner.cleanup()  # would wait for shutdown_timeout if the stream hung on
        async with asyncio.timeout(5):
            rest = await resp.content.read()
        assert b"event:" not in rest
        resp.release()
    assert app[LIVE_BRIDGE].clients == 0


async def test_token_required_when_the_service_has_tokens(redis_server: EmbeddedRedis) -> None:
    _, runner, base = await _start(redis_server.url, tokens=["s3cret"])
    url = f"{base}/api/live?stream=cam1"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 401
            async with http.get(url + "&token=wrong") as resp:
                assert resp.status == 401
            async with http.get(url + "&token=s3cret") as resp:
                assert resp.status == 200
            headers = {"Authorization": "Bearer s3cret"}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 200
            async with http.get(f"{base}/") as resp:
                assert resp.status == 200  # the page itself holds no data
    finally:
        await runner.cleanup()


async def test_slow_browser_loses_scenes_counted_never_events(live_app: LiveApp) -> None:
    """A client that stops reading: scenes beyond the buffer are dropped and reported in `lag`
    frames, events all arrive, and delivered + dropped scenes add up to what was published."""
    scenes, padding = 300, "x" * 65_536  # ~20 MB: more than the sockets between us buffer
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live_app.base}/api/live?stream=slow") as resp,
    ):
        async with asyncio.timeout(5):
            await _wait_subscribed(live_app, channel=f"{PREFIX}:slow:scene")
        r = live_app.redis
        for i in range(scenes):
            await r.publish(f"{PREFIX}:slow:scene", _msg("scene", "slow", seq=i, pad=padding))
            if i == scenes // 2:
                await r.publish(f"{PREFIX}:slow:events", _msg("event", "slow", id="mid"))
        await r.publish(f"{PREFIX}:slow:events", _msg("event", "slow", id="last"))
        delivered, dropped, events = 0, 0, []
        async with asyncio.timeout(30):
            while "last" not in events:
                kind, data = await _next_event(resp)
                if kind == "scene":
                    delivered += 1
                elif kind == "lag":
                    dropped = json.loads(data)["dropped_scenes"]
                elif kind == "event":
                    events.append(json.loads(data)["id"])
    assert events == ["mid", "last"]
    assert dropped > 0
    assert delivered + dropped == scenes


async def test_a_viewer_who_connects_later_sees_the_current_status(
    redis_server: EmbeddedRedis,
) -> None:
    """Status is published on change only: a page opened after a stream went online still
    shows it, from the worker's live sessions, before any further change."""
    current: list[tuple[str, StreamState, str]] = [
        ("cam1", "online", "connected"),
        ("cam2", "degraded", "overloaded: 40% stale"),
    ]
    app, runner, base = await _start(redis_server.url, poll_s=0.05, statuses=lambda: current)
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    live = LiveApp(base, app[LIVE_BRIDGE], runner, client)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/live?stream=cam2") as resp:
                async with asyncio.timeout(5):
                    kind, data = await _next_event(resp)
                assert kind == "status"
                msg = json.loads(data)
                validate(msg)
                assert (msg["stream"], msg["state"], msg["reason"]) == current[1]
                # then changes as before, from Redis
                await _wait_subscribed(live, channel=f"{PREFIX}:status")
                await client.publish(f"{PREFIX}:status", _msg("status", "cam2", state="online"))
                async with asyncio.timeout(5):
                    kind, data = await _next_event(resp)
                assert (kind, json.loads(data)["state"]) == ("status", "online")
            async with http.get(f"{base}/api/live") as resp:  # all streams: each one's status
                async with asyncio.timeout(5):
                    got = [await _next_event(resp) for _ in range(2)]
                assert [(k, json.loads(d)["stream"]) for k, d in got] == [
                    ("status", "cam1"),
                    ("status", "cam2"),
                ]
            current.clear()  # no live stream: nothing is sent, the page keeps "waiting…"
            async with http.get(f"{base}/api/live?stream=cam1") as resp:
                await _wait_subscribed(live, channel=f"{PREFIX}:cam1:scene")
                await client.publish(f"{PREFIX}:cam1:scene", _msg("scene", "cam1"))
                async with asyncio.timeout(5):
                    kind, _ = await _next_event(resp)
                assert kind == "scene"
    finally:
        await client.aclose()
        await runner.cleanup()
