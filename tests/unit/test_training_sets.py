"""Training sets under a generation time limit: a cut set is a prefix of the full one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.lab.training import data
from engines.lab.training.data import build_set
from engines.window import AudioSpec, VideoSpec, WindowSpec

pytestmark = pytest.mark.unit

SPEC = WindowSpec(1.0, 0.5, VideoSpec(8, 8.0, 64, 64), AudioSpec(16000, 16000))


def test_generation_time_limit_keeps_a_prefix_and_caches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "CHUNK", 4)
    cut = build_set(SPEC, 12, seed=3, split="val", cache_dir=tmp_path / "a", workers=1,
                    minutes=1e-6)  # fmt: skip
    assert len(cut) == 4  # the first chunk, then the limit
    assert cut.video.shape[0] == cut.logmel.shape[0] == len(cut.labels) == len(cut.care) == 4
    again = build_set(SPEC, 12, seed=3, split="val", cache_dir=tmp_path / "a", workers=1)
    assert len(again) == 4  # served from the cache, as cut
    full = build_set(SPEC, 12, seed=3, split="val", cache_dir=tmp_path / "b", workers=1)
    assert len(full) == 12
    assert np.array_equal(np.asarray(full.video[:4]), np.asarray(cut.video))
    assert full.kinds[:4] == cut.kinds


def test_fetching_the_real_recordings_changes_the_cache_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A set generated before the real `train` recordings were fetched has none of them mixed
    in: once they are there, the cache must not serve it."""
    from engines.lab.scenes.sounds import recordings

    monkeypatch.setattr(recordings, "recording_bank", lambda: ())
    without = data.cache_key(SPEC, 100, 0, "train", False)
    clip = recordings.Recording("siren-1", np.zeros(16000, np.float32), ("siren",), ((0.0, 1.0),))
    monkeypatch.setattr(recordings, "recording_bank", lambda: (clip,))
    with_one = data.cache_key(SPEC, 100, 0, "train", False)
    assert with_one != without
    assert data.cache_key(SPEC, 100, 0, "train", False) == with_one  # stable
