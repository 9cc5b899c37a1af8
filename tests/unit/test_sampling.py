"""Video sampling before any pixel work (pure)."""

from __future__ import annotations

import itertools
import random

import pytest

from stream.sampling import FrameSampler

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("source", "target"), [(30, 30), (30, 15), (30, 10), (30, 8), (25, 30), (60, 8)]
)
def test_kept_rate_is_the_target_or_the_source(source: int, target: int) -> None:
    rng = random.Random(source * 100 + target)
    sampler = FrameSampler(target)
    kept = [
        t for i in range(source * 20) if sampler.keep(t := i / source + rng.uniform(-0.004, 0.004))
    ]
    assert len(kept) / 20 == pytest.approx(min(source, target), abs=0.3)
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert max(gaps) < 1.6 / min(source, target)  # evenly spread, no long holes


def test_a_pause_reanchors_instead_of_bursting() -> None:
    sampler = FrameSampler(10)
    assert sampler.keep(0.0)
    assert sampler.keep(5.0)  # after a 5 s pause
    assert not sampler.keep(5.033)
    assert not sampler.keep(5.066)
    assert sampler.keep(5.1)
