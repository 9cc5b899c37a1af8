"""The adapters around the dashboard preview (`tests/support/dashboard_render.py`): `query_range`
for every dashboard target on a live Prometheus, and a full-page screenshot of the rendered page
in Debian's Chromium. Used by `tests/e2e/test_prometheus.py`.

Screenshot: `artifacts/dashboard.png`, and `docs/img/dashboard.png` with
SCENESTREAM_UPDATE_SCREENSHOTS=1 (the live-page test's convention: a plain test run leaves the
tree clean).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from tests.e2e.conftest import ARTIFACTS, ROOT
from tests.support.dashboard_render import Results, TimeSpan, panel_targets
from tests.support.deploy_exprs import substitute

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOT = ARTIFACTS / "dashboard.png"
README_SHOT = ROOT / "docs" / "img" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
# Each drawn series' point count, by panel id, read back from the rendered page.
_DRAWN = """panels => Object.fromEntries(panels.map(p => [p.dataset.id,
    [...p.querySelectorAll('.series')].map(s => Number(s.dataset.points))]))"""


async def query_targets(
    http: aiohttp.ClientSession,
    base: str,
    dashboard: Mapping[str, Any],
    span: TimeSpan,
    variables: Callable[[Mapping[str, Any]], dict[str, str]],
) -> Results:
    """`query_range` over `span` of every target the preview draws, with each panel's Grafana
    variables (`variables(panel)`) substituted; results by (panel id, refId)."""
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for panel, target in panel_targets(dashboard):
        params = {
            "query": substitute(target["expr"], variables(panel)),
            "start": f"{span.start:.3f}",
            "end": f"{span.end:.3f}",
            "step": f"{span.step:g}",
        }
        async with http.get(f"{base}/api/v1/query_range", params=params) as resp:
            body = await resp.json()
        assert body.get("status") == "success", f"{panel['title']}: {params['query']}: {body}"
        results[(panel["id"], target["refId"])] = body["data"]["result"]
    return results


@contextlib.asynccontextmanager
async def chromium_page(width: int) -> AsyncIterator[Any]:
    """A page `width` px wide in Debian's headless Chromium (Playwright), closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page(viewport={"width": width, "height": 1000})
        finally:
            await browser.close()


async def screenshot(page: Any, html: str) -> dict[int, list[int]]:
    """Show `html` on `page`, save the full page to `SHOT` (and `README_SHOT` when
    SCENESTREAM_UPDATE_SCREENSHOTS=1); return each panel's drawn series' point counts."""
    await page.set_content(html)
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await page.screenshot(path=str(SHOT), full_page=True)
    if os.environ.get("SCENESTREAM_UPDATE_SCREENSHOTS") == "1":
        await asyncio.to_thread(shutil.copyfile, SHOT, README_SHOT)
    drawn: dict[str, list[int]] = await page.eval_on_selector_all("section.panel", _DRAWN)
    return {int(pid): points for pid, points in drawn.items()}
