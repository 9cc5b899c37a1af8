"""The dashboard preview renderer (`tests/support/dashboard_render.py`) on hand-made query_range
results for our real dashboard JSON: titles, one drawn series per result, legends, units, "No
data", heatmap buckets, gaps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import unescape
from typing import Any

import pytest

from tests.support.dashboard_render import (
    HEADER,
    Results,
    TimeSpan,
    legend_name,
    panel_targets,
    render_dashboard,
)
from tests.support.dashboard_svg import Frame, format_value, line_path, value_ticks
from tests.support.deploy_exprs import load_dashboard

pytestmark = pytest.mark.unit

START = 1_780_000_000.0
SPAN = TimeSpan(START, START + 10, 1.0)
ENGINES = ("avfusion", "silero-vad")
_SECTION = re.compile(r'<section class="panel" data-id="(\d+)"')
_SERIES = re.compile(r'class="series" data-name="([^"]*)" data-points="(\d+)"')


def _values(fn: Any) -> list[list[Any]]:
    return [[START + i, str(fn(i))] for i in range(11)]


def _result(labels: dict[str, str], fn: Any = lambda i: 0.01 * (i + 1)) -> dict[str, Any]:
    return {"metric": labels, "values": _values(fn)}


def _matrix(panel: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Two results per target (one per engine), or cumulative buckets for the heatmap."""
    if panel["type"] == "heatmap":
        les = {"0.005": 1, "0.05": 4, "0.5": 6, "+Inf": 6}
        return [_result({"le": le}, lambda i, n=n: n * (i + 1)) for le, n in les.items()]
    common = {"instance": "service", "stage": "infer", "kind": "video", "reason": "sampled"}
    common |= {"outcome": "published", "type": "scene", "gpu": "0"}
    return [_result({**common, "engine": engine}) for engine in ENGINES]


def _results(skip: frozenset[int] = frozenset()) -> tuple[dict[str, Any], Results]:
    dashboard = load_dashboard()
    results = {
        (p["id"], t["refId"]): _matrix(p)
        for p, t in panel_targets(dashboard)
        if p["id"] not in skip
    }
    return dashboard, results


def _id(dashboard: dict[str, Any], title: str) -> int:
    [panel] = [p for p in dashboard["panels"] if p["title"] == title]
    return int(panel["id"])


def _panels(html: str) -> dict[int, str]:
    """Each panel's HTML by panel id."""
    parts = _SECTION.split(html)
    return {int(pid): body for pid, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_panel_title_and_the_honest_header_are_on_the_page() -> None:
    dashboard, results = _results()
    html = render_dashboard(dashboard, results, SPAN, note="worker service")
    assert HEADER in unescape(html)
    assert "(not Grafana)" in HEADER
    for panel in dashboard["panels"]:
        assert f">{panel['title']}<" in unescape(html), panel["title"]
    assert "<script" not in html
    assert "http" not in html


def test_one_drawn_series_per_result_with_its_legend_substituted() -> None:
    dashboard, results = _results()
    panels = _panels(render_dashboard(dashboard, results, SPAN))
    drawn_panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert set(panels) == {p["id"] for p in drawn_panels}
    for panel in drawn_panels:
        series = _SERIES.findall(panels[panel["id"]])
        expected = sum(len(results[(panel["id"], t["refId"])]) for t in panel["targets"])
        assert len(series) == expected, panel["title"]
        assert "{{" not in panels[panel["id"]], panel["title"]
        assert "No data" not in panels[panel["id"]], panel["title"]
    latency = panels[_id(dashboard, "Capture to publish p50 / p95 / p99 per engine")]
    drawn = dict(_SERIES.findall(latency))
    assert set(drawn) == {f"{e} p{q}" for e in ENGINES for q in (50, 95, 99)}
    assert all(int(points) == 11 for points in drawn.values())
    assert ">avfusion p95<" in latency  # in the legend table too


def test_a_panel_without_data_says_so_and_draws_nothing() -> None:
    gpu_memory = _id(load_dashboard(), "GPU memory")
    dashboard, results = _results(skip=frozenset({gpu_memory}))  # no result for its target
    panels = _panels(render_dashboard(dashboard, results, SPAN))
    assert "No data" in panels[gpu_memory]
    assert not _SERIES.findall(panels[gpu_memory])
    assert sum("No data" in body for body in panels.values()) == 1


def test_stat_shows_the_last_finite_value_in_the_panel_unit() -> None:
    dashboard = load_dashboard()
    [stat] = [p for p in dashboard["panels"] if p["title"] == "Capture to publish p95"]
    values = {"metric": {}, "values": [[START, "0.05"], [START + 1, "0.0712"], [START + 2, "NaN"]]}
    panels = _panels(render_dashboard(dashboard, {(stat["id"], "A"): [values]}, SPAN))
    assert ">71.2 ms<" in panels[stat["id"]]


def test_heatmap_draws_counts_per_bucket_from_cumulative_buckets() -> None:
    dashboard = load_dashboard()
    [heatmap] = [p for p in dashboard["panels"] if p["type"] == "heatmap"]
    buckets = {"0.01": "2", "0.1": "5", "+Inf": "5"}  # counts 2, 3 and 0 at one instant
    matrix = [{"metric": {"le": le}, "values": [[START + 5, n]]} for le, n in buckets.items()]
    body = _panels(render_dashboard(dashboard, {(heatmap["id"], "A"): matrix}, SPAN))[heatmap["id"]]
    cells = {name: int(n) for name, n in _SERIES.findall(body)}
    assert cells == {"0.01": 1, "0.1": 1, "+Inf": 0}
    assert ">10 ms<" in body
    assert ">100 ms<" in body


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0712, "s", "71.2 ms"),
        (2.5, "s", "2.5 s"),
        (0.00042, "s", "420 µs"),
        (1500, "ms", "1.5 s"),
        (2.0e9, "bytes", "1.86 GiB"),
        (512, "bytes", "512 B"),
        (0.0539, "percentunit", "5.39%"),
        (12.34, "ops", "12.3 ops/s"),
        (1500, "short", "1.5 K"),
        (3, "short", "3"),
        (float("nan"), "s", "NaN"),
    ],
)
def test_units_read_as_grafana_shows_them(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_legend_names() -> None:
    labels = {"engine": "avfusion", "le": "0.1"}
    assert legend_name("{{engine}} p95", labels) == "avfusion p95"
    assert legend_name("{{ engine }} {{missing}}", labels) == "avfusion"
    assert legend_name("", {"__name__": "up", "instance": "a"}) == 'up{instance="a"}'


def test_a_nan_breaks_the_line_and_ticks_cover_the_values() -> None:
    frame = Frame(0, 0, 100, 100, START, START + 4, 0, 1)
    path = line_path(
        frame, [(START, 0.1), (START + 1, 0.2), (START + 2, float("nan")), (START + 3, 0.3)]
    )
    assert path.count("M") == 2
    ticks = value_ticks(0, 0.37, 4)
    assert ticks[0] == 0
    assert ticks[-1] >= 0.37
    assert len(ticks) <= 6
    gib = value_ticks(0, 2.0e9, 4, "bytes")
    assert all(t % 1024**2 == 0 for t in gib)  # round in MiB, not in decimal
