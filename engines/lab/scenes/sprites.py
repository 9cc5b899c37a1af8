"""Moving objects and their lamps: motion over time, drawing for a batch of frames, labels.

Sizes are fractions of the frame height; an object stands on the ground at `cy` and is `s`
tall. Approaching objects grow exponentially (a steady closing rate reads the same at 64x64 and
at 640x480) and slide down towards the camera; after their approach they rest where they
stopped, which is what `collision` ties to the impact sound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.lab.scenes.base import LabelInterval
from engines.lab.scenes.truth import Stop
from engines.lab.scenes.video import AMBER, BLUE, F32, F64, RED, WHITE

MIN_APPROACH_GROWTH = 1.25  # per second: slower closing is not labelled approaching
IN_VIEW = (0.03, 0.97)
FREE_STANDING = ("none", "pole")  # shapes without a body: lamps on their own
LAMP_PATTERNS = ("alternate", "together", "quad", "strobe", "rotating")
LAMP_COLOURS = {
    "redblue": (RED, BLUE),
    "red": (RED, RED),
    "blue": (BLUE, BLUE),
    "amber": (AMBER, AMBER),
    "white": (WHITE, WHITE),
    "amberwhite": (AMBER, WHITE),
}
EMERGENCY_COLOURS = ("redblue", "red", "blue")  # `flashing_lights`; amber and white are not
LAMP_MOUNTS = ("roof", "bar", "beacon", "grille")


@dataclass(frozen=True, slots=True)
class Motion:
    """Pose over time: `approach`/`recede`/`creep` (scale s0→s1), `pass` (x0→x1) or `static`.

    `creep` closes in slower than `MIN_APPROACH_GROWTH` (traffic rolling forward): it grows, and
    is not `approaching_object`."""

    kind: str
    t0: float
    t1: float
    x0: float
    x1: float
    s0: float
    s1: float
    ground: float
    depth: float

    def at(self, t: F64) -> tuple[F64, F64, F64]:
        """Centre x, ground-contact y and height at times `t`."""
        p = np.clip((t - self.t0) / max(1e-6, self.t1 - self.t0), 0.0, 1.0)
        if self.kind in ("approach", "recede", "creep"):
            s = self.s0 * (self.s1 / self.s0) ** p
            q = (s - self.s0) / (self.s1 - self.s0)
        elif self.kind == "pass":
            s, q = np.full_like(p, self.s0), p
        else:
            s, q = np.full_like(p, self.s0), np.zeros_like(p)
        cx = self.x0 + (self.x1 - self.x0) * q
        return cx, self.ground + self.depth * s, s

    @property
    def growth_per_s(self) -> float:
        """How much the object's size multiplies per second of its motion."""
        return float((self.s1 / self.s0) ** (1.0 / max(1e-6, self.t1 - self.t0)))


@dataclass(frozen=True, slots=True)
class Vehicle:
    """An object in view during `visible`, with optional lamps lit during `lamps_on`.

    `lamps`: `none`; `emergency` (red and/or blue lamps flashing: `flashing_lights`);
    `warning` (amber or white lamps flashing in the same patterns: a distractor); `hazard`
    (amber side lamps, both together: a distractor, not `flashing_lights`); `tail` (steady
    red); `steady` (red and blue roof lamps lit without flashing: colour alone is not the label).

    How flashing lamps look (`LAMP_PATTERNS`, `LAMP_COLOURS`, `LAMP_MOUNTS`): `pattern` is the
    rhythm (two sides alternating, together, quad bursts, short strobes, a rotating beacon's
    sweep), `colours` the lamp colours, `mount` where they sit (roof pair, a four-lamp bar, one
    beacon, low in the grille), `lamp_scale` their size. `shape` `none` or `pole` is a
    free-standing light (no vehicle body: a roadside beacon, a bar on a barrier). `bloom` (0..1)
    is how much the camera blooms around a lit lamp: a wide glow over the body and a core
    clipped to white, as bright lamps look at night or to a small sensor.
    """

    motion: Motion
    visible: tuple[float, float]
    shape: str
    ratio: float
    colour: tuple[float, float, float]
    lamps: str = "none"
    lamps_on: tuple[float, float] = (0.0, 0.0)
    flash_hz: float = 2.0
    flash_phase: float = 0.0
    pattern: str = "alternate"
    colours: str = "redblue"
    mount: str = "roof"
    lamp_scale: float = 1.0
    bloom: float = 0.0

    def primitives(self) -> tuple[list[LabelInterval], list[Stop]]:
        """What this object contributes to the ground truth."""
        out: list[LabelInterval] = []
        stops: list[Stop] = []
        m, (v0, v1) = self.motion, self.visible
        body = self.shape not in FREE_STANDING
        if body and m.kind == "approach" and m.growth_per_s >= MIN_APPROACH_GROWTH:
            a, b = max(m.t0, v0), min(m.t1, v1)
            if b > a:
                out.append(LabelInterval("approaching_object", a, b))
            if v1 >= m.t1 + 0.25 and v0 < m.t1:
                stops.append(Stop(m.t1))
        if self.lamps == "emergency":
            a, b = max(self.lamps_on[0], v0), min(self.lamps_on[1], v1)
            out += [LabelInterval("flashing_lights", s, e) for s, e in self._in_view(a, b)]
        return out, stops

    def _in_view(self, a: float, b: float) -> list[tuple[float, float]]:
        """Sub-intervals of [a, b) where the lamps' centre is inside the frame."""
        if b <= a:
            return []
        ts = np.arange(a, b, 0.02)
        cx, _, _ = self.motion.at(ts)
        inside = (cx > IN_VIEW[0]) & (cx < IN_VIEW[1])
        spans: list[tuple[float, float]] = []
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(int), [0]])))
        for s, e in zip(edges[::2], edges[1::2], strict=True):
            spans.append((float(ts[s]), float(ts[e]) if e < len(ts) else b))
        return spans


def _soft_box(y: F32, x: F32, cx: F64, top: F64, bot: F64, half: F64, h: int, w: int) -> F64:
    """Antialiased rectangle mask `[T, H, W]` (separable: two 1-D ramps multiplied)."""
    mx = np.clip((half[:, None, None] - np.abs(x - cx[:, None, None])) * w + 0.5, 0, 1)
    my = np.clip(np.minimum(y - top[:, None, None], bot[:, None, None] - y) * h + 0.5, 0, 1)
    out: F64 = mx * my
    return out


def _ellipse(y: F32, x: F32, cx: F64, cy: F64, rx: F64, ry: F64, h: int) -> F64:
    d = ((x - cx[:, None, None]) / rx[:, None, None]) ** 2
    d = d + ((y - cy[:, None, None]) / ry[:, None, None]) ** 2
    out: F64 = np.clip((1.0 - np.sqrt(d)) * ry[:, None, None] * h + 0.5, 0, 1)
    return out


def _paint(frames: F32, mask: F64, colour: F64 | tuple[float, ...]) -> None:
    """Alpha-blend `colour` into `frames` where `mask` (in place)."""
    m = mask[..., None].astype(np.float32)
    frames += m * (np.asarray(colour, dtype=np.float32) - frames)


def _crop(
    frames: F32, grid: tuple[F32, F32], box: tuple[float, float, float, float]
) -> tuple[F32, tuple[F32, F32]] | None:
    """Views of `frames` and the grid over the normalised box (x0, x1, y0, y1), or None.

    Drawing only where an object can be keeps a 640x480 frame as cheap as a 64x64 one.
    """
    _, h, w, _ = frames.shape
    x0, x1, y0, y1 = box
    c0, c1 = max(0, math.floor(x0 * w) - 1), min(w, math.ceil(x1 * w) + 1)
    r0, r1 = max(0, math.floor(y0 * h) - 1), min(h, math.ceil(y1 * h) + 1)
    if c1 <= c0 or r1 <= r0:
        return None
    y, x = grid
    return frames[:, r0:r1, c0:c1], (y[:, r0:r1], x[..., c0:c1])


def draw_body(
    frames: F32, v: Vehicle, t: F64, shake: tuple[F64, F64], grid: tuple[F32, F32]
) -> None:
    """Draw `v` into `frames` `[T, H, W, 3]` at times `t` (hidden frames untouched)."""
    _, h, w, _ = frames.shape
    cx, cy, s = v.motion.at(t)
    cx, cy = cx + shake[0], cy + shake[1]
    vis = (t >= v.visible[0]) & (t < v.visible[1])
    if not vis.any():
        return
    half = 0.5 * s * v.ratio * h / w
    box = (float(np.min(cx - half)), float(np.max(cx + half)),
           float(np.min(cy - s)), float(np.max(cy)))  # fmt: skip
    region = _crop(frames, grid, box)
    if region is None:
        return
    frames, (y, x) = region
    shown = vis.astype(np.float64)[:, None, None]
    col = np.asarray(v.colour)
    if v.shape == "ball":
        _paint(frames, shown * _ellipse(y, x, cx, cy - 0.5 * s, half, 0.5 * s, h), col)
        return
    if v.shape == "plain":  # a crate, a sign, a barrier: one block, no wheels or windows
        _paint(frames, shown * _soft_box(y, x, cx, cy - s, cy, half, h, w), col)
        return
    if v.shape in FREE_STANDING:
        if v.shape == "pole":  # a thin post under the lamp
            pole = _soft_box(y, x, cx, cy - s, cy, np.maximum(0.04 * half, 0.6 / w), h, w)
            _paint(frames, shown * pole, col * 0.5)
        return
    body_top = cy - (0.9 if v.shape in ("van", "box") else 0.55) * s
    _paint(frames, shown * _soft_box(y, x, cx, body_top, cy - 0.12 * s, half, h, w), col)
    if v.shape in ("car", "van"):
        cabin = _soft_box(y, x, cx, cy - s, body_top + 0.02 * s, half * 0.62, h, w)
        _paint(frames, shown * cabin, col * 0.45 + 0.25)
    for side in (-0.62, 0.62):
        wheel = _ellipse(y, x, cx + side * half, cy - 0.12 * s, half * 0.22, 0.12 * s, h)
        _paint(frames, shown * wheel, (0.05, 0.05, 0.05))


def _intensity(pattern: str, phase: F64, side: int) -> F64:
    """Lamp intensity 0..1 over the flash cycle `phase` (cycles, any real) of side 0 or 1."""
    f = np.mod(phase + (0.5 if side and pattern != "together" else 0.0), 1.0)
    if pattern in ("alternate", "together"):
        return (f < 0.5).astype(np.float64)
    if pattern == "quad":  # four quick pulses in the side's half cycle
        return ((f < 0.5) & (np.mod(f * 8.0, 1.0) < 0.55)).astype(np.float64)
    if pattern == "strobe":  # a short bright flash
        return (f < 0.18).astype(np.float64)
    out: F64 = np.cos(np.pi * f) ** 8  # rotating: the mirror sweeps past the camera once a cycle
    return out


def _lamps(v: Vehicle, t: F64, cx: F64, cy: F64, s: F64, half: F64) -> list[tuple[Any, ...]]:
    """(x, y, colour, intensity) per lamp of `v`; intensity is 0..1 per frame time."""
    phase = t * v.flash_hz + v.flash_phase
    if v.lamps in ("emergency", "warning"):
        a, b = LAMP_COLOURS[v.colours]
        ia, ib = _intensity(v.pattern, phase, 0), _intensity(v.pattern, phase, 1)
        free = v.shape in FREE_STANDING
        top = cy - s if free else cy - s - 0.05 * s
        if v.mount == "beacon":
            return [(cx, top, a, np.maximum(ia, ib) if a == b else ia)]
        if v.mount == "bar":
            xs = (-0.45, -0.15, 0.15, 0.45)
            return [(cx + k * half, top, a if k < 0 else b, ia if k < 0 else ib) for k in xs]
        if v.mount == "grille" and not free:
            ly = cy - 0.4 * s
            return [(cx - 0.35 * half, ly, a, ia), (cx + 0.35 * half, ly, b, ib)]
        return [(cx - 0.3 * half, top, a, ia), (cx + 0.3 * half, top, b, ib)]
    on = (np.mod(phase, 1.0) < 0.5).astype(np.float64)
    if v.lamps == "steady":
        ly, steady = cy - s - 0.05 * s, np.ones_like(on)
        return [(cx - 0.3 * half, ly, RED, steady), (cx + 0.3 * half, ly, BLUE, steady)]
    ly = cy - 0.35 * s
    level = on if v.lamps == "hazard" else np.ones_like(on)
    colour = AMBER if v.lamps == "hazard" else RED
    return [(cx - 0.85 * half, ly, colour, level), (cx + 0.85 * half, ly, colour, level)]


def lamp_glow(
    frames: F32, v: Vehicle, t: F64, shake: tuple[F64, F64], grid: tuple[F32, F32]
) -> None:
    """Add the light of `v`'s lamps (emission: added after lighting, not tinted by it)."""
    vis = (t >= v.visible[0]) & (t < v.visible[1])
    if v.lamps == "none" or not vis.any():
        return
    _, h, w, _ = frames.shape
    cx, cy, s = v.motion.at(t)
    cx, cy = cx + shake[0], cy + shake[1]
    lit = (t >= max(v.lamps_on[0], v.visible[0])) & (t < min(v.lamps_on[1], v.visible[1]))
    r = np.maximum(0.13 * s * v.lamp_scale, 2.0 / h)
    aspect = w / h
    spread = 3.0 * (1.0 + 1.5 * v.bloom)  # the halo's width, in lamp radii
    reach = 7.0 * r * (1.0 + 1.5 * v.bloom)
    for lx, ly, colour, on in _lamps(v, t, cx, cy, s, 0.5 * s * v.ratio * h / w):
        box = (float(np.min(lx - reach / aspect)), float(np.max(lx + reach / aspect)),
               float(np.min(ly - reach)), float(np.max(ly + reach)))  # fmt: skip
        region = _crop(frames, grid, box)
        if region is None:
            continue
        sub, (y, x) = region
        d2 = ((x - lx[:, None, None]) * aspect) ** 2 + (y - ly[:, None, None]) ** 2
        r2 = (r**2)[:, None, None]
        on_now = lit * on
        # The lamp itself is opaque (its own colour when on, a dark lens when off); its light
        # spills onto the surroundings as an additive halo.
        core = (np.exp(-d2 / r2) * vis[:, None, None])[..., None].astype(np.float32)
        full = 1.0 if v.lamps != "tail" else 0.7
        lens = 0.18 + (full - 0.18) * on_now
        rgb = np.asarray(colour, dtype=np.float32)
        sub += core * (lens[:, None, None, None].astype(np.float32) * rgb - sub)
        light = (on_now * vis)[:, None, None]
        halo = (0.45 + 0.6 * v.bloom) * np.exp(-d2 / (spread**2 * r2)) * light
        sub += halo[..., None].astype(np.float32) * rgb
        if v.bloom > 0:  # the sensor saturates: the lamp's core clips towards white
            flare = 0.8 * v.bloom * np.exp(-d2 / (4.0 * r2)) * light
            sub += flare[..., None].astype(np.float32)
