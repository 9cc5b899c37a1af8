"""Per-split pools of backgrounds and the random look of a scene.

`train` and `val` draw from the same pools (val: new scenes over seen backgrounds and voices);
`heldout` draws from disjoint pools of backdrops, ambience variants and voices, so held-out
numbers measure generalisation to places and speakers the model never saw.
"""

from __future__ import annotations

import numpy as np

from engines.lab.scenes.audio import AMBIENCE_KINDS, Ambience
from engines.lab.scenes.mix import Reverb
from engines.lab.scenes.scene import Look
from engines.lab.scenes.sounds.noises import NOISE_KINDS
from engines.lab.scenes.video import BACKDROP_FAMILIES, Backdrop

SPLITS = ("train", "val", "heldout")
BACKDROPS_PER_SPLIT = {"train": 320, "heldout": 64}
AMBIENCES_PER_KIND = {"train": 16, "heldout": 4}
HELDOUT_OFFSET = 100_000


def check_split(split: str) -> str:
    """The pool a split draws from (`train` or `heldout`); raises on an unknown split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    return "heldout" if split == "heldout" else "train"


def random_backdrop(rng: np.random.Generator, split: str) -> Backdrop:
    """A backdrop from the split's pool (families in turn, seeds disjoint across pools)."""
    pool = check_split(split)
    i = int(rng.integers(BACKDROPS_PER_SPLIT[pool]))
    family = BACKDROP_FAMILIES[i % len(BACKDROP_FAMILIES)]
    return Backdrop(family, i + (HELDOUT_OFFSET if pool == "heldout" else 0))


def random_ambience(rng: np.random.Generator, split: str) -> Ambience:
    """A background sound bed from the split's pool of variants: street, rain, crowd, wind,
    hum, or a noise family (pink, brown, traffic, HVAC, babble)."""
    pool = check_split(split)
    kinds = (*AMBIENCE_KINDS, *NOISE_KINDS)
    kind = kinds[int(rng.integers(len(kinds)))]
    i = int(rng.integers(AMBIENCES_PER_KIND[pool]))
    return Ambience(kind, i + (HELDOUT_OFFSET if pool == "heldout" else 0))


def random_look(rng: np.random.Generator, split: str, backdrop: Backdrop | None = None) -> Look:
    """Exposure, tint, shake and sensor noise drawn over their full ranges."""
    night = backdrop is not None and backdrop.family == "night"
    return Look(
        backdrop=backdrop or random_backdrop(rng, split),
        gain=float(rng.uniform(0.5, 0.9) if night else rng.uniform(0.65, 1.25)),
        tint=(float(rng.uniform(0.85, 1.15)), 1.0, float(rng.uniform(0.85, 1.15))),
        shake=float(rng.uniform(0.0, 0.02)) if rng.random() < 0.5 else 0.0,
        shake_hz=(float(rng.uniform(0.8, 2.5)), float(rng.uniform(2.5, 6.0))),
        shake_phase=(float(rng.uniform(0, 6.3)), float(rng.uniform(0, 6.3))),
        noise=float(rng.uniform(0.0, 0.05)),
        seed=int(rng.integers(1 << 16)),
    )


def random_reverb(rng: np.random.Generator) -> Reverb | None:
    """A room half of the time: RT60 0.2–0.8 s, 10–50 % wet."""
    if rng.random() < 0.5:
        return None
    return Reverb(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.1, 0.5)), int(rng.integers(64)))
