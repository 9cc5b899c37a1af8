"""Camera and transport effects of the training generator: a real codec, stream edges."""

from __future__ import annotations

import numpy as np
import pytest

from engines.lab.scenes.base import LABELS
from engines.lab.scenes.camera import Codec, codec_roundtrip, stream_edge

pytestmark = pytest.mark.unit


def _frames() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    frames = np.repeat(base[None], 8, axis=0).copy()
    for t in range(8):  # a small red lamp blinking, moving: no two frames alike
        frames[t, 20:23, 4 * t : 4 * t + 3] = (255, 20, 10) if t % 2 == 0 else (60, 20, 10)
    return frames


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_codec_roundtrip_is_lossy_but_keeps_the_picture(codec: str) -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 60, (48, 64, 3))  # detail that costs bits
    frames = np.clip(_frames().astype(int) + texture, 0, 255).astype(np.uint8)
    low = codec_roundtrip(frames, Codec(codec, 20.0))
    high = codec_roundtrip(frames, Codec(codec, 4000.0))
    assert low.shape == frames.shape
    assert low.dtype == np.uint8
    err_low = np.abs(low.astype(int) - frames).mean()
    err_high = np.abs(high.astype(int) - frames).mean()
    assert 0 < err_high < err_low  # a real encoder: fewer bits, more error
    assert err_low < 40  # still the same picture


@pytest.mark.parametrize("kind", ["stream_start", "stream_stop"])
def test_stream_edge_blanks_part_of_the_window_and_clears_video_labels(kind: str) -> None:
    rng = np.random.default_rng(1)
    frames = _frames()
    audio = np.full(16000, 0.1, np.float32)
    labels = np.zeros(len(LABELS), np.float32)
    labels[LABELS.index("flashing_lights")] = 1
    labels[LABELS.index("speech")] = 1
    care = np.ones(len(LABELS), np.float32)
    for _ in range(20):
        v, a, lab, c = stream_edge(kind, frames, audio, labels, care, rng, 8.0, 16000)
        assert lab[LABELS.index("flashing_lights")] == 0
        assert lab[LABELS.index("speech")] == 1  # what is heard stays labelled...
        if (a == 0).any():  # ...unless the cut silenced part of it: then it is not scored
            assert c[LABELS.index("speech")] == 0
        changed = [not np.array_equal(v[t], frames[t]) for t in range(8)]
        if kind == "stream_start":  # no picture first (the picture may ramp up after it)
            assert changed[0]
        else:  # the picture, then none
            assert changed[-1]
            assert not changed[0]
    with pytest.raises(ValueError, match="edge kind"):
        stream_edge("fade", frames, audio, labels, care, rng, 8.0, 16000)
