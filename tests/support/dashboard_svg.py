"""Units, axis ticks and inline SVG for the dashboard preview (`tests/support/dashboard_render.py`).

Pure functions over numbers: no I/O, no JavaScript, no external assets. Units follow Grafana's
display of the ones our dashboard uses (`s`, `ms`, `bytes`, `percentunit`, `ops`, `short`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

Point = tuple[float, float]  # (Unix seconds, value); NaN and ±Inf are gaps

# Grafana's classic palette, in the order it gives series their colours.
PALETTE = (
    "#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2",
    "#B877D9", "#705DA0", "#37872D", "#FADE2A", "#447EBC", "#C15C17",
)  # fmt: skip
GRID = "rgba(204,204,220,0.10)"
AXIS_TEXT = "rgba(204,204,220,0.65)"

_TIME = ((1.0, " s"), (1e-3, " ms"), (1e-6, " µs"), (1e-9, " ns"))
_BYTES = tuple((1024.0**k, f" {name}") for k, name in ((4, "TiB"), (3, "GiB"), (2, "MiB")))
_BYTES += ((1024.0, " KiB"), (1.0, " B"))
_SHORT = ((1e12, " Tri"), (1e9, " Bil"), (1e6, " Mil"), (1e3, " K"), (1.0, ""))
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def _digits(value: float) -> str:
    """About three significant digits, no exponent, no trailing zeros."""
    size = abs(value)
    if size == 0:
        return "0"
    decimals = min(6, max(0, 2 - math.floor(math.log10(size))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(value: float, scales: Sequence[tuple[float, str]]) -> str:
    size = abs(value)
    for factor, suffix in scales:
        if size >= factor:
            return _digits(value / factor) + suffix
    factor, suffix = scales[-1]
    return _digits(value / factor) + suffix


def format_value(value: float, unit: str) -> str:
    """`value` as Grafana shows it in `unit` (unknown units as `short`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == "s":
        return "0 s" if value == 0 else _scaled(value, _TIME)
    if unit == "ms":
        return "0 ms" if value == 0 else _scaled(value / 1000, _TIME)
    if unit == "bytes":
        return _scaled(value, _BYTES)
    if unit == "percentunit":
        return _digits(value * 100) + "%"
    if unit == "percent":
        return _digits(value) + "%"
    if unit == "ops":
        return _scaled(value, _SHORT) + " ops/s"
    return _scaled(value, _SHORT)


def value_ticks(low: float, high: float, count: int, unit: str = "") -> list[float]:
    """About `count` evenly spaced round values covering [low, high] (powers of 1024 for
    bytes, so that the labels read 200 MiB rather than 190.7 MiB)."""
    if not high > low:
        low, high = (low - 1, high + 1) if low != 0 else (0.0, 1.0)
    base = 1.0
    if unit == "bytes" and high >= 1024:
        base = 1024.0 ** math.floor(math.log(high, 1024))
    raw = (high - low) / max(1, count) / base
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw) * base
    first, last = math.floor(low / step), math.ceil(high / step)
    return [i * step for i in range(first, last + 1)]


def time_ticks(start: float, end: float, width_px: float) -> list[float]:
    """Round instants between `start` and `end`, at most one per ~90 px."""
    most = max(1, int(width_px // 90))
    step = next((s for s in _TIME_STEPS if (end - start) / s <= most), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return [float(t) for t in range(first, int(end) + 1, step) if t <= end]


def clock(t: float) -> str:
    """HH:MM:SS in UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


@dataclass(frozen=True)
class Frame:
    """The plot area of one chart: pixels on the page, time and value ranges it shows."""

    left: float
    top: float
    width: float
    height: float
    start: float
    end: float
    low: float
    high: float

    def x(self, t: float) -> float:
        """Pixel column of instant `t`."""
        return self.left + (t - self.start) / max(1e-9, self.end - self.start) * self.width

    def y(self, v: float) -> float:
        """Pixel row of value `v`."""
        return self.top + (self.high - v) / max(1e-12, self.high - self.low) * self.height


def axes(frame: Frame, ticks: Sequence[float], labels: Sequence[str]) -> str:
    """Horizontal grid lines with value labels at `ticks`, time labels under the plot."""
    parts = []
    for value, label in zip(ticks, labels, strict=True):
        y = frame.y(value)
        parts.append(
            f'<line x1="{frame.left:.1f}" x2="{frame.left + frame.width:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{GRID}"/><text x="{frame.left - 6:.1f}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    bottom = frame.top + frame.height
    for t in time_ticks(frame.start, frame.end, frame.width):
        x = frame.x(t)
        if x + 26 > frame.left + frame.width + 8:
            continue  # its label would be cut at the panel's edge
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top:.1f}" y2="{bottom:.1f}" '
            f'stroke="{GRID}"/><text x="{x:.1f}" y="{bottom + 15:.1f}" '
            f'text-anchor="middle">{clock(t)}</text>'
        )
    return f'<g fill="{AXIS_TEXT}" font-size="11">{"".join(parts)}</g>'


def line_path(frame: Frame, points: Sequence[Point]) -> str:
    """SVG path data through the finite points; a gap wherever a value is NaN or infinite.
    A lone point is a zero-length segment, which a round line cap draws as a dot."""
    commands: list[str] = []
    pen_down = False
    for t, v in points:
        if not math.isfinite(v):
            pen_down = False
            continue
        x, y = frame.x(t), frame.y(v)
        commands.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
        if not pen_down:
            commands.append("h0")
        pen_down = True
    return " ".join(commands)


def area_path(frame: Frame, upper: Sequence[Point], lower: Sequence[Point]) -> str:
    """A closed band between two lines over the same instants (all values finite)."""
    if not upper:
        return ""
    top = " L".join(f"{frame.x(t):.1f} {frame.y(v):.1f}" for t, v in upper)
    bottom = " L".join(f"{frame.x(t):.1f} {frame.y(v):.1f}" for t, v in reversed(lower))
    return f"M{top} L{bottom} Z"


def orange(level: float) -> str:
    """A colour of Grafana's "Oranges" scheme as it reads on a dark background: dim brown
    for the smallest non-zero count, bright orange to pale for the largest (`level` 0..1)."""
    stops = ((0.0, (90, 36, 8)), (0.5, (253, 141, 60)), (1.0, (254, 230, 206)))
    level = min(1.0, max(0.0, level))
    for (a, ca), (b, cb) in itertools.pairwise(stops):
        if level <= b:
            f = (level - a) / (b - a)
            r, g, bl = (round(x + (y - x) * f) for x, y in zip(ca, cb, strict=True))
            return f"rgb({r},{g},{bl})"
    return "rgb(254,230,206)"
