"""A real Prometheus scrapes `stream.metrics.Metrics` and evaluates every dashboard expression
and every alert rule.

Three scrape targets: `healthy` (a worker doing its job: every dashboard panel must have data),
`troubled` (late and stale windows, Redis away, skewed clocks, live streams without frames:
every alert must go pending or firing for it, and none for `healthy`) and `down` (a closed port).
Observations are fed by the test; the lead switches the healthy target to the full service.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from stream.embedded_redis import free_port
from stream.metrics import STAGES, Metrics
from tests.deploy_exprs import (
    ALERTS,
    alert_exprs,
    dashboard_exprs,
    load_dashboard,
    variable_queries,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ENGINES = ("avfusion", "silero-vad")


def _feed_healthy(m: Metrics, rng: random.Random) -> None:
    """One tick of a worker keeping up: everything published within budget."""
    m.active_streams.set(2)
    for engine in ENGINES:
        for stage in STAGES:
            m.stage_seconds.labels(stage=stage, engine=engine).observe(rng.uniform(0.001, 0.03))
        m.capture_to_publish_seconds.labels(engine=engine).observe(rng.uniform(0.05, 0.2))
        m.batch_size.labels(engine=engine).observe(rng.choice((1, 2, 4)))
        m.windows.labels(engine=engine, outcome="published").inc(2)
        m.windows.labels(engine=engine, outcome="superseded").inc(0)
        m.queue_depth.labels(engine=engine).set(rng.randint(0, 3))
    m.av_skew_seconds.observe(rng.uniform(0.001, 0.02))
    m.frames_received.labels(kind="video").inc(6)
    m.frames_received.labels(kind="audio").inc(10)
    m.frames_dropped.labels(kind="video", reason="ring_full").inc(rng.randint(0, 1))
    m.outbox_depth.set(0)
    m.outbox_dropped.labels(type="scene")  # exposed at 0
    m.gpu_utilization.labels(gpu="0").set(rng.uniform(0.2, 0.6))
    m.gpu_memory_bytes.labels(gpu="0").set(2.0e9)


def _feed_troubled(m: Metrics, tick: int) -> None:
    """One tick of a worker in trouble: every alert rule should see it."""
    m.active_streams.set(1)  # ...and no frame at all
    m.windows.labels(engine="avfusion", outcome="published").inc(2)
    m.windows.labels(engine="avfusion", outcome="late").inc(2)
    m.windows.labels(engine="avfusion", outcome="stale").inc(2)
    m.publish_failures.inc(3)
    m.outbox_dropped.labels(type="scene").inc()
    m.outbox_depth.set(200 + 10 * tick)
    m.av_skew_seconds.observe(0.4)


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


def _prometheus_config(metrics_port: int, down_port: int) -> dict[str, Any]:
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
                    target("healthy", metrics_port, "/healthy/metrics"),
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
        _feed_healthy(workers["healthy"], rng)
        _feed_troubled(workers["troubled"], tick)
        await asyncio.sleep(0.2)


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian's prometheus not installed")
async def test_every_dashboard_and_alert_expression_evaluates_on_real_prometheus() -> None:
    workers = {"healthy": Metrics(), "troubled": Metrics(process=False)}
    metrics_port, down_port = free_port(), free_port()
    runner = await _serve_metrics(workers, metrics_port)
    feeder = asyncio.create_task(_feed(workers), name="metrics-feeder")
    try:
        with _prometheus(_prometheus_config(metrics_port, down_port)) as base:
            async with aiohttp.ClientSession() as http:
                # Enough scrapes for rate() and deriv() to have points on both targets.
                async with asyncio.timeout(60):
                    await _wait_for(http, base, 'count_over_time(up{instance="troubled"}[1m]) >= 6')
                await _check_dashboard(http, base)
                await _check_alert_rules(http, base)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await runner.cleanup()


async def _check_dashboard(http: aiohttp.ClientSession, base: str) -> None:
    dashboard = load_dashboard()
    empty = []
    for expr in dashboard_exprs(dashboard):
        result = (await _api(http, base, "query", query=expr.promql))["result"]
        if not result:
            empty.append(f"{expr.where}: {expr.promql}")
    assert not empty, "dashboard expressions without data:\n" + "\n".join(empty)
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
