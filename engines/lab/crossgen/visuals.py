"""Pictures of the cross-generator: backgrounds, vehicles and other objects on a depth track,
beacons (light bars, rotating beacons, strobes), and camera effects (exposure, sensor noise,
shake, shutter integration).

Frames are rendered at twice the engine's size and area-averaged down, so objects and lamps
of a pixel or two still show partially, as through a real lens and sensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dsp import F64

COLOURS = {
    "red": (1.0, 0.08, 0.06),
    "blue": (0.12, 0.3, 1.0),
    "amber": (1.0, 0.62, 0.05),
    "white": (1.0, 1.0, 0.95),
}
EMERGENCY_COLOURS = ("red", "blue")
FLASH_STYLES = ("bar", "rotating", "strobe", "double_strobe")


@dataclass(frozen=True, slots=True)
class Track:
    """An object's path: centre x (px at render size), ground y, width, over time.

    Depth follows `z(t) = 1 - rate * (t - t0)` from `t0` (rate > 0 approaches, < 0 recedes) until
    `t_stop` (impact or halt), after which it stays put."""

    x0: float
    y0: float
    width0: float
    rate: float
    t0: float
    t_stop: float
    vx: float = 0.0  # lateral speed, px/s at render size

    def depth(self, t: float) -> float:
        """Relative depth at `t` (1 at `t0`)."""
        tt = min(max(t, self.t0), self.t_stop) - self.t0
        return max(0.05, 1.0 - self.rate * tt)

    def at(self, t: float) -> tuple[float, float, float]:
        """(centre x, bottom y, width) at `t`."""
        z = self.depth(t)
        tt = min(max(t, self.t0), self.t_stop) - self.t0
        # A camera tilted down at the street: the object's foot moves down as it nears, gently
        # enough that its top half stays in view.
        y = min(self.y0 + 0.35 * self.width0 * (1 / z - 1), self.y0 * 1.25)
        return self.x0 + self.vx * tt / z, y, self.width0 / z

    def looming(self, t: float) -> float:
        """Relative growth rate of the apparent size (1/s): rate / depth while moving."""
        if t < self.t0 or t >= self.t_stop:
            return 0.0
        return self.rate / self.depth(t)


@dataclass(slots=True)
class Beacon:
    """Flashing lamps, either fixed in the picture or riding on a track's roof."""

    colours: tuple[str, str]
    style: str
    hz: float
    radius: float
    span: tuple[float, float]
    pos: tuple[float, float] = (0.0, 0.0)
    on_track: bool = False
    phase: float = 0.0

    def intensity(self, t: F64) -> tuple[F64, F64]:
        """Brightness 0..1 of the two lamps at times `t`."""
        inside = ((t >= self.span[0]) & (t < self.span[1])).astype(np.float64)
        x = (t * self.hz + self.phase) % 1.0
        if self.style == "bar":
            a = (x < 0.5).astype(np.float64)
            return a * inside, (1 - a) * inside
        if self.style == "rotating":
            a = np.maximum(0.0, np.cos(2 * np.pi * x)) ** 4
            b = np.maximum(0.0, np.cos(2 * np.pi * (x + 0.5))) ** 4
            return (0.15 + 0.85 * a) * inside, (0.15 + 0.85 * b) * inside
        flash = (x < 0.12) | ((self.style == "double_strobe") & (x >= 0.22) & (x < 0.34))
        a = flash.astype(np.float64)
        return a * inside, np.roll(a, 0) * inside


@dataclass(slots=True)
class Stage:
    """Everything in front of the camera, rendered frame by frame."""

    size: int
    background: F64
    body_colour: tuple[float, float, float] = (0.5, 0.5, 0.5)
    track: Track | None = None
    shape: str = "car"
    beacons: list[Beacon] = field(default_factory=list)
    ambient: float = 1.0


def background(size: int, rng: np.random.Generator) -> F64:
    """A street-ish backdrop: sky, ground, buildings, low-frequency texture; `[H, W, 3]`."""
    y = np.linspace(0, 1, size)[:, None, None]
    sky, ground = rng.uniform(0.2, 0.9, 3), rng.uniform(0.1, 0.5, 3)
    horizon = rng.uniform(0.35, 0.6)
    img = np.where(y < horizon, sky * (0.7 + 0.3 * y / horizon), ground * (0.8 + 0.2 * y))
    img = np.broadcast_to(img, (size, size, 3)).copy()
    for _ in range(int(rng.integers(2, 9))):
        w, h = rng.integers(size // 10, size // 3), rng.integers(size // 8, size // 2)
        x0 = rng.integers(0, size - w)
        y1 = int(horizon * size)
        img[max(0, y1 - h) : y1, x0 : x0 + w] = rng.uniform(0.1, 0.8, 3)
    coarse = rng.uniform(-1, 1, (8, 8, 1))
    tex = np.kron(coarse, np.ones((size // 8, size // 8, 1)))
    img += rng.uniform(0.0, 0.12) * tex[:size, :size]
    return np.asarray(np.clip(img, 0, 1), dtype=np.float64)


def _box(xx: F64, yy: F64, cx: float, cy: float, hw: float, hh: float) -> F64:
    """Anti-aliased rectangle coverage."""
    return np.clip(0.5 + np.minimum(hw - np.abs(xx - cx), hh - np.abs(yy - cy)), 0, 1)


def _blob(xx: F64, yy: F64, cx: float, cy: float, r: float) -> tuple[F64, F64]:
    """Lamp core (anti-aliased disc) and its glow."""
    d = np.hypot(xx - cx, yy - cy)
    return np.clip(r + 0.5 - d, 0, 1), np.exp(-((d / (2.5 * r)) ** 2))


def render_frame(stage: Stage, t: float, sub: F64, grid: tuple[F64, F64]) -> F64:
    """The stage at time `t`, the lamps integrated over the shutter sub-times `sub`."""
    xx, yy = grid
    img = stage.background * stage.ambient
    roof = None
    if stage.track is not None:
        cx, by, w = stage.track.at(t)
        h = w * (0.75 if stage.shape == "car" else 1.0)
        cy = by - h / 2
        if stage.shape == "ellipse":
            rho = np.hypot((xx - cx) / (w / 2), (yy - cy) / (h / 2))
            m = np.clip(0.5 + (1 - rho) * min(w, h) / 2, 0, 1)  # a one-pixel soft edge
        else:
            m = _box(xx, yy, cx, cy, w / 2, h / 2)
        img = img * (1 - m[..., None]) + m[..., None] * np.asarray(stage.body_colour)
        if stage.shape == "car":
            win = _box(xx, yy, cx, cy - h * 0.18, w * 0.38, h * 0.14)
            img = img * (1 - 0.7 * win[..., None])
            wheel = _box(xx, yy, cx, by - h * 0.05, w * 0.45, h * 0.06)
            img = img * (1 - 0.8 * wheel[..., None])
        roof = (cx, cy - h / 2, w)
    for b in stage.beacons:
        ia, ib = b.intensity(t + sub)
        pos = b.pos
        r = b.radius
        if b.on_track and roof is not None:
            pos, r = (roof[0], roof[1] - 1), max(1.5, b.radius * roof[2] / 20)
        for k, (level, colour) in enumerate(zip((ia.mean(), ib.mean()), b.colours, strict=True)):
            if level <= 0:
                continue
            off = (k - 0.5) * 2.6 * r
            core, glow = _blob(xx, yy, pos[0] + off, pos[1], r)
            c = np.asarray(COLOURS[colour])
            img = img + level * (core[..., None] * 1.4 + 0.5 * glow[..., None]) * c
    return img


def camera(
    frames: F64,
    rng: np.random.Generator,
    shake_px: float,
    jolts: list[int],
    exposure: float,
    noise: float,
    out_size: int,
) -> F64:
    """Shake (with jolts at the given frames), exposure/gamma, sensor noise, area downsample."""
    t, h, w, _ = frames.shape
    pad = int(np.ceil(shake_px)) + 6
    out = np.empty((t, out_size, out_size, 3))
    gamma = rng.uniform(0.8, 1.25)
    for i in range(t):
        j = 6.0 if any(0 <= i - k < 3 for k in jolts) else shake_px
        dx, dy = rng.uniform(-j, j, 2) if j > 0 else (0.0, 0.0)
        p = np.pad(frames[i], ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        oy, ox = pad + round(dy), pad + round(dx)
        img = np.clip(p[oy : oy + h, ox : ox + w] * exposure, 0, 1) ** gamma
        f = h // out_size
        img = img[: out_size * f, : out_size * f].reshape(out_size, f, out_size, f, 3).mean((1, 3))
        out[i] = img + rng.normal(0, noise, img.shape) + noise * 0.5 * rng.normal(0, np.sqrt(img))
    return np.asarray(np.clip(out, 0, 1), dtype=np.float64)


def render(stage: Stage, times: F64, shutter: float, fps: float) -> F64:
    """All frames `[T, H, W, 3]` at render size, lamps integrated over `shutter` of a frame."""
    s = stage.size
    grid = np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5)
    sub = -np.linspace(0, shutter / fps, 4)
    out = np.empty((len(times), s, s, 3))
    for i, t in enumerate(times):
        out[i] = render_frame(stage, float(t), sub, (grid[0], grid[1]))
    return out
