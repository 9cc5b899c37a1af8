"""Training-window sampling: kind balance and shortcut (label co-occurrence) weights."""

from __future__ import annotations

import numpy as np
import pytest

from engines.lab.training.sampling import kind_weights, shortcut_weights

pytestmark = pytest.mark.unit

NAMES = ("target", "cue", "other")


def _odds(p: np.ndarray, y: np.ndarray, rows: np.ndarray) -> float:
    on = rows & (y[:, 0] > 0.5)
    return float(p[on].sum() / p[rows & ~on].sum())


def test_kind_weights_balance_rare_kinds() -> None:
    kinds = ["common"] * 90 + ["rare"] * 10
    flat = kind_weights(kinds, 0.0)
    equal = kind_weights(kinds, 1.0)
    assert flat.sum() == pytest.approx(1.0)
    assert equal.sum() == pytest.approx(1.0)
    assert flat[:90].sum() == pytest.approx(0.9)
    assert equal[:90].sum() == pytest.approx(0.5)


def _set(rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    cue = rng.random(n) < 0.3
    # The target is on in 60 % of cue windows and 10 % of the others: a shortcut.
    target = np.where(cue, rng.random(n) < 0.6, rng.random(n) < 0.1)
    other = rng.random(n) < 0.2
    labels = np.stack([target, cue, other], axis=1).astype(np.float32)
    return labels, np.ones_like(labels)


def test_shortcut_weights_move_the_cue_odds_toward_the_base_odds() -> None:
    labels, care = _set(np.random.default_rng(0))
    p0 = np.full(len(labels), 1.0 / len(labels))
    cue, rest = labels[:, 1] > 0.5, labels[:, 1] < 0.5
    before = _odds(p0, labels, cue) / _odds(p0, labels, rest)
    assert before > 5  # the shortcut is there
    uncapped = shortcut_weights(p0, labels, care, NAMES, (("target", ("cue",), ()),), 100.0)
    assert uncapped.sum() == pytest.approx(1.0)
    assert _odds(uncapped, labels, cue) == pytest.approx(_odds(uncapped, labels, rest), rel=1e-6)
    capped = shortcut_weights(p0, labels, care, NAMES, (("target", ("cue",), ()),), 2.0)
    ratio = _odds(capped, labels, cue) / _odds(capped, labels, rest)
    assert ratio == pytest.approx(before / 2.0, rel=1e-6)
    # Only the cue-on/target-off windows change weight, relative to one another unchanged.
    boosted = cue & (labels[:, 0] < 0.5)
    scale = capped / p0
    assert np.allclose(scale[boosted], 2.0 * scale[~boosted][0])
    assert np.allclose(scale[~boosted], scale[~boosted][0])


def test_shortcut_weights_leave_a_cue_that_predicts_absence() -> None:
    labels, care = _set(np.random.default_rng(1))
    labels[:, 0] = np.where(labels[:, 1] > 0.5, 0.0, labels[:, 0])  # never with the cue
    p0 = kind_weights(["a"] * len(labels), 0.75)
    out = shortcut_weights(p0, labels, care, NAMES, (("target", ("cue",), ()),))
    assert np.allclose(out, p0)


def test_shortcut_weights_skip_undecidable_windows() -> None:
    labels, care = _set(np.random.default_rng(2))
    care[:100, 0] = 0.0
    p0 = np.full(len(labels), 1.0 / len(labels))
    out = shortcut_weights(p0, labels, care, NAMES, (("target", ("cue",), ()),), 100.0)
    # An undecidable window keeps its weight relative to the untouched decidable ones.
    untouched = (labels[:, 1] < 0.5) & (care[:, 0] > 0.5)
    assert np.allclose(out[:100] / out[untouched][0], 1.0)


def test_shortcut_weights_spare_the_unless_labels() -> None:
    labels, care = _set(np.random.default_rng(3))
    p0 = np.full(len(labels), 1.0 / len(labels))
    out = shortcut_weights(p0, labels, care, NAMES, (("target", ("cue",), ("other",)),), 2.0)
    scale = out / p0
    boosted = (labels[:, 1] > 0.5) & (labels[:, 0] < 0.5)
    spared = boosted & (labels[:, 2] > 0.5)
    assert spared.any()
    assert np.allclose(scale[boosted & ~spared], 2.0 * scale[~boosted][0])
    assert np.allclose(scale[spared], scale[~boosted][0])
