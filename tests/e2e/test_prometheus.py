"""A real Prometheus scrapes the real service's `/metrics` while a scene streams through it, and
evaluates every dashboard expression and every alert rule.

Scrape targets: `service` (the whole service with a tiny random detector as a user engine,
module fixture, while `scenestream send` plays the `emergency` scene to it: every dashboard
panel must have data from it alone), `gpu-host` (only the GPU gauges, fed by the test: this
machine has no GPU and the service sets no GPU gauge on CPU, so the two GPU panels get their
data here), `troubled` (synthetic: late and stale windows, Redis away, skewed clocks, live
streams without frames: every alert must go pending or firing for it, and none for `service`)
and `down` (a closed port).

The second test draws the dashboard from `query_range` of every panel (Grafana cannot run here)
and screenshots it in Chromium: `docs/img/dashboard.png` in the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from stream.embedded_redis import EmbeddedRedis, free_port
from stream.metrics import Metrics
from tests.e2e.conftest import PREFIX, ROOT, ServiceThread, enabled_engines, service_thread
from tests.support.dashboard_render import TimeSpan, render_dashboard
from tests.support.dashboard_shot import CHROMIUM, chromium_page, query_targets, screenshot
from tests.support.deploy_exprs import (
    ALERTS,
    DEFAULT_VARIABLES,
    alert_exprs,
    dashboard_exprs,
    load_dashboard,
    variable_queries,
)
from tests.support.detector_fixtures import build_detector_engine

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
GPU_PANELS = ("GPU utilisation", "GPU memory")
STREAM = "e2e-prom"


@pytest.fixture(scope="module")
def service(
    e2e_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    """The service with the bundled engines plus a tiny random detector (a user engine built
    from a config, no download), so that the detection and track panels have data too."""
    user_dir = tmp_path_factory.mktemp("prom-engines")
    detector = build_detector_engine(user_dir).name
    with service_thread(
        server={"port": 0},
        session={"include_loopback": True},
        redis={"url": e2e_redis.url, "prefix": PREFIX},
        engines={
            "enabled": [*enabled_engines(), detector],
            "user_dir": str(user_dir),
            "cache_dir": str(user_dir / "cache"),
        },
        tracking={"min_hits": 2, "max_age_s": 1.0},
    ) as running:
        yield running


def _feed_gpu(m: Metrics, rng: random.Random) -> None:
    """One tick of a GPU host's gauges (the service exports none on CPU)."""
    m.gpu_utilization.labels(gpu="0").set(rng.uniform(0.2, 0.6))
    m.gpu_memory_bytes.labels(gpu="0").set(2.0e9)


def _feed_troubled(m: Metrics, tick: int) -> None:
    """One tick of a worker in trouble: every alert rule should see it."""
    m.active_streams.set(1)  # ...and no frame at all
    m.windows.labels(engine="avfusion", outcome="published").inc(2)
    m.windows.labels(engine="avfusion", outcome="late").inc(2)
    m.windows.labels(engine="avfusion", outcome="stale").inc(2)
    m.publish_failures.inc(3)
    m.streams_refused.labels(reason="loop_busy").inc()
    m.outbox_dropped.labels(type="scene").inc()
    m.outbox_depth.set(200 + 10 * tick)
    m.av_skew_seconds.observe(0.4)
    m.streams_refused.labels(reason="loop_busy").inc()  # no headroom for newcomers
    m.http_refused.labels(reason="auth_locked").inc()  # a token guesser locked out
    m.camera_connects.labels(result="lost").inc()  # a pulled camera keeps dropping


async def _serve_metrics(workers: dict[str, Metrics], port: int) -> web.AppRunner:
    async def metrics(request: web.Request) -> web.Response:
        m = workers[request.match_info["worker"]]
        body = await asyncio.get_running_loop().run_in_executor(None, m.render)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/{worker}/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _prometheus_config(service_port: int, metrics_port: int, down_port: int) -> dict[str, Any]:
    def target(name: str, port: int, path: str) -> dict[str, Any]:
        labels = {"instance": name, "__metrics_path__": path}
        return {"targets": [f"127.0.0.1:{port}"], "labels": labels}

    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "scenestream",
                "static_configs": [
                    target("service", service_port, "/metrics"),
                    target("gpu-host", metrics_port, "/gpu-host/metrics"),
                    target("troubled", metrics_port, "/troubled/metrics"),
                    target("down", down_port, "/metrics"),
                ],
            }
        ],
    }


@contextlib.contextmanager
def _prometheus(config: dict[str, Any]) -> Iterator[str]:
    """A real Prometheus on a free loopback port; yields its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="scenestream-prom-") as tmp:
        cfg = Path(tmp) / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        log = (Path(tmp) / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            if proc.returncode not in (0, -15):
                print((Path(tmp) / "prometheus.log").read_text()[-4000:])


async def _api(http: aiohttp.ClientSession, base: str, path: str, **params: str) -> Any:
    async with http.get(f"{base}/api/v1/{path}", params=params) as resp:
        body = await resp.json()
    assert body.get("status") == "success", f"{path} {params}: {body}"
    return body["data"]


async def _wait_for(http: aiohttp.ClientSession, base: str, query: str) -> None:
    """Poll until `query` has a result (Prometheus started and scraped enough)."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, AssertionError):
            if (await _api(http, base, "query", query=query))["result"]:
                return
        await asyncio.sleep(0.5)


async def _feed(workers: dict[str, Metrics]) -> None:
    rng = random.Random(7)
    for tick in range(10_000):
        _feed_gpu(workers["gpu-host"], rng)
        _feed_troubled(workers["troubled"], tick)
        await asyncio.sleep(0.2)


async def _start_sender(service: ServiceThread) -> asyncio.subprocess.Process:
    """`scenestream send` playing the 12 s `emergency` scene (once) to the service."""
    cmd = [sys.executable, "-m", "stream.cli", "send", service.whip_url(STREAM)]
    cmd += ["--scenario", "emergency", "--seconds", "13"]
    return await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


@contextlib.asynccontextmanager
async def _scraping(service: ServiceThread) -> AsyncIterator[str]:
    """A real Prometheus scraping the service while `emergency` streams to it, plus the GPU
    host, the troubled worker and a closed port; yields Prometheus's base URL."""
    workers = {"gpu-host": Metrics(process=False), "troubled": Metrics(process=False)}
    metrics_port, down_port = free_port(), free_port()
    runner = await _serve_metrics(workers, metrics_port)
    feeder = asyncio.create_task(_feed(workers), name="metrics-feeder")
    sender: asyncio.subprocess.Process | None = None
    config = _prometheus_config(service.service.port, metrics_port, down_port)
    try:
        with _prometheus(config) as base:  # Prometheus and the sender start side by side
            sender = await _start_sender(service)
            yield base
    finally:
        if sender is not None:
            with contextlib.suppress(ProcessLookupError):
                sender.terminate()
            await sender.wait()
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await runner.cleanup()


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian's prometheus not installed")
async def test_every_dashboard_and_alert_expression_evaluates_on_real_prometheus(
    service: ServiceThread,
) -> None:
    async with _scraping(service) as base, aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            await _wait_for(http, base, 'up{instance="service"} == 1')
        # The stream is live and Prometheus has scraped enough of it for rate().
        live = (
            'sum(rate(scenestream_windows_total{instance="service",outcome="published"}'
            '[10s])) > 0 and sum(scenestream_active_streams{instance="service"}) > 0'
        )
        async with asyncio.timeout(30):
            await _wait_for(http, base, live)
            await _wait_for(http, base, 'count_over_time(up{instance="troubled"}[1m]) >= 6')
        await _check_dashboard(http, base)
        await _check_alert_rules(http, base)


async def _empty_dashboard_exprs(http: aiohttp.ClientSession, base: str) -> list[str]:
    """Dashboard expressions without data, every one evaluated at the same instant."""
    at, empty = f"{time.time():.3f}", []
    for instance in ("service", "gpu-host"):
        variables = {**DEFAULT_VARIABLES, "instance": instance}
        for expr in dashboard_exprs(load_dashboard(), variables):
            if (instance == "gpu-host") != any(f"panel {p!r}" in expr.where for p in GPU_PANELS):
                continue  # GPU panels from the GPU host, every other one from the service
            result = (await _api(http, base, "query", query=expr.promql, time=at))["result"]
            if not result:
                empty.append(f"{instance}: {expr.where}: {expr.promql}")
    return empty


async def _check_dashboard(http: aiohttp.ClientSession, base: str) -> None:
    # The first windows of each engine reach Prometheus a scrape or two apart (and later on a
    # loaded machine): a panel gets up to 15 s to show data, then the test fails.
    deadline = time.monotonic() + 15
    for _ in range(30):
        empty = await _empty_dashboard_exprs(http, base)
        if not empty or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    assert not empty, "dashboard expressions without data:\n" + "\n".join(empty)
    dashboard = load_dashboard()
    for name, selector, label in variable_queries(dashboard):
        series = await _api(http, base, "series", **{"match[]": selector})
        values = {s.get(label) for s in series} - {None}
        assert values, f"variable ${name}: no {label} values for {selector}"


async def _check_alert_rules(http: aiohttp.ClientSession, base: str) -> None:
    for expr in alert_exprs():  # each evaluates, and the troubled worker gives it data
        result = (await _api(http, base, "query", query=expr.promql))["result"]
        assert result, f"{expr.where} returned nothing: {expr.promql}"
    expected = {(e.where.removeprefix("alert "), "troubled") for e in alert_exprs()}
    expected = {(name, "down" if name == "ScenestreamDown" else inst) for name, inst in expected}
    deadline = time.monotonic() + 20
    while True:
        groups = (await _api(http, base, "rules"))["groups"]
        rules = [r for g in groups for r in g["rules"]]
        alerts = await _api(http, base, "alerts")
        active = {(a["labels"]["alertname"], a["labels"]["instance"]) for a in alerts["alerts"]}
        if active == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert {r["name"] for r in rules} == {e.where.removeprefix("alert ") for e in alert_exprs()}
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, f"rules failing to evaluate: {bad}"
    assert active == expected, f"missing {expected - active}, unexpected {active - expected}"


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian's prometheus not installed")
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium not installed")
async def test_dashboard_preview_from_live_prometheus_is_screenshot(
    service: ServiceThread,
) -> None:
    """The dashboard drawn from `query_range` of every target while the `emergency` scene
    streams (tests/support/dashboard_render.py; Grafana cannot run here), in Chromium: every panel
    draws a series with data. Screenshot `artifacts/dashboard.png` (README's with
    SCENESTREAM_UPDATE_SCREENSHOTS=1)."""
    dashboard = load_dashboard()
    # Grafana's $__rate_interval for a 1 s scrape and 1 s step: max(4 x scrape, step + scrape).
    variables = {**DEFAULT_VARIABLES, "__rate_interval": "4s", "__interval": "1s"}

    def panel_variables(panel: Mapping[str, Any]) -> dict[str, str]:
        gpu = panel["title"] in GPU_PANELS
        return {**variables, "instance": "gpu-host" if gpu else "service"}

    # Prometheus, the sender and Chromium start side by side: the test stays short.
    async with _scraping(service) as base, chromium_page(1600) as page:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(30):
                await _wait_for(http, base, 'up{instance="service"} == 1')
            start = time.time()
            live = 'sum(rate(scenestream_windows_total{instance="service"}[4s])) > 0'
            async with asyncio.timeout(30):
                await _wait_for(http, base, live)
            await asyncio.sleep(max(1.0, start + 7 - time.time()))  # seconds of live data
            span = TimeSpan(start, time.time(), 1.0)
            results = await query_targets(http, base, dashboard, span, panel_variables)
        note = (
            "worker: service, streaming the emergency scene (GPU panels: gpu-host, GPU "
            "gauges fed by the test, no GPU here) · $__rate_interval 4s"
        )
        drawn = await screenshot(page, render_dashboard(dashboard, results, span, note))
    panels = {p["id"]: p["title"] for p in dashboard["panels"] if p["type"] != "row"}
    empty = [title for pid, title in panels.items() if not any(drawn.get(pid, []))]
    assert not empty, f"panels drawn without data: {empty}"
