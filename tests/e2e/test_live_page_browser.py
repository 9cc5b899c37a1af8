"""The live page in a real browser (Debian's Chromium driven by Playwright, fake camera + mic).

The page publishes over WHIP to a minimal aiortc endpoint defined here (a stand-in for the
service's WHIP server, which has its own tests; the whole-service browser test drives the real
one), then shows the scene, events and status that the test publishes to a real Redis, and the
operator table. Stop sends the WHIP DELETE. A screenshot lands in artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole

from stream.embedded_redis import EmbeddedRedis, free_port
from stream.web.live import setup_live_routes

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PREFIX = "pagetest"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@dataclass
class FakeWhip:
    """Just enough WHIP for the page: POST answers an offer, DELETE closes the session."""

    sessions: dict[str, RTCPeerConnection] = field(default_factory=dict)
    streams: dict[str, str] = field(default_factory=dict)  # session -> stream
    kinds: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    sinks: list[MediaBlackhole] = field(default_factory=list)
    deleted_any: asyncio.Event = field(default_factory=asyncio.Event)

    async def post(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/sdp"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sink = MediaBlackhole()  # drains the tracks so nothing queues up
        self.sinks.append(sink)

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.kinds.append(track.kind)
            sink.addTrack(track)

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        session = uuid.uuid4().hex
        stream = request.match_info["stream"]
        self.sessions[session] = pc
        self.streams[session] = stream
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"Location": f"/whip/{stream}/{session}"},
        )

    async def delete(self, request: web.Request) -> web.Response:
        session = request.match_info["session"]
        pc = self.sessions.pop(session, None)
        if pc is None:
            raise web.HTTPNotFound()
        self.deleted.append(self.streams.pop(session))
        self.deleted_any.set()
        await pc.close()
        return web.Response(status=200)

    async def api_streams(self, request: web.Request) -> web.Response:
        rows = [
            {"stream": s, "session": k, "state": "live", "fps": 24.0, "uptime_s": 3.0,
             "frames_received": {"video": 72, "audio": 150}, "frames_dropped": {"video:stale": 2},
             "windows": 5, "last_window_latency_ms": 81.5}
            for k, s in self.streams.items()
        ]  # fmt: skip
        return web.json_response({"streams": rows})

    async def close(self) -> None:
        for pc in self.sessions.values():
            await pc.close()
        for sink in self.sinks:
            await sink.stop()


@pytest.fixture
async def page_server(
    redis_server: EmbeddedRedis, loopback_ice: None
) -> AsyncIterator[tuple[str, FakeWhip]]:
    whip = FakeWhip()
    app = web.Application()
    setup_live_routes(app, redis_url=redis_server.url, prefix=PREFIX, poll_s=0.05)
    app.router.add_post("/whip/{stream}", whip.post)
    app.router.add_delete("/whip/{stream}/{session}", whip.delete)
    app.router.add_get("/api/streams", whip.api_streams)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", whip
    finally:
        await runner.cleanup()
        await whip.close()


# Playwright gives the browser a fresh profile of its own (no --user-data-dir here).
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run",
]  # fmt: skip


async def _publish_scene_messages(r: aioredis.Redis, stream: str) -> None:
    now = time.time()
    base = {"v": 1, "stream": stream, "engine": "avfusion", "published_at": now}
    status = {**base, "type": "status", "state": "online", "reason": "connected"}
    scores = {"siren": 0.97, "flashing_lights": 0.91, "emergency_vehicle": 0.93, "speech": 0.02}
    scene = {
        **base,
        "type": "scene",
        "seq": 1,
        "window": {"start": now - 1.1, "end": now - 0.1, "gaps": []},
        "scores": scores,
        "active": ["siren", "flashing_lights", "emergency_vehicle"],
        "latency_ms": {"capture_to_publish": 84.2, "queue": 3.1, "infer": 11.0},
    }
    event = {
        **base,
        "type": "event",
        "id": f"{stream}-emergency_vehicle-1",
        "label": "emergency_vehicle",
        "phase": "start",
        "score": 0.93,
        "peak_score": 0.93,
        "start": now - 0.6,
        "end": None,
    }
    await r.publish(f"{PREFIX}:status", json.dumps(status))
    await r.publish(f"{PREFIX}:{stream}:scene", json.dumps(scene))
    await r.publish(f"{PREFIX}:{stream}:events", json.dumps(event))


async def _wait_live_subscribed(r: aioredis.Redis, channel: str) -> None:
    while True:
        if dict(await r.pubsub_numsub(channel)).get(channel, 0) >= 1:
            return
        await asyncio.sleep(0.05)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium not installed")
async def test_page_publishes_over_whip_and_shows_live_messages(
    page_server: tuple[str, FakeWhip], redis_server: EmbeddedRedis
) -> None:
    from playwright.async_api import async_playwright

    base, whip = page_server
    stream = "cam1"
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{base}/?stream={stream}")
            await page.click("#start")
            await page.wait_for_selector('#conn[data-state="ok"]', timeout=20_000)
            assert sorted(whip.kinds) == ["audio", "video"]

            async with asyncio.timeout(10):
                await _wait_live_subscribed(r, f"{PREFIX}:{stream}:events")
            await _publish_scene_messages(r, stream)
            await page.wait_for_selector(
                '#timeline li[data-label="emergency_vehicle"][data-phase="start"]',
                timeout=10_000,
            )
            assert await page.text_content("#stream-state") == "online"
            assert await page.locator('.score.on[data-label="siren"]').count() == 1
            assert await page.locator('.score.on[data-label="speech"]').count() == 0
            cells = page.locator('#latency tr[data-key="capture_to_publish"] td')
            assert await cells.nth(0).text_content() == "84.2"
            await page.wait_for_selector(f'#streams tr[data-stream="{stream}"]', timeout=5_000)

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "live-page.png"), full_page=True)

            await page.click("#stop")
            await page.wait_for_selector('#conn[data-state="idle"]', timeout=10_000)
            async with asyncio.timeout(5):
                await whip.deleted_any.wait()
            assert whip.deleted == [stream]
            assert not errors, errors
        finally:
            await browser.close()
    await r.aclose()
