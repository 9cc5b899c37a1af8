"""Scene pictures drawn with vectorised numpy in normalised coordinates, at any resolution.

`x` runs 0→1 across the width and `y` 0→1 down the height. Backdrops are static per variant and
cached per size; vehicles and lamps are drawn for a whole batch of frame times at once
(`[T, H, W]` broadcasting), so a training clip of 8 frames costs about as much as one frame.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BACKDROP_FAMILIES = ("street", "rural", "plaza", "night")
SHAKE_MARGIN = 0.04  # the backdrop is rendered this much larger on each side, for camera shake

RED = (1.0, 0.08, 0.05)
BLUE = (0.1, 0.35, 1.0)
AMBER = (1.0, 0.62, 0.0)
WHITE = (1.0, 1.0, 0.95)


@functools.lru_cache(maxsize=16)
def grid(h: int, w: int) -> tuple[F32, F32]:
    """Pixel-centre coordinates: `y` `[1, h, 1]` and `x` `[1, 1, w]` in [0, 1]."""
    y: F32 = ((np.arange(h, dtype=np.float32) + 0.5) / np.float32(h)).reshape(1, h, 1)
    x: F32 = ((np.arange(w, dtype=np.float32) + 0.5) / np.float32(w)).reshape(1, 1, w)
    return y, x


def value_noise(rng: np.random.Generator, cells: int, y: F64, x: F64) -> F64:
    """Smooth noise in [0, 1] on a `cells`x`cells` lattice, bilinearly interpolated."""
    lat = rng.random((cells + 2, cells + 2))
    gy, gx = np.clip(y, 0, 1) * cells, np.clip(x, 0, 1) * cells
    iy, ix = np.floor(gy).astype(int), np.floor(gx).astype(int)
    fy, fx = gy - iy, gx - ix
    top = lat[iy, ix] * (1 - fx) + lat[iy, ix + 1] * fx
    bot = lat[iy + 1, ix] * (1 - fx) + lat[iy + 1, ix + 1] * fx
    out: F64 = top * (1 - fy) + bot * fy
    return out


@dataclass(frozen=True, slots=True)
class Backdrop:
    """A static background picture: a `family` (`BACKDROP_FAMILIES`) and a variant seed."""

    family: str
    seed: int


@functools.lru_cache(maxsize=512)
def backdrop_image(backdrop: Backdrop, h: int, w: int) -> F32:
    """The backdrop at `h`x`w` plus `SHAKE_MARGIN` on each side: `[h + 2m, w + 2m, 3]`."""
    mh, mw = margins(h, w)
    y = (np.arange(h + 2 * mh) + 0.5 - mh)[:, None] / h
    x = (np.arange(w + 2 * mw) + 0.5 - mw)[None, :] / w
    y, x = np.broadcast_arrays(y, x)
    rng = np.random.default_rng([backdrop.seed, BACKDROP_FAMILIES.index(backdrop.family)])
    img = _draw_backdrop(backdrop.family, rng, y, x, horizon_of(backdrop))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def margins(h: int, w: int) -> tuple[int, int]:
    """Shake margin in pixels (rows, columns)."""
    return max(1, math.ceil(SHAKE_MARGIN * h)), max(1, math.ceil(SHAKE_MARGIN * w))


def horizon_of(backdrop: Backdrop) -> float:
    """Where the ground meets the sky, so vehicles stand on the road."""
    return float(np.random.default_rng([backdrop.seed, 99]).uniform(0.35, 0.55))


def _colour(rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> F64:
    return rng.uniform(lo, hi, 3)


def _draw_backdrop(family: str, rng: np.random.Generator, y: F64, x: F64, horizon: float) -> F64:
    night = family == "night"
    sky_top = _colour(rng, 0.0, 0.15) if night else _colour(rng, 0.35, 0.9)
    sky_low = _colour(rng, 0.05, 0.25) if night else _colour(rng, 0.55, 1.0)
    frac = np.clip(y / horizon, 0, 1)[..., None]
    img = sky_top * (1 - frac) + sky_low * frac
    tex = value_noise(rng, int(rng.integers(6, 24)), y, x)[..., None]
    if family in ("street", "night"):
        img = _buildings(rng, img, y, x, horizon, night)
    elif family == "rural":
        hill = horizon - 0.06 * (1 + np.sin(2 * np.pi * (x * rng.uniform(0.5, 2) + rng.random())))
        green = _colour(rng, 0.1, 0.5) * np.array([0.6, 1.0, 0.5])
        img = np.where((y > hill)[..., None], green * (0.7 + 0.6 * tex), img)
    else:  # plaza: a brick wall down to the horizon
        brick = (np.mod(y * rng.uniform(20, 40), 1) > 0.12) & (
            np.mod(x * rng.uniform(8, 16) + 0.5 * np.floor(y * 30), 1) > 0.06
        )
        wall = _colour(rng, 0.3, 0.8) * (0.6 + 0.4 * brick[..., None]) * (0.8 + 0.4 * tex)
        img = np.where((y > horizon * 0.35)[..., None], wall, img)
    return _ground(rng, img, y, x, horizon, tex, night)


def _buildings(
    rng: np.random.Generator, img: F64, y: F64, x: F64, horizon: float, night: bool
) -> F64:
    edges = np.sort(rng.uniform(-0.1, 1.1, int(rng.integers(3, 8))))
    for left, right in itertools.pairwise(edges):
        top = horizon - rng.uniform(0.1, horizon - 0.02)
        inside = (x >= left) & (x < right) & (y >= top) & (y < horizon)
        wall = _colour(rng, 0.05, 0.3) if night else _colour(rng, 0.2, 0.85)
        fx, fy = rng.uniform(10, 30), rng.uniform(12, 30)
        win = (np.mod(x * fx, 1) > 0.45) & (np.mod(y * fy, 1) > 0.4)
        lit = rng.uniform(0.6, 1.0, 3) * np.array([1.0, 0.9, 0.6]) if night else wall * 0.4
        colour = np.where(win[..., None], lit, wall)
        img = np.where(inside[..., None], colour, img)
    return img


def _ground(
    rng: np.random.Generator, img: F64, y: F64, x: F64, horizon: float, tex: F64, night: bool
) -> F64:
    depth = np.clip((y - horizon) / (1 - horizon), 0, 1)
    side = _colour(rng, 0.05, 0.25) if night else _colour(rng, 0.3, 0.7)
    road = np.full(3, rng.uniform(0.05, 0.15)) if night else np.full(3, rng.uniform(0.2, 0.5))
    vx = rng.uniform(0.35, 0.65)
    half = depth * rng.uniform(0.35, 0.6)
    on_road = (np.abs(x - vx) < half)[..., None]
    dash = (np.abs(x - vx) < 0.012 * depth) & (np.mod(1.0 / (depth + 0.05), 0.6) < 0.3)
    ground = np.where(on_road, road * (0.85 + 0.3 * tex), side * (0.7 + 0.6 * tex))
    ground = np.where(dash[..., None], np.array([0.9, 0.9, 0.8]), ground)
    return np.where((y >= horizon)[..., None], ground, img)
