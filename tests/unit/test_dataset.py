"""The training/evaluation window API: shapes, determinism, balance, distractors, splits."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from engines.lab.scenes.base import LABELS
from engines.lab.scenes.dataset import (
    DISTRACTOR_KINDS,
    FUSED_POSITIVE_KINDS,
    KINDS,
    W0,
    Example,
    example_scene,
    scene_truth_windows,
    window_examples,
)
from engines.lab.scenes.pools import random_ambience, random_backdrop
from engines.lab.scenes.registry import load_scenario
from engines.lab.scenes.speech import voices_for
from engines.lab.scenes.truth import coverage
from engines.window import AudioSpec, VideoSpec, WindowSpec

pytestmark = pytest.mark.unit

SPEC = WindowSpec(1.0, 0.5, VideoSpec(8, 8.0, 64, 64), AudioSpec(16000, 16000))
EV, COLLISION = LABELS.index("emergency_vehicle"), LABELS.index("collision")


@pytest.fixture(scope="module")
def sample() -> list[Example]:
    return list(window_examples(360, SPEC, seed=11, split="train"))


def test_examples_have_the_engine_shapes(sample: list[Example]) -> None:
    ex = sample[0]
    assert ex.video.shape == (8, 64, 64, 3)
    assert ex.video.dtype == np.uint8
    assert ex.audio.shape == (16000,)
    assert ex.audio.dtype == np.float32
    assert ex.labels.shape == ex.care.shape == (len(LABELS),)
    for e in sample:
        assert set(np.unique(e.labels)) <= {0.0, 1.0}
        assert np.all(np.abs(e.audio) <= 1.0)
        assert e.kind in {k for k, _, _ in KINDS}


def test_same_index_same_example_and_start_offsets_line_up() -> None:
    a = list(window_examples(4, SPEC, seed=5, split="val"))
    b = list(window_examples(2, SPEC, seed=5, split="val", start=2))
    for x, y in zip(a[2:], b, strict=True):
        assert np.array_equal(x.video, y.video)
        assert np.array_equal(x.audio, y.audio)
        assert np.array_equal(x.labels, y.labels)
        assert x.kind == y.kind
    other = next(window_examples(1, SPEC, seed=6, split="val"))
    assert not np.array_equal(other.audio, a[0].audio)


def test_every_label_and_distractor_is_well_represented(sample: list[Example]) -> None:
    labels = np.stack([e.labels for e in sample])
    rate = dict(zip(LABELS, labels.mean(axis=0), strict=True))
    assert rate["emergency_vehicle"] >= 0.13, rate
    assert rate["collision"] >= 0.13, rate
    assert min(rate.values()) >= 0.04, rate
    kinds = Counter(e.kind for e in sample)
    distractors = sum(kinds[k] for k in DISTRACTOR_KINDS) / len(sample)
    assert distractors >= 0.22, kinds
    assert all(kinds[k] > 0 for k in DISTRACTOR_KINDS), kinds


def test_distractors_never_carry_fused_labels_and_positives_always_do(
    sample: list[Example],
) -> None:
    for e in sample:
        if e.kind in DISTRACTOR_KINDS:
            assert e.labels[EV] == 0, e.kind
            assert e.labels[COLLISION] == 0, e.kind
        if e.kind == "emergency":
            assert e.labels[EV] == 1
        if e.kind == "collision":
            assert e.labels[COLLISION] == 1
            assert e.care[COLLISION] == 1
    assert {e.kind for e in sample} >= FUSED_POSITIVE_KINDS


def saturated(video: np.ndarray, channel: int) -> np.ndarray:
    """Per frame, how many pixels are strongly of one primary colour."""
    f = video.astype(np.float64) / 255
    others = np.max(np.delete(f, channel, axis=-1), axis=-1)
    count: np.ndarray = np.sum((f[..., channel] > 0.6) & (f[..., channel] - others > 0.45), (1, 2))
    return count


def test_emergency_windows_flash_and_hazard_windows_do_not(sample: list[Example]) -> None:
    def flashes(e: Example) -> bool:
        """Strongly red or strongly blue pixels swing over the window (lamps of either colour,
        any pattern: alternating, together, bursts, strobes, a rotating beacon)."""
        return bool(max(np.ptp(saturated(e.video, 0)), np.ptp(saturated(e.video, 2))) >= 2)

    def lit_throughout(i: int) -> bool:
        """The lamps flash over the whole window (positives may start 0.26 s before its end,
        too few frames to see a swing)."""
        scene, _ = example_scene(i, SPEC, seed=11, split="train")
        return coverage(scene.truth, "flashing_lights", W0, W0 + SPEC.length_s) > 0.99

    flashing = LABELS.index("flashing_lights")
    positives = [i for i, e in enumerate(sample) if e.labels[flashing] == 1]
    lights = [flashes(sample[i]) for i in positives if lit_throughout(i)]
    assert len(lights) >= 0.5 * len(positives)
    others = [flashes(e) for e in sample if e.labels[flashing] == 0]
    amber_white = [
        flashes(e) for e in sample if e.kind.startswith("hazard") or e.kind == "warning_lights"
    ]
    # a crude pixel count: tiny or codec-smeared lamps can stay under it (3 of 54 here)
    assert np.mean(lights) >= 0.85, np.mean(lights)
    # red cars moving, tail lamps, sensor noise over red or blue surfaces swing it too (~0.28)
    assert np.mean(others) <= 0.4, np.mean(others)
    # amber and white lamps are not strongly red or blue (~0.18 before lamps bloomed; a wide
    # amber glow over a red body swings the count too, 0.31 here)
    assert np.mean(amber_white) <= 0.36, np.mean(amber_white)


def test_lamp_variety_covers_patterns_colours_mounts_and_free_standing() -> None:
    seen: dict[str, set[str]] = {"pattern": set(), "colours": set(), "mount": set(), "shape": set()}
    warning_colours: set[str] = set()
    hz = []
    for i in range(400):
        scene, _ = example_scene(i, SPEC, seed=3, split="train")
        for v in scene.vehicles:
            if v.lamps == "emergency":
                for key in seen:
                    seen[key].add(str(getattr(v, key)))
                hz.append(v.flash_hz)
            if v.lamps == "warning":
                warning_colours.add(v.colours)
    assert seen["pattern"] == {"alternate", "together", "quad", "strobe", "rotating"}
    assert seen["colours"] == {"redblue", "red", "blue"}
    assert seen["mount"] >= {"roof", "bar", "beacon", "grille"}
    assert seen["shape"] & {"none", "pole"}
    assert warning_colours == {"amber", "white", "amberwhite"}
    assert min(hz) < 1.3
    assert max(hz) > 3.5


def test_stream_edges_are_negative_for_video_and_fused_labels(sample: list[Example]) -> None:
    from engines.labels import FUSED_LABELS, VIDEO_LABELS

    cols = [LABELS.index(x) for x in (*VIDEO_LABELS, *FUSED_LABELS)]
    edges = [e for e in sample if e.kind in ("stream_start", "stream_stop")]
    assert edges
    for e in edges:
        assert not e.labels[cols].any(), e.kind
        dark = e.video.reshape(len(e.video), -1)
        # some frames are black, flat or frozen: a frame equal to a neighbour or uniform
        same = [np.array_equal(a, b) or np.ptp(a) < 3 for a, b in itertools.pairwise(dark)]
        assert any(same) or np.ptp(dark[0]) < 3 or np.ptp(dark[-1]) < 3, e.kind


def test_heldout_pools_are_disjoint_from_training() -> None:
    rng = np.random.default_rng(0)
    train = {random_backdrop(rng, "train") for _ in range(500)}
    held = {random_backdrop(rng, "heldout") for _ in range(500)}
    assert train.isdisjoint(held)
    assert {random_ambience(rng, "val") for _ in range(200)}.isdisjoint(
        {random_ambience(rng, "heldout") for _ in range(200)}
    )
    assert set(voices_for("train")).isdisjoint(voices_for("heldout"))
    ex = next(window_examples(1, SPEC, seed=0, split="heldout"))
    assert ex.video.shape == (8, 64, 64, 3)


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        next(window_examples(1, SPEC, seed=0, split="test"))


def test_scene_truth_windows_cut_like_the_service() -> None:
    scene = load_scenario("emergency")
    windows = scene_truth_windows(scene, SPEC)
    assert len(windows) == 23  # ends at 1.0, 1.5, ..., 12.0
    assert windows[0].end == 1.0
    assert windows[-1].end == 12.0
    positive = [w.end for w in windows if w.labels[EV] == 1]
    # 4–9 s: the first window whose last 0.3 s holds it ends at 4.5, the last at 9.0
    assert min(positive) == 4.5
    assert max(positive) == 9.0
    assert all(w.care[EV] == 1 for w in windows)  # the 0.5 s grid meets no borderline
    fine = scene_truth_windows(scene, SPEC, hop_s=0.1)
    around_onset = {round(w.end, 1): (w.labels[EV], w.care[EV]) for w in fine if 4.0 <= w.end < 4.4}
    # 0, 1/3, 2/3 and all of the tail covered: off; borderline off; borderline on; on
    assert around_onset == {4.0: (0, 1), 4.1: (0, 0), 4.2: (1, 0), 4.3: (1, 1)}
    with pytest.raises(ValueError, match="endless"):
        scene_truth_windows(load_scenario("sync"), SPEC)
