"""Audio held between cuts and resampled in one call: same samples as frame-by-frame
resampling, runs split where the timeline breaks, a bound on what is held."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
import pytest

from stream.ingest.audio_batch import AudioBatcher

pytestmark = pytest.mark.unit

RATE_IN, FRAME = 48_000, 960


def frames(signal: npt.NDArray[np.float64], layout: str = "stereo") -> list[av.AudioFrame]:
    """`signal` as 20 ms s16 frames, the way aiortc's Opus decoder hands them over."""
    channels = 2 if layout == "stereo" else 1
    out = []
    for i in range(len(signal) // FRAME):
        pcm = np.round(signal[i * FRAME : (i + 1) * FRAME] * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(pcm, channels).reshape(1, -1), format="s16", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = RATE_IN, i * FRAME, Fraction(1, RATE_IN)
        out.append(frame)
    return out


def tone(seconds: float, hz: float = 440.0) -> npt.NDArray[np.float64]:
    return 0.5 * np.sin(2 * np.pi * hz * np.arange(int(RATE_IN * seconds)) / RATE_IN)


def one_by_one(items: list[av.AudioFrame]) -> npt.NDArray[np.float32]:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    out = [f.to_ndarray().reshape(-1) for frame in items for f in resampler.resample(frame)]
    return np.concatenate(out)


def test_one_call_gives_the_samples_of_frame_by_frame_resampling() -> None:
    items = frames(tone(1.0))
    batcher = AudioBatcher(16_000)
    for i, frame in enumerate(items):
        batcher.add(frame, 10.0 + i * 0.02)
    [(samples, t_first)] = batcher.flush()
    assert t_first == 10.0
    reference = one_by_one(items)
    assert samples.dtype == np.float32
    assert len(samples) == len(reference)
    np.testing.assert_allclose(samples, reference, atol=1e-4)
    assert batcher.flush() == []
    assert batcher.held_s == 0.0


def test_a_gap_a_repeat_or_a_new_layout_starts_a_new_run() -> None:
    stereo, mono = frames(tone(0.12)), frames(tone(0.1), layout="mono")
    batcher = AudioBatcher(16_000)
    times = [0.0, 0.02, 0.04 + 0.001]  # 1 ms late: jitter, the same run
    times += [0.2, 0.22]  # 140 ms of loss: a new run
    times += [0.22]  # a repeat: a new run
    for frame, t in zip(stereo, times, strict=True):
        batcher.add(frame, t)
    batcher.add(mono[0], 0.26)  # a different layout: a new run
    runs = batcher.flush()
    assert [round(t, 3) for _, t in runs] == [0.0, 0.2, 0.22, 0.26]
    assert all(s.dtype == np.float32 and s.ndim == 1 for s, _ in runs)


def test_add_says_when_enough_is_held() -> None:
    batcher = AudioBatcher(16_000, max_held_s=0.1)
    results = [batcher.add(frame, i * 0.02) for i, frame in enumerate(frames(tone(0.2)))]
    assert results[:4] == [False] * 4
    assert results[4] is True  # 5 frames = 100 ms
    assert batcher.held_s == pytest.approx(0.2)
