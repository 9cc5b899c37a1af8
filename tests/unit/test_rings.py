"""VideoRing and AudioRing: wrap-around, gaps, out-of-order, counters (examples + properties)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.ingest.rings import AudioRing, BufferPolicy, VideoRing

pytestmark = pytest.mark.unit

T0 = 1_795_929_600.0  # a capture-clock instant in 2026 (Unix seconds)


def frame(value: int, h: int = 4, w: int = 6) -> np.ndarray:
    """A frame whose every pixel encodes `value` (mod 256)."""
    return np.full((h, w, 3), value % 256, np.uint8)


# ---------------------------------------------------------------- VideoRing, examples


def test_video_ring_is_preallocated_and_drops_oldest() -> None:
    ring = VideoRing(3, 4, 6)
    assert ring.policy is BufferPolicy.DROP_OLDEST
    assert len(ring) == 0
    assert ring.newest_time is None
    assert ring.oldest_time is None
    for i in range(5):
        ring.push(frame(i), T0 + i)
    assert len(ring) == 3
    assert ring.oldest_time == T0 + 2
    assert ring.newest_time == T0 + 4
    assert ring.evicted == 2
    assert ring.overwritten == 2
    frames, times = ring.select(np.array([T0 + 2, T0 + 3, T0 + 4]))
    assert [int(f[0, 0, 0]) for f in frames] == [2, 3, 4]
    assert times.tolist() == [T0 + 2, T0 + 3, T0 + 4]


def test_video_select_newest_at_or_before_else_oldest() -> None:
    ring = VideoRing(8, 4, 6)
    for i in (1, 3, 5):
        ring.push(frame(i), T0 + i / 10)
    wanted = np.array([T0, T0 + 0.1, T0 + 0.29, T0 + 0.3, T0 + 0.45, T0 + 9])
    frames, times = ring.select(wanted)
    assert frames.shape == (6, 4, 6, 3)
    assert [int(f[0, 0, 0]) for f in frames] == [1, 1, 1, 3, 3, 5]
    assert times.tolist() == [T0 + 0.1, T0 + 0.1, T0 + 0.1, T0 + 0.3, T0 + 0.3, T0 + 0.5]


def test_video_select_returns_a_copy() -> None:
    ring = VideoRing(2, 4, 6)
    ring.push(frame(7), T0)
    frames, _ = ring.select(np.array([T0]))
    frames[:] = 0
    again, _ = ring.select(np.array([T0]))
    assert int(again[0, 0, 0, 0]) == 7


def test_video_select_into_out_buffer() -> None:
    ring = VideoRing(4, 4, 6)
    ring.push(frame(9), T0)
    out = np.empty((2, 4, 6, 3), np.uint8)
    frames, _ = ring.select(np.array([T0, T0 + 1]), out=out)
    assert frames is out
    assert int(out[1, 0, 0, 0]) == 9


def test_video_out_of_order_and_duplicates_are_rejected() -> None:
    ring = VideoRing(4, 4, 6)
    ring.push(frame(1), T0 + 1)
    ring.push(frame(2), T0 + 1)  # duplicate time
    ring.push(frame(3), T0 + 0.5)  # older
    ring.push(frame(4), T0 + 2)
    assert ring.rejected == 2
    assert len(ring) == 2
    assert ring.capture_times().tolist() == [T0 + 1, T0 + 2]


def test_video_wrong_shape_is_a_value_error() -> None:
    ring = VideoRing(4, 4, 6)
    with pytest.raises(ValueError, match="shape"):
        ring.push(np.zeros((6, 4, 3), np.uint8), T0)
    with pytest.raises(ValueError, match="shape"):
        ring.push(np.zeros((4, 6), np.uint8), T0)
    with pytest.raises(ValueError, match="positive"):
        VideoRing(0, 4, 6)


def test_video_empty_select_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        VideoRing(4, 4, 6).select(np.array([T0]))


def test_video_overwritten_counts_only_frames_never_selected() -> None:
    ring = VideoRing(2, 4, 6)
    ring.push(frame(0), T0)
    ring.push(frame(1), T0 + 1)
    ring.select(np.array([T0]))  # frame 0 used
    ring.push(frame(2), T0 + 2)  # evicts 0 (used)
    ring.push(frame(3), T0 + 3)  # evicts 1 (never used)
    assert ring.evicted == 2
    assert ring.overwritten == 1


def test_video_seen_time_follows_sampled_out_frames() -> None:
    ring = VideoRing(2, 4, 6)
    assert ring.seen_time is None
    ring.mark_seen(T0 + 1)
    assert ring.seen_time == T0 + 1
    assert ring.newest_time is None
    ring.push(frame(0), T0 + 2)
    assert ring.seen_time == T0 + 2
    ring.mark_seen(T0 + 1.5)  # older than what is stored: no effect
    assert ring.seen_time == T0 + 2


# ---------------------------------------------------------------- VideoRing, property


@settings(deadline=None)
@given(
    capacity=st.integers(1, 6),
    steps=st.lists(st.floats(-0.05, 0.1, allow_nan=False), min_size=1, max_size=40),
    wanted=st.lists(st.floats(-0.5, 3.0, allow_nan=False), min_size=1, max_size=10),
)
def test_video_ring_matches_a_list_model(
    capacity: int, steps: list[float], wanted: list[float]
) -> None:
    ring = VideoRing(capacity, 2, 3)
    accepted: list[tuple[float, int]] = []  # (time, frame id), the model: keep everything
    t, rejected = T0, 0
    for i, step in enumerate(steps):
        t += step
        if accepted and not t > accepted[-1][0]:
            rejected += 1
        else:
            accepted.append((t, i))
        ring.push(frame(i, 2, 3), t)
    kept = accepted[-capacity:]
    assert ring.rejected == rejected
    assert len(ring) == len(kept)
    assert ring.capture_times().tolist() == [k[0] for k in kept]
    assert ring.evicted == len(accepted) - len(kept)
    times = T0 + np.array(wanted)
    frames, chosen = ring.select(times)
    for w, f, c in zip(times, frames, chosen, strict=True):
        before = [k for k in kept if k[0] <= w]
        expect = before[-1] if before else kept[0]
        assert c == expect[0]
        assert int(f[0, 0, 0]) == expect[1] % 256


# ---------------------------------------------------------------- AudioRing, examples

SR = 1000  # a small rate keeps the numbers readable; the ring is rate-agnostic


def rel(gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Gap spans relative to T0, rounded to the microsecond."""
    return [(round(a - T0, 6), round(b - T0, 6)) for a, b in gaps]


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


def test_audio_contiguous_pushes_read_back_exactly() -> None:
    ring = AudioRing(SR, 1.0)
    assert ring.start_time is None
    assert ring.end_time is None
    for k in range(5):
        ring.push(ramp(k * 100, 100), T0 + k * 0.1)
    assert ring.start_time == T0
    assert ring.end_time == pytest.approx(T0 + 0.5)
    data, gaps = ring.read(T0 + 0.05, 300)
    assert gaps == []
    assert data.tolist() == ramp(50, 300).tolist()


def test_audio_wrap_around_keeps_the_newest_capacity() -> None:
    ring = AudioRing(SR, 0.25)  # 250 samples
    for k in range(7):
        ring.push(ramp(k * 60, 60), T0 + k * 0.06)
    assert ring.end_time == pytest.approx(T0 + 0.42)
    assert ring.start_time == pytest.approx(T0 + 0.17)
    data, gaps = ring.read(T0 + 0.17, 250)
    assert gaps == []
    assert data.tolist() == ramp(170, 250).tolist()
    old, old_gaps = ring.read(T0 + 0.1, 100)  # first 70 samples no longer kept
    assert old[:70].tolist() == [0.0] * 70
    assert old[70:].tolist() == ramp(170, 30).tolist()
    assert rel(old_gaps) == [(0.1, 0.17)]


def test_audio_jump_forward_is_a_gap_of_zeros_not_a_shift() -> None:
    ring = AudioRing(SR, 2.0)
    ring.push(ramp(1, 100), T0)
    ring.push(ramp(1001, 100), T0 + 0.3)  # 200 ms never received
    assert ring.end_time == pytest.approx(T0 + 0.4)  # the timeline is not shifted
    assert ring.gaps == 1
    assert ring.gap_seconds_total == pytest.approx(0.2)
    data, gaps = ring.read(T0, 400)
    assert data[:100].tolist() == ramp(1, 100).tolist()
    assert not data[100:300].any()
    assert data[300:].tolist() == ramp(1001, 100).tolist()
    assert rel(gaps) == [(0.1, 0.3)]


def test_audio_small_jitter_is_absorbed() -> None:
    ring = AudioRing(SR, 1.0, jitter_tolerance_s=0.003)
    ring.push(ramp(0, 100), T0)
    ring.push(ramp(100, 100), T0 + 0.1 + 0.0025)  # 2.5 samples late: jitter
    ring.push(ramp(200, 100), T0 + 0.2 - 0.002)  # 2 samples early: jitter
    assert ring.gaps == 0
    assert ring.overwritten_samples == 0
    data, gaps = ring.read(T0, 300)
    assert gaps == []
    assert data.tolist() == ramp(0, 300).tolist()


def test_audio_overlap_overwrites_and_is_counted() -> None:
    ring = AudioRing(SR, 1.0)
    ring.push(ramp(0, 100), T0)
    ring.push(np.full(50, -1, np.float32), T0 + 0.08)  # 20 overlap, 30 new
    assert ring.overwritten_samples == 20
    assert ring.end_time == pytest.approx(T0 + 0.13)
    data, gaps = ring.read(T0, 130)
    assert gaps == []
    assert data[:80].tolist() == ramp(0, 80).tolist()
    assert (data[80:] == -1).all()
    ring.push(np.full(10, 5, np.float32), T0 + 0.01)  # entirely inside: end unchanged
    assert ring.end_time == pytest.approx(T0 + 0.13)
    assert ring.overwritten_samples == 30


def test_audio_late_push_fills_a_gap_and_too_old_is_dropped() -> None:
    ring = AudioRing(SR, 0.5)
    ring.push(ramp(0, 100), T0)
    ring.push(ramp(300, 100), T0 + 0.3)  # gap [0.1, 0.3)
    ring.push(ramp(100, 100), T0 + 0.1)  # the late part arrives after all
    data, gaps = ring.read(T0 + 0.1, 200)
    assert rel(gaps) == [(0.2, 0.3)]
    assert data[:100].tolist() == ramp(100, 100).tolist()
    ring.push(ramp(0, 50), T0 - 0.2)  # older than the 500 samples kept
    assert ring.dropped_samples == 50


def test_audio_read_before_anything_is_all_gap() -> None:
    data, gaps = AudioRing(SR, 1.0).read(T0, 10)
    assert not data.any()
    assert rel(gaps) == [(0.0, 0.01)]


def test_audio_rejects_non_mono() -> None:
    with pytest.raises(ValueError, match="mono"):
        AudioRing(SR, 1.0).push(np.zeros((10, 2), np.float32), T0)


# ---------------------------------------------------------------- AudioRing, property


@dataclass
class TimelineModel:
    """An unbounded audio timeline with the ring's placement rules, no circular buffer."""

    capacity: int
    tolerance: float
    values: dict[int, float] = field(default_factory=dict)  # index -> sample (absent: gap)
    begin: int = 0
    end: int = 0
    started: bool = False
    gap_samples: int = 0
    overwritten: int = 0
    dropped: int = 0

    def push(self, data: np.ndarray, offset: float) -> None:
        if not self.started:
            self.started, index = True, 0
        else:
            index = self.end + (0 if abs(offset) <= self.tolerance else round(offset))
            if index > self.end:
                self.gap_samples += index - self.end
                self.end = index
        for j, value in enumerate(data.tolist()):
            i = index + j
            if i < self.end - self.capacity:
                self.dropped += 1
                continue
            if i < self.end:
                self.overwritten += 1
            self.values[i] = value
            self.begin = min(self.begin, i)
        self.end = max(self.end, index + len(data))

    def read(self, first: int, n: int) -> tuple[list[float], list[bool]]:
        lo = max(self.begin, self.end - self.capacity)
        out, valid = [], []
        for i in range(first, first + n):
            ok = lo <= i < self.end and i in self.values
            out.append(self.values[i] if ok else 0.0)
            valid.append(ok)
        return out, valid


push_op = st.tuples(
    st.integers(1, 120),  # samples in the push
    st.one_of(
        st.just(0.0),  # contiguous
        st.floats(-3.0, 3.0),  # jitter, inside the 4-sample tolerance
        st.integers(6, 400).map(float),  # gap
        st.integers(-400, -6).map(float),  # overlap / late
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(8, 300),
    ops=st.lists(push_op, min_size=1, max_size=40),
    read_from=st.integers(-350, 50),
    read_len=st.integers(0, 500),
)
def test_audio_ring_matches_an_unbounded_timeline(
    capacity: int, ops: list[tuple[int, float]], read_from: int, read_len: int
) -> None:
    ring = AudioRing(SR, capacity / SR, jitter_tolerance_s=4 / SR)
    model = TimelineModel(capacity, 4.0)
    serial = 0
    for n, offset in ops:
        data = np.arange(serial, serial + n, dtype=np.float32)
        serial += n
        t_first = T0 + (model.end + offset) / SR if model.started else T0
        model.push(data, (t_first - T0) * SR - model.end)
        ring.push(data, t_first)
    assert ring.end_time == pytest.approx(T0 + model.end / SR, abs=1e-6)
    assert ring.gap_seconds_total == pytest.approx(model.gap_samples / SR)
    assert ring.overwritten_samples == model.overwritten
    assert ring.dropped_samples == model.dropped
    first = model.end + read_from
    data, gaps = ring.read(T0 + first / SR, read_len)
    expect, valid = model.read(first, read_len)
    assert data.tolist() == expect
    flagged = np.zeros(read_len, bool)
    for a, b in gaps:
        assert a < b
        flagged[round((a - T0) * SR) - first : round((b - T0) * SR) - first] = True
    assert flagged.tolist() == [not v for v in valid]
    assert len(data) == read_len  # a gap never changes the length of a read
