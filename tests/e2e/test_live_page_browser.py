"""The live page of the real service in a real browser (Debian's Chromium driven by Playwright).

Chromium's fake camera and microphone play the `emergency` scene rendered to Y4M + WAV (street
0–4 s, emergency vehicle 4–9 s); the page publishes it over WHIP to the whole service (module
fixture: real Redis, loopback ICE, the bundled engines), and must show the stream connected and,
while the vehicle is in view (plus the engine's hop and budget), an `emergency_vehicle` event on
its timeline, the same event that is in the stream's Redis log. Stop sends the WHIP DELETE and
the stream goes offline. Screenshot: `artifacts/live-page.png` (and `docs/img/live-page.png` with
SCENESTREAM_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from engines.lab.scenes.registry import load_scenario
from engines.lab.scenes.render import RenderedFiles, render_files
from stream.publish.messages import validate
from tests.e2e.conftest import (
    ARTIFACTS,
    AVFUSION_MISSING,
    HAVE_AVFUSION,
    PREFIX,
    ROOT,
    ServiceThread,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STREAM = "e2e-browser"
README_SHOT = ROOT / "docs" / "img" / "live-page.png"

# Playwright gives the browser a fresh profile of its own (no --user-data-dir here).
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def emergency_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderedFiles]:
    """The `emergency` script as Y4M + 16-bit WAV + truth, rendered once (about 160 MB)."""
    out = tmp_path_factory.mktemp("scene")
    files = render_files(load_scenario("emergency", seed=0), out)
    yield files
    for path in (files.video, files.audio):
        path.unlink(missing_ok=True)  # do not keep 160 MB of Y4M around


def _media_args(files: RenderedFiles) -> list[str]:
    return [
        f"--use-file-for-fake-video-capture={files.video}",
        f"--use-file-for-fake-audio-capture={files.audio}",
    ]


def _interval(files: RenderedFiles, label: str) -> tuple[float, float]:
    truth = json.loads(files.truth.read_text())
    [iv] = [iv for iv in truth["truth"] if iv["label"] == label]
    return float(iv["start_s"]), float(iv["end_s"])


async def _logged(r: aioredis.Redis, stream: str) -> list[dict[str, Any]]:
    entries: Any = await r.xrange(f"{PREFIX}:{stream}:log")
    return [json.loads(fields["data"]) for _, fields in entries]


async def _status_of(pubsub: Any, stream: str, state: str) -> dict[str, Any]:
    """The next status message of `stream` in `state` on a subscribed status channel."""
    async for raw in pubsub.listen():
        if raw.get("type") == "message":
            msg: dict[str, Any] = json.loads(raw["data"])
            if msg.get("stream") == stream and msg.get("state") == state:
                return msg
    raise AssertionError("status subscription ended")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium not installed")
@pytest.mark.skipif(not HAVE_AVFUSION, reason=AVFUSION_MISSING)
async def test_live_page_publishes_the_emergency_scene_and_shows_its_event(
    service: ServiceThread, emergency_files: RenderedFiles
) -> None:
    await publish_from_page(service, emergency_files, "emergency_vehicle", "avfusion")


async def publish_from_page(
    service: ServiceThread, files: RenderedFiles, label: str, engine_name: str
) -> None:
    """Publish `files` from the live page; `label` (of `engine_name`) must reach the timeline
    while its truth interval is on (plus hop and budget) and be the one in Redis."""
    from playwright.async_api import async_playwright

    engine = service.engine(engine_name)
    begin, finish = _interval(files, label)
    r = aioredis.from_url(service.redis_url, decode_responses=True)
    pubsub = r.pubsub()
    await pubsub.subscribe(f"{PREFIX}:status")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + _media_args(files)
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{service.url}/?stream={STREAM}")
            clicked = time.time()  # the fake camera starts the file at getUserMedia, after this
            await page.click("#start")
            await page.wait_for_selector('#conn[data-state="ok"]', timeout=20_000)
            connected = time.time()
            # What the truth labels lies in [begin, finish] of the file: the event must be on the
            # timeline before it is over, give or take one hop and the budget.
            deadline = connected + finish + engine.spec.hop_s + engine.budget_s
            item = page.locator(f'#timeline li[data-label="{label}"][data-phase="start"]').first
            await item.wait_for(timeout=max(1.0, deadline - time.time()) * 1000)
            event_id = await item.get_attribute("data-id")
            print(f"{event_id} on the page {time.time() - clicked:.2f} s after Publish")

            [logged] = [m for m in await _logged(r, STREAM) if m.get("id") == event_id]
            validate(logged)
            assert (logged["label"], logged["phase"]) == (label, "start")
            assert logged["published_at"] >= clicked + begin, (logged, clicked)  # not before
            assert await page.text_content("#stream-state") == "online"
            # A viewer who opens the page now, with no status change since, sees it too.
            viewer = await browser.new_page()
            await viewer.goto(f"{service.url}/?watch={STREAM}")
            shown = await viewer.wait_for_selector("#stream-state[data-state]", timeout=10_000)
            assert shown is not None
            assert await shown.text_content() in ("online", "degraded")
            await viewer.close()
            await page.wait_for_selector(f'#streams tr[data-stream="{STREAM}"]', timeout=5_000)
            cell = page.locator('#latency tr[data-key="capture_to_publish"] td').first
            assert float(await cell.text_content() or "nan") > 0

            await _screenshots(page)
            await page.click("#stop")
            await page.wait_for_selector('#conn[data-state="idle"]', timeout=10_000)
            async with asyncio.timeout(10):
                await _status_of(pubsub, STREAM, "offline")
            assert not errors, errors
        finally:
            await browser.close()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await r.aclose()


async def _screenshots(page: Any) -> None:
    """The page during the event: a test artifact; the README's picture only when asked
    (`SCENESTREAM_UPDATE_SCREENSHOTS=1`), so that a test run leaves the tree clean."""
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "live-page.png"), full_page=True)
    if os.environ.get("SCENESTREAM_UPDATE_SCREENSHOTS") == "1":
        await page.screenshot(path=str(README_SHOT), full_page=True)
