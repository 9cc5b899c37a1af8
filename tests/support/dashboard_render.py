"""A preview of our Grafana dashboard as one self-contained HTML page, drawn from the dashboard
JSON and the `query_range` results Prometheus gave for each panel target.

Grafana cannot run here, so the test suite draws the panels itself: the same panels, titles,
layout (`gridPos` on Grafana's 24-column grid), legends (`legendFormat`), units and data. It is
honest about it in the page header. Inline SVG, no JavaScript, no external assets; pure (no I/O).
Only top-level panels are drawn: a collapsed row's panels stay hidden, as in Grafana.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from tests.support.dashboard_svg import (
    PALETTE,
    Frame,
    Point,
    area_path,
    axes,
    clock,
    format_value,
    line_path,
    orange,
    value_ticks,
)

HEADER = (
    "scenestream dashboard — rendered from deploy/grafana/dashboards/scenestream.json "
    "against a live Prometheus by the test suite (not Grafana)"
)
Matrix = Sequence[Mapping[str, Any]]  # a query_range `result`: [{"metric": {}, "values": [...]}]
Results = Mapping[tuple[int, str], Matrix]  # by (panel id, target refId)

# Grafana's grid: 24 columns, rows of 30 px, 8 px between panels.
CELL_H, GAP, MARGIN, TOP = 30, 8, 16, 76
TITLE_H, PAD, LEGEND_ROW = 28, 8, 19
_LEGEND_NAME = re.compile(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}")
_CALCS = {"lastNotNull": "Last *", "last": "Last", "max": "Max", "min": "Min", "mean": "Mean"}


@dataclass(frozen=True)
class TimeSpan:
    """The time range every panel shows (Unix seconds) and the query step."""

    start: float
    end: float
    step: float


@dataclass(frozen=True)
class Series:
    """One result of one target: its legend name, labels and points."""

    name: str
    labels: Mapping[str, str]
    points: tuple[Point, ...]

    def finite(self) -> list[Point]:
        """The points with a finite value."""
        return [(t, v) for t, v in self.points if math.isfinite(v)]


def legend_name(legend_format: str, labels: Mapping[str, str]) -> str:
    """`legendFormat` with each `{{label}}` replaced (an absent label reads as empty, as in
    Grafana); without a format, the series' labels in PromQL selector form."""
    if legend_format and legend_format != "__auto":
        return _LEGEND_NAME.sub(lambda m: labels.get(m[1], ""), legend_format).strip()
    name = labels.get("__name__", "")
    pairs = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{pairs}}}" if pairs or not name else name


def panel_targets(
    dashboard: Mapping[str, Any],
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """`(panel, target)` of every target of every top-level panel the page draws."""
    return [(p, t) for p in dashboard["panels"] if p["type"] != "row" for t in p.get("targets", [])]


def panel_series(panel: Mapping[str, Any], results: Results) -> list[Series]:
    """Every result of every target of `panel`, in target order."""
    found = []
    for target in panel.get("targets", []):
        for item in results.get((panel["id"], target["refId"]), []):
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            points = tuple((float(t), float(v)) for t, v in item["values"])
            found.append(
                Series(legend_name(target.get("legendFormat", ""), labels), labels, points)
            )
    return found


def _reduce(series: Series, calc: str) -> float | None:
    values = [v for _, v in series.finite()]
    if not values:
        return None
    if calc == "max":
        return max(values)
    if calc == "min":
        return min(values)
    if calc == "mean":
        return sum(values) / len(values)
    return values[-1]  # last, lastNotNull


def _unit(panel: Mapping[str, Any]) -> str:
    return str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"))


def _series_attrs(series: Series, colour: str, points: int | None = None) -> str:
    """What the test reads back from the page: each drawn series and its drawn points."""
    drawn = len(series.finite()) if points is None else points
    return (
        f'class="series" data-name="{escape(series.name)}" '
        f'data-points="{drawn}" data-colour="{colour}"'
    )


def _legend(series: Sequence[Series], calcs: Sequence[str], unit: str, height: float) -> str:
    """Grafana's table legend: a colour, the name, then one column per calculation."""
    head = "".join(f"<th>{escape(_CALCS.get(c, c))}</th>" for c in calcs)
    rows = []
    for i, s in enumerate(series):
        cells = []
        for calc in calcs:
            value = _reduce(s, calc)
            cells.append(f"<td>{'' if value is None else escape(format_value(value, unit))}</td>")
        swatch = f'<i style="background:{PALETTE[i % len(PALETTE)]}"></i>'
        rows.append(f"<tr><td>{swatch}{escape(s.name)}</td>{''.join(cells)}</tr>")
    table = f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    return f'<div class="legend" style="height:{height:.0f}px">{table}</div>'


def _stacked(series: Sequence[Series]) -> list[tuple[list[Point], list[Point]]]:
    """(upper, lower) lines of each series stacked on the ones before it; a missing or
    non-finite value adds nothing."""
    instants = sorted({t for s in series for t, _ in s.points})
    base = dict.fromkeys(instants, 0.0)
    bands = []
    for s in series:
        values = dict(s.finite())
        lower = [(t, base[t]) for t in instants]
        upper = [(t, base[t] + values.get(t, 0.0)) for t in instants]
        base = dict(upper)
        bands.append((upper, lower))
    return bands


def _timeseries(
    panel: Mapping[str, Any], series: Sequence[Series], size: Point, span: TimeSpan
) -> str:
    width, height = size
    unit = _unit(panel)
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    fill = float(custom.get("fillOpacity", 0)) / 100
    if custom.get("stacking", {}).get("mode") == "normal":
        bands = _stacked(series)
    else:
        bands = [(s.finite(), [(t, 0.0) for t, _ in s.finite()]) for s in series]
    # Grafana scrolls a long legend; the preview shows the rows that fit in about half the panel.
    visible_rows = min(len(series), max(1, int(height * 0.55 // LEGEND_ROW) - 1))
    legend_h = (visible_rows + 1) * LEGEND_ROW
    chart_h = height - legend_h - 4
    values = [v for upper, _ in bands for _, v in upper]
    ticks = value_ticks(min([0.0, *values]), max([0.0, *values]), int(max(2, chart_h // 45)), unit)
    labels = [format_value(t, unit) for t in ticks]
    left = max(len(label) for label in labels) * 6.5 + 10
    frame = Frame(
        left, 6, width - left - 10, chart_h - 28, span.start, span.end, ticks[0], ticks[-1]
    )
    paths = []
    for i, (s, (upper, lower)) in enumerate(zip(series, bands, strict=True)):
        colour = PALETTE[i % len(PALETTE)]
        if fill > 0:
            paths.append(
                f'<path d="{area_path(frame, upper, lower)}" fill="{colour}" '
                f'fill-opacity="{fill:.2f}" stroke="none"/>'
            )
        line = line_path(frame, upper if fill > 0 else s.points)
        paths.append(
            f'<path {_series_attrs(s, colour)} d="{line}" fill="none" stroke="{colour}" '
            'stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    svg = (
        f'<svg width="{width:.0f}" height="{chart_h:.0f}">'
        f"{axes(frame, ticks, labels)}{''.join(paths)}</svg>"
    )
    calcs = panel.get("options", {}).get("legend", {}).get("calcs", [])
    return svg + _legend(series, calcs, unit, legend_h)


def _sparkline(series: Series, width: float, height: float, span: TimeSpan, colour: str) -> str:
    points = series.finite()
    if not points:
        return ""
    values = [v for _, v in points]
    low, high = min(0.0, *values), max(values)
    frame = Frame(0, 0, width, height, span.start, span.end, low, high if high > low else low + 1)
    band = area_path(frame, points, [(t, low) for t, _ in points])
    return (
        f'<svg class="spark" width="{width:.0f}" height="{height:.0f}"><path d="{band}" '
        f'fill="{colour}" fill-opacity="0.18" stroke="{colour}" stroke-width="1.2"/></svg>'
    )


def _stat(panel: Mapping[str, Any], series: Sequence[Series], size: Point, span: TimeSpan) -> str:
    """Each series' reduced value (lastNotNull by default), big, over an area sparkline."""
    width, height = size
    unit = _unit(panel)
    calc = (panel.get("options", {}).get("reduceOptions", {}).get("calcs") or ["lastNotNull"])[0]
    cell_w = width / len(series)
    cells = []
    for s in series:
        colour = PALETTE[0]  # Grafana's default threshold: green
        value = _reduce(s, calc)
        text = "–" if value is None else format_value(value, unit)
        font = min(height * 0.5, cell_w / (0.62 * max(3, len(text))))
        name = f'<div class="name">{escape(s.name)}</div>' if len(series) > 1 else ""
        cells.append(
            f'<div {_series_attrs(s, colour)} style="width:{cell_w:.0f}px">'
            f"{_sparkline(s, cell_w, height * 0.45, span, colour)}{name}"
            f'<div class="value" style="font-size:{font:.0f}px;color:{colour}">'
            f"{escape(text)}</div></div>"
        )
    return f'<div class="stat">{"".join(cells)}</div>'


def _le(series: Series) -> float:
    return float(series.labels.get("le", series.name))


def _bucket_counts(buckets: Sequence[Series]) -> tuple[list[float], list[list[float]]]:
    """Cumulative `le` series to counts per bucket and instant (Grafana's heatmap format)."""
    instants = sorted({t for s in buckets for t, _ in s.points})
    cumulative = [dict(s.finite()) for s in buckets]
    counts = []
    for i, values in enumerate(cumulative):
        below = cumulative[i - 1] if i else {}
        counts.append([max(0.0, values.get(t, 0.0) - below.get(t, 0.0)) for t in instants])
    return instants, counts


def _cell(frame: Frame, when: Point, row: int, colour: str) -> str:
    """One heatmap cell: bucket `row` over the step `when` = (from, to)."""
    x0, x1 = frame.x(when[0]), frame.x(when[1])
    y0, y1 = frame.y(row + 1), frame.y(row)
    return (
        f'<rect x="{x0:.1f}" y="{y0 + 0.5:.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
        f'height="{max(1.0, y1 - y0 - 1):.1f}" fill="{colour}"/>'
    )


def _heatmap(
    panel: Mapping[str, Any], series: Sequence[Series], size: Point, span: TimeSpan
) -> str:
    """Rows are `le` buckets (smallest at the bottom), columns query steps, colour the count."""
    width, height = size
    unit = str(panel.get("options", {}).get("yAxis", {}).get("unit") or _unit(panel))
    buckets = sorted(series, key=_le)
    instants, counts = _bucket_counts(buckets)
    top = max((c for row in counts for c in row), default=0.0) or 1.0
    chart_h = height - LEGEND_ROW - 6
    labels = [format_value(_le(b), unit) for b in buckets]
    left = max(len(label) for label in labels) * 6.5 + 10
    rows = len(buckets)
    frame = Frame(left, 6, width - left - 10, chart_h - 28, span.start, span.end, 0, rows)
    every = max(1, math.ceil(14 / (frame.height / rows)))  # a label at least every 14 px
    ticks = [float(i + 1) for i in range(rows) if (rows - 1 - i) % every == 0]
    shown = [labels[int(t) - 1] for t in ticks]
    groups = []
    for i, (bucket, row) in enumerate(zip(buckets, counts, strict=True)):
        cells = [
            _cell(frame, (max(span.start, t - span.step), t), i, orange(count / top))
            for t, count in zip(instants, row, strict=True)
            if count > 0
        ]
        groups.append(f"<g {_series_attrs(bucket, 'heatmap', len(cells))}>{''.join(cells)}</g>")
    scale = f"0 <b></b> {format_value(top, 'short')} per step"
    return (
        f'<svg width="{width:.0f}" height="{chart_h:.0f}">{axes(frame, ticks, shown)}'
        f'{"".join(groups)}</svg><div class="scale">{scale}</div>'
    )


_DRAW = {"timeseries": _timeseries, "stat": _stat, "gauge": _stat, "heatmap": _heatmap}


def _panel(
    panel: Mapping[str, Any], results: Results, box: tuple[float, ...], span: TimeSpan
) -> str:
    left, top, width, height = box
    kind = str(panel["type"])
    title = escape(str(panel.get("title", "")))
    place = f"left:{left:.0f}px;top:{top:.0f}px;width:{width:.0f}px;height:{height:.0f}px"
    if kind == "row":
        return f'<div class="row" style="{place}">{title}</div>'
    series = panel_series(panel, results)
    body = (width - 2 * PAD, height - TITLE_H - PAD)
    if not series:
        content = '<div class="nodata">No data</div>'
    elif kind in _DRAW:
        content = _DRAW[kind](panel, series, body, span)
    else:
        content = f'<div class="nodata">panel type {escape(kind)} not previewed</div>'
    return (
        f'<section class="panel" data-id="{panel["id"]}" data-type="{escape(kind)}" '
        f'data-title="{title}" style="{place}"><h2>{title}</h2>'
        f'<div class="body" style="height:{body[1]:.0f}px">{content}</div></section>'
    )


def render_dashboard(
    dashboard: Mapping[str, Any],
    results: Results,
    span: TimeSpan,
    note: str = "",
    width: int = 1600,
) -> str:
    """The whole dashboard as one HTML page `width` px wide. `results` holds the query_range
    result of each `(panel id, refId)`; a panel without any shows "No data". `note` (escaped)
    goes under the header: what was queried, and how."""
    column = (width - 2 * MARGIN + GAP) / 24
    panels, bottom = [], 0.0
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        box = (
            MARGIN + grid["x"] * column,
            TOP + grid["y"] * (CELL_H + GAP),
            grid["w"] * column - GAP,
            grid["h"] * (CELL_H + GAP) - GAP,
        )
        bottom = max(bottom, box[1] + box[3])
        panels.append(_panel(panel, results, box, span))
    when = f"{clock(span.start)}–{clock(span.end)} UTC, step {span.step:g} s"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(str(dashboard.get('title', 'dashboard')))}</title>"
        f"<style>{_CSS}</style></head>"
        f'<body style="width:{width}px;height:{bottom + MARGIN:.0f}px">'
        f"<header><h1>{escape(HEADER)}</h1><p>{escape(note)} · {when}</p></header>"
        f"{''.join(panels)}</body></html>"
    )


_CSS = """
* { box-sizing: border-box; }
body { margin: 0; position: relative; background: #111217; color: #ccccdc;
  font: 12px "Inter", "Helvetica Neue", "Liberation Sans", Arial, sans-serif; }
header { position: absolute; left: 16px; top: 10px; right: 16px; }
h1 { font-size: 17px; font-weight: 500; margin: 0 0 6px; color: #d8d9da; }
header p { margin: 0; color: rgba(204,204,220,0.65); }
.row { position: absolute; font-size: 15px; font-weight: 500; padding-top: 8px; color: #d8d9da; }
.panel { position: absolute; background: #181b1f; border: 1px solid rgba(204,204,220,0.12);
  border-radius: 2px; padding: 0 8px 8px; overflow: hidden; }
.panel h2 { font-size: 13px; font-weight: 500; margin: 0; height: 28px; line-height: 28px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.body { position: relative; }
.nodata { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; color: rgba(204,204,220,0.65); font-size: 14px; }
.legend { overflow: hidden; }
.legend table { width: 100%; border-collapse: collapse; }
.legend th { text-align: right; font-weight: 500; color: #6e9fff; padding: 0 8px; height: 19px;
  white-space: nowrap; }
.legend td { text-align: right; padding: 0 8px; height: 19px; white-space: nowrap; }
.legend td:first-child { text-align: left; width: 99%; }
.legend i { display: inline-block; width: 14px; height: 4px; margin: 0 8px 3px 0;
  border-radius: 2px; }
.stat { display: flex; height: 100%; }
.stat .series { position: relative; display: flex; flex-direction: column;
  justify-content: center; align-items: center; height: 100%; }
.stat .spark { position: absolute; left: 0; bottom: 0; }
.stat .value { position: relative; font-weight: 500; line-height: 1; }
.stat .name { position: relative; font-size: 12px; margin-bottom: 4px; }
.scale { height: 19px; text-align: right; color: rgba(204,204,220,0.65); }
.scale b { display: inline-block; width: 120px; height: 8px; margin: 0 6px;
  background: linear-gradient(90deg, rgb(90,36,8), rgb(253,141,60), rgb(254,230,206)); }
"""
