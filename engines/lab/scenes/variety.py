"""Visual variety for training windows: how lamps flash and where they sit, how objects approach.

The scripts keep the scenes' classic look (roof pairs alternating red and blue, fast approaches
of well-contrasted vehicles); the training generator widens each label's visual meaning by
filling in the segment parameters the scripts leave out (`vary_segments`):

- `flashing_lights` (lamps `emergency`): red/blue, red or blue lamps; alternating, together,
  quad bursts, short strobes or a rotating beacon's sweep at 1–4 Hz; a roof pair, a four-lamp
  bar, one beacon or grille lamps, from a few pixels up; on a vehicle or free-standing (a
  roadside beacon, a bar on a barrier or post).
- Negatives with the same rhythms: amber and white lamps (`warning`) in every pattern and
  mount, the classic amber hazards, steady red/blue lamps.
- `approaching_object`: growth from slow (1.3–1.6x/s) to fast (2.8x/s), ending anywhere from a
  quarter to most of the frame tall, from ~4 px, with sideways drift, and low-contrast bodies
  (0.06–0.2 brighter or darker than the road); receding objects shrink at similar rates.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engines.lab.scenes.sprites import EMERGENCY_COLOURS, FREE_STANDING, LAMP_MOUNTS
from engines.lab.scenes.video import Backdrop, backdrop_image, horizon_of

SegmentSpec = tuple[str, float, float, Mapping[str, Any]]

CLASSIC = 0.3  # share of lamps and approaches left as the scripts draw them
PATTERNS = (("alternate", 0.3), ("together", 0.15), ("quad", 0.2), ("strobe", 0.15),
            ("rotating", 0.2))  # fmt: skip
WARNING_COLOURS = ("amber", "white", "amberwhite")
LOW_CONTRAST = 0.25  # of vehicles: a body close to the road's colour
BLOOM = (0.3, (0.25, 1.0))  # share of lamp-carrying segments whose lamps bloom, and how much
FAR_APPROACH = 0.25  # of varied approaches: far away, small all through the window
PLAIN = 0.2  # of varied objects (any motion): a plain block instead of a vehicle body
# Default motion of each segment kind (segments.py), for the kinds that take one.
_DEFAULT_MOTION = {"emergency_vehicle": "approach", "lights": "static", "hazard_lights": "static",
                   "approach": "approach", "collision": "approach"}  # fmt: skip


def _choice(rng: np.random.Generator, items: Sequence[tuple[str, float]]) -> str:
    w = np.array([p for _, p in items])
    return items[int(rng.choice(len(items), p=w / w.sum()))][0]


@functools.lru_cache(maxsize=4096)
def ground_colour(backdrop: Backdrop) -> tuple[float, float, float]:
    """The mean colour of the backdrop's ground, where vehicles stand (drawn small, outside
    `backdrop_image`'s cache so it does not evict the full-size pictures)."""
    img = backdrop_image.__wrapped__(backdrop, 24, 32)
    row = int(np.clip(round((horizon_of(backdrop) + 0.1) * 24), 0, 23))
    c = img[row:].reshape(-1, 3).mean(axis=0)
    return float(c[0]), float(c[1]), float(c[2])


def _lamp_params(rng: np.random.Generator, warning: bool, static: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pattern": _choice(rng, PATTERNS),
        "colours": str(rng.choice(WARNING_COLOURS if warning else EMERGENCY_COLOURS)),
        "mount": str(rng.choice(LAMP_MOUNTS)),
        "lamp_scale": float(np.exp(rng.uniform(np.log(0.35), np.log(1.8)))),
        "flash_hz": float(rng.uniform(1.0, 4.0)),
    }
    if warning:
        out["lamps"] = "warning"
    if static and rng.random() < 0.4:
        out["shape"] = str(rng.choice(FREE_STANDING))
        out["mount"] = str(rng.choice(["beacon", "bar", "roof"]))
    return out


def _motion_params(rng: np.random.Generator, motion: str) -> dict[str, Any]:
    if motion == "approach":
        slow = rng.random() < 0.4
        far = rng.random() < FAR_APPROACH  # still small when the window ends: 6-16 px at 64
        return {
            "growth": (1.3, 1.6) if slow else (1.3, 2.8),
            "end_size": (0.1, 0.25) if far else (0.25, 0.8),
            "min_size": 0.04 if far else 0.06 if rng.random() < 0.5 else 0.12,
            "drift": float(rng.uniform(0.0, 0.35)),
        }
    if motion == "recede":
        return {"growth": (1.1, 2.8)}
    return {}


def vary_segments(
    segments: Sequence[SegmentSpec], rng: np.random.Generator, backdrop: Backdrop
) -> list[SegmentSpec]:
    """`segments` with lamp, motion and contrast parameters filled in where left open."""
    ground = np.asarray(ground_colour(backdrop))
    out: list[SegmentSpec] = []
    for kind, a, b, params in segments:
        p = dict(params)
        motion = str(p.get("motion", _DEFAULT_MOTION.get(kind, "")))
        lamps = str(p.get("lamps", ""))
        emergency = kind in ("emergency_vehicle", "lights") or lamps == "emergency"
        hazard = kind == "hazard_lights" or lamps in ("hazard", "warning")
        if (emergency or hazard) and (lamps == "warning" or rng.random() >= CLASSIC):
            warning = hazard and (lamps == "warning" or rng.random() < 0.5)
            if emergency or warning:
                extra = _lamp_params(rng, warning, motion == "static")
                p = {**extra, **p, **({"lamps": "warning"} if warning else {})}
        lit = emergency or hazard or lamps in ("tail", "steady")
        if lit and "bloom" not in p and rng.random() < BLOOM[0]:
            # any lamp may bloom (amber hazards and tail lamps too): glare is not the label
            p["bloom"] = float(rng.uniform(*BLOOM[1]))
        if kind in ("emergency_vehicle", "lights", "hazard_lights", "approach", "collision",
                    "vehicle") and p.get("shape") not in FREE_STANDING:  # fmt: skip
            if rng.random() >= CLASSIC:
                p = {**_motion_params(rng, motion), **p}
                if "shape" not in p and rng.random() < PLAIN:
                    p["shape"] = "plain"  # approaching is growth, whatever grows
            if "colour" not in p and rng.random() < LOW_CONTRAST:
                # low, not no contrast: 0.06–0.2 brighter or darker than the road
                step = rng.uniform(0.06, 0.2) * (1 if rng.random() < 0.5 else -1)
                c = ground + step + rng.uniform(-0.03, 0.03, 3)
                c = np.clip(np.where(c < 0, ground + abs(step), c), 0, 1)
                p["colour"] = tuple(float(x) for x in c)
        out.append((kind, a, b, p))
    return out
