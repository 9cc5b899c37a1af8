"""The live page of the real service in stock Firefox (Debian's firefox-esr over WebDriver BiDi).

Firefox's own fake camera and microphone (a colour pattern and a tone: no scene the engines
should name) publish over WHIP from the page's Publish button to the whole service (module
fixture: real Redis, loopback ICE, the bundled engines). The page must show the stream connected
and `online`, list it in the operator table, and show every scene message the service published
to Redis for it (each one valid against the schema): the same count, the same labels, scores
that Redis carried, and the same lifecycle events on its timeline. Stop sends the WHIP DELETE:
the stream goes `offline` with reason `deleted`.
Screenshot: `artifacts/live-page-firefox.png`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest

from stream.publish.messages import validate
from tests.e2e.conftest import (
    ARTIFACTS,
    ServiceThread,
    Tap,
    enabled_engines,
    tap,
    wait_offline,
)
from tests.support.firefox_bidi import FirefoxPage, firefox_binary, firefox_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

FIREFOX = firefox_binary()
STREAM = "e2e-firefox"
SCREENSHOT = ARTIFACTS / "live-page-firefox.png"
MIN_SCENES = 6  # scene messages on the page before the checks (a few hops of each engine)

ROW = f"document.querySelector('#streams tr[data-stream=\"{STREAM}\"]')"
ROW_CELLS = f"[...{ROW}.cells].map((td) => td.textContent)"
CONN = "document.querySelector('#conn').dataset.state"
PUBLISH_ERROR = "document.querySelector('#publish-error').textContent"
SETTLED = f"['ok', 'bad'].includes({CONN}) || {PUBLISH_ERROR}"  # connected, failed or refused
WATCH_SCORES = """(() => {
  window.scoreUpdates = 0;
  new MutationObserver((changes) => { window.scoreUpdates += changes.length; }).observe(
    document.querySelector('#scores'), { subtree: true, childList: true, characterData: true });
  return Number(document.querySelector('#scene-count').textContent);
})()"""
# The page's scene view: message count, per-page drops, every score row's label and shown value.
SCENE_VIEW = """({
  count: Number(document.querySelector('#scene-count').textContent),
  dropped: Number(document.querySelector('#scene-dropped').textContent),
  state: document.querySelector('#stream-state').textContent,
  scores: Object.fromEntries([...document.querySelectorAll('#scores .score')].map(
    (row) => [row.dataset.label, row.querySelector('.value').textContent])),
  capture_to_publish: document.querySelector(
    '#latency tr[data-key="capture_to_publish"] td').textContent,
  events: [...document.querySelectorAll('#timeline li')].reverse().map(
    (li) => [li.dataset.id, li.dataset.phase]),
})"""


@pytest.mark.skipif(FIREFOX is None, reason="no Firefox on PATH (firefox-esr or firefox)")
async def test_live_page_publishes_from_firefox(service: ServiceThread) -> None:
    assert FIREFOX is not None
    async with tap(service.redis_url, STREAM) as seen, firefox_page(FIREFOX) as page:
        await page.navigate(f"{service.url}/?stream={STREAM}")
        clicked = time.monotonic()
        await page.evaluate("document.querySelector('#start').click()")
        state = await page.wait_for(f"({SETTLED}) && {CONN}", 20)
        error = await page.evaluate(PUBLISH_ERROR)
        assert state == "ok", f"{error!r}; Firefox: {list(page.bidi.console)[-10:]}"
        print(f"connected {time.monotonic() - clicked:.2f} s after Publish")

        await page.wait_for(f"{SCENE_VIEW}.count >= {MIN_SCENES}", 30)
        # Scores of a fake tone and colour pattern barely change: count that the rows are
        # rewritten for later scenes, not only that they show the right values at the end.
        seen_by_page = await page.evaluate(WATCH_SCORES)
        await page.wait_for(f"{SCENE_VIEW}.count >= {seen_by_page + 2}", 10)
        assert await page.evaluate("window.scoreUpdates") > 0
        await page.wait_for(f"{SCENE_VIEW}.state === 'online'", 5)
        row = await page.wait_for(f"{ROW} && {ROW_CELLS}", 5)  # the table is polled every 2 s
        video, audio = (int(n) for n in row[3].split(" / "))  # frames the service received
        assert row[0] == STREAM, row
        assert video > 0, row
        assert audio > 0, row
        assert math.isfinite(float((await page.evaluate(SCENE_VIEW))["capture_to_publish"]))
        await page.screenshot(await _artifact())
        print(f"operator row: {row}; drops: {await page.evaluate(f'{ROW}.cells[4].title')}")

        await page.evaluate("document.querySelector('#stop').click()")
        await page.wait_for(f"{CONN} === 'idle'", 10)
        await wait_offline(seen, 10)  # the DELETE closes it now, not the 10 s media timeout
        await page.wait_for(f"{SCENE_VIEW}.state === 'offline' && !{ROW}", 6)
        view = await _all_scenes_shown(page, seen)
        assert not page.bidi.page_errors, page.bidi.page_errors

    print(f"{view['count']} scene messages on the page ({view['dropped']} dropped for it)")
    _check_redis(seen, view)


async def _artifact() -> Any:
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    return SCREENSHOT


async def _all_scenes_shown(page: FirefoxPage, seen: Tap) -> dict[str, Any]:
    """The page's scene view once it accounts for every scene message Redis carried (shown, or
    counted as dropped for this page by the live bridge) and lists every event."""
    view: dict[str, Any] = {}
    try:
        async with asyncio.timeout(10):
            while True:
                view = await page.evaluate(SCENE_VIEW)
                scenes, events = view["count"] + view["dropped"], len(view["events"])
                if (scenes, events) == (len(seen.scenes), len(seen.events)):
                    return view
                await asyncio.sleep(0.2)
    except TimeoutError:
        in_redis = f"{len(seen.scenes)} scenes, {len(seen.events)} events in Redis"
        raise AssertionError(f"page {view} vs {in_redis}") from None


def _check_redis(seen: Tap, view: dict[str, Any]) -> None:
    """Redis carried valid messages: `online` then `offline` (deleted), scenes from every
    engine; the page shows, for each label, the score of the last scene that carried it, and
    the last scene's capture-to-publish latency."""
    for msg in seen.all():
        validate(msg)
    states = [(m["state"], m["reason"]) for m in seen.status]
    assert states[0][0] == "online", states
    assert states[-1] == ("offline", "deleted"), states
    scenes = seen.scenes[: view["count"] + view["dropped"]]  # those the page accounted for
    assert {m["engine"] for m in scenes} == set(enabled_engines())
    assert view["count"] >= MIN_SCENES
    labels = {label for m in scenes for label in m["scores"]}
    assert set(view["scores"]) == labels, (view["scores"], labels)
    for label, shown in view["scores"].items():
        [*_, last] = (m["scores"][label] for m in scenes if label in m["scores"])
        _assert_shown(shown, last, 2, label)
    last_latency = scenes[-1]["latency_ms"]
    _assert_shown(view["capture_to_publish"], last_latency["capture_to_publish"], 1, "latency")
    events = seen.events[: len(view["events"])]
    assert view["events"] == [[m["id"], m["phase"]] for m in events], (view["events"], events)
    print(json.dumps(view["scores"]), "timeline:", view["events"])
    for engine in enabled_engines():
        [*_, last_scene] = (m for m in scenes if m["engine"] == engine)
        print(f"{engine} latency_ms of its last scene: {last_scene['latency_ms']}")


def _assert_shown(shown: str, value: float, digits: int, what: str) -> None:
    """`shown` is `value` as the page prints it with `digits` decimals (compared as numbers:
    JavaScript rounds ties up, Python to even)."""
    assert abs(float(shown) - value) <= 0.5 * 10**-digits + 1e-9, (what, shown, value)
