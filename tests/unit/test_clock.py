"""Capture clock: NTP conversion, RTP unwrap, jitter smoothing, Sender Report switch and slew."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.ingest.clock import (
    CaptureClock,
    ClockAnchor,
    RtpUnwrapper,
    SlidingMin,
    skew,
    stream_clock,
    stream_now,
)
from stream.webrtc.ntp import NTP_UNIX_OFFSET, ntp_to_unix, unix_to_ntp

pytestmark = pytest.mark.unit

T0 = 1_795_929_600.0  # capture-clock instant in 2026 (Unix seconds)
MOD = 1 << 32


def rtp(rate: int, origin: int, capture: float) -> int:
    """The 32-bit RTP timestamp a sender with `origin` at T0 stamps on media captured then."""
    return (origin + round((capture - T0) * rate)) % MOD


# ---------------------------------------------------------------- helpers


def test_ntp_to_unix_known_values() -> None:
    assert ntp_to_unix(NTP_UNIX_OFFSET << 32) == 0.0
    assert ntp_to_unix(((NTP_UNIX_OFFSET + 10) << 32) + (1 << 31)) == 10.5
    # 2036-02-07 06:28:16 UTC: NTP seconds wrap to 0 (era 1)
    assert ntp_to_unix(0) == MOD - NTP_UNIX_OFFSET


@settings(deadline=None)
@given(st.floats(0.0, 4.0e9, allow_nan=False))
def test_ntp_round_trip_across_eras(unix: float) -> None:
    assert ntp_to_unix(unix_to_ntp(unix)) == pytest.approx(unix, abs=1e-6)


def test_skew_sign() -> None:
    assert skew(10.05, 10.0) == pytest.approx(0.05)
    assert skew(10.0, 10.05) == pytest.approx(-0.05)


def test_a_sender_report_far_from_the_media_does_not_move_the_unwrap_reference() -> None:
    u = RtpUnwrapper()
    assert u.unwrap(MOD - 90_000) == MOD - 90_000  # one second before the 32-bit wrap
    far = (MOD - 90_000 + MOD // 2 + 10) % MOD  # a broken sender's report, half the range away
    assert u.unwrap(far, track=False) == MOD - 90_000 - (MOD // 2 - 10)
    assert u.unwrap(9_000) == MOD + 9_000  # the next packet still unwraps past the wrap


def test_unwrap_across_2_32_and_reordering() -> None:
    u = RtpUnwrapper()
    assert u.unwrap(MOD - 10) == MOD - 10
    assert u.unwrap(5) == MOD + 5  # wrapped forwards
    assert u.unwrap(MOD - 2) == MOD - 2  # a late packet from before the wrap
    assert u.unwrap(20) == MOD + 20


@settings(deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60), st.integers(1, 8))
def test_sliding_min_matches_brute_force(values: list[float], size: int) -> None:
    window = SlidingMin(size)
    for i, v in enumerate(values):
        assert window.push(v) == min(values[max(0, i + 1 - size) : i + 1])


# ---------------------------------------------------------------- arrival mapping


def test_jitter_estimate_stays_within_the_minimum_delay() -> None:
    rng = np.random.default_rng(7)
    rate, origin, base_delay = 90_000, int(rng.integers(0, MOD)), 0.012
    clock = CaptureClock(rate, smoothing_window=64)
    previous = -np.inf
    for i in range(300):  # 10 s of 30 fps video
        captured = T0 + i / 30
        arrival = captured + base_delay + rng.uniform(0.0, 0.040)
        estimate = clock.capture_time(rtp(rate, origin, captured), arrival)
        assert estimate > previous  # never backwards, even while the minimum settles
        previous = estimate
        assert estimate >= captured + base_delay - 1e-9  # jitter only delays
        if i >= 64:
            assert estimate - captured - base_delay < 0.004
    assert not clock.synced


def test_wrap_around_at_2_32_is_seamless() -> None:
    rate = 90_000
    origin = MOD - rate  # wraps after one second
    clock = CaptureClock(rate)
    estimates = [
        clock.capture_time(rtp(rate, origin, T0 + i / 30), T0 + i / 30 + 0.01) for i in range(90)
    ]
    steps = np.diff(estimates)
    assert np.allclose(steps, 1 / 30, atol=1e-6)
    assert estimates[-1] == pytest.approx(T0 + 89 / 30 + 0.01, abs=1e-6)


def test_arrival_offset_follows_slower_network_after_the_window() -> None:
    clock = CaptureClock(48_000, smoothing_window=10)
    for i in range(30):
        delay = 0.01 if i < 15 else 0.05  # the path got 40 ms slower
        t = T0 + i * 0.02
        estimate = clock.capture_time(rtp(48_000, 0, t), t + delay)
    assert estimate == pytest.approx(T0 + 29 * 0.02 + 0.05, abs=1e-6)


# ---------------------------------------------------------------- Sender Reports


def test_sender_report_switch_slews_backwards_without_reordering() -> None:
    rate, origin, delay = 90_000, 123_456, 0.030
    clock = CaptureClock(rate, max_slew=0.1)
    times = [T0 + i / 30 for i in range(120)]
    out = []
    for i, t in enumerate(times):
        if i == 30:  # the SR says capture was 30 ms earlier than arrival suggests
            clock.on_sender_report(t - 0.001, rtp(rate, origin, t - 0.001), t + 0.02)
            assert clock.synced
            assert clock.correction_s == pytest.approx(delay, abs=1e-6)
        out.append(clock.capture_time(rtp(rate, origin, t), t + delay))
    assert all(b > a for a, b in itertools.pairwise(out))
    assert out[29] == pytest.approx(times[29] + delay, abs=1e-6)  # arrival mapping
    # 30 ms slewed at 10 %: converged 0.3 s of media after the switch (frame 30 + 9)
    assert np.allclose(np.array(out[40:]) - np.array(times[40:]), 0.0, atol=1e-6)
    assert clock.correction_s == pytest.approx(0.0, abs=1e-9)


def test_sender_clock_slightly_ahead_is_wall_clock_clamped_to_arrival() -> None:
    rate, origin, delay = 48_000, 99, 0.2  # media arrives 200 ms after capture
    clock = CaptureClock(rate)
    for i in range(10):
        t = T0 + i * 0.02
        assert clock.capture_time(rtp(rate, origin, t), t + delay) == pytest.approx(t + delay)
    assert clock.kind == "arrival"
    t = T0 + 0.2
    # the sender's clock is 230 ms ahead of ours: 30 ms more than arrival allows, within the
    # tolerance for clocks that are merely not perfectly synchronised
    clock.on_sender_report(t + 0.23, rtp(rate, origin, t), t + delay)
    assert clock.kind == "sender"
    arrival = t + 0.02 + delay
    assert clock.capture_time(rtp(rate, origin, t + 0.02), arrival) == pytest.approx(arrival)
    assert clock.lag == pytest.approx(0.0, abs=1e-9)
    burst = t + 0.2 + delay  # three frames arriving at once after a stall keep their order
    times = [clock.capture_time(rtp(rate, origin, t + k * 0.02), burst) for k in (8, 9, 10)]
    assert times[0] < times[1] < times[2] <= burst


def test_sender_clock_ahead_of_arrival_is_relative_and_never_after_arrival() -> None:
    rate, origin, delay = 48_000, 99, 0.005
    clock = CaptureClock(rate, trust_offset_s=1.0)
    sender_ahead = 2.0  # GStreamer-like: the report's clock runs 2 s ahead of ours
    captures, times = [], []
    for i in range(100):
        t = T0 + i * 0.02
        if i == 10:
            clock.on_sender_report(t + sender_ahead, rtp(rate, origin, t), t + delay)
        arrival = t + delay + (0.01 if i % 3 else 0.0)  # jitter only delays
        captured = clock.capture_time(rtp(rate, origin, t), arrival)
        assert captured <= arrival
        captures.append(captured)
        times.append(t)
    assert clock.kind == "relative"
    assert clock.synced
    assert clock.sender_delay == pytest.approx(delay - sender_ahead, abs=1e-6)
    assert all(b > a for a, b in itertools.pairwise(captures))  # never backwards
    # anchored on the least-delayed arrival
    assert np.allclose(np.array(captures[20:]) - np.array(times[20:]), delay, atol=1e-6)


@pytest.mark.parametrize("sender_offset", [5.0, -5.0])
def test_relative_clock_keeps_tracks_aligned(sender_offset: float) -> None:
    """A sender clock 5 s off either way is not wall-clock, yet audio and video captured at the
    same instant still get the same capture time (video arrives 40 ms after audio)."""
    anchor = ClockAnchor()
    audio = CaptureClock(48_000, trust_offset_s=1.0, anchor=anchor)
    video = CaptureClock(90_000, trust_offset_s=1.0, anchor=anchor)
    for i in range(200):
        t = T0 + i * 0.02
        if i == 5:
            audio.on_sender_report(t + sender_offset, rtp(48_000, 7, t), t + 0.02)
            video.on_sender_report(t + sender_offset, rtp(90_000, 11, t), t + 0.06)
        a = audio.capture_time(rtp(48_000, 7, t), t + 0.02)
        v = video.capture_time(rtp(90_000, 11, t), t + 0.06)
        assert a <= t + 0.02
        assert v <= t + 0.06
        if i > 150:  # converged: one timeline, anchored at the earliest arrival (audio's)
            assert skew(a, v) == pytest.approx(0.0, abs=1e-6)
            assert a == pytest.approx(t + 0.02, abs=1e-6)
    assert audio.kind == video.kind == "relative"
    assert stream_clock(audio, video) == "relative"


def test_relative_tracks_that_disagree_are_each_anchored_on_their_own_arrival() -> None:
    """GStreamer-like: the video report's clock is 4 s off the audio report's. Aligning on it
    would put video 4 s before its arrival (every window missing video); instead each track
    stays on its own arrival."""
    anchor = ClockAnchor()
    audio = CaptureClock(48_000, trust_offset_s=1.0, anchor=anchor)
    video = CaptureClock(90_000, trust_offset_s=1.0, anchor=anchor)
    for i in range(200):
        t = T0 + i * 0.02
        if i == 5:
            audio.on_sender_report(t - 2.0, rtp(48_000, 7, t), t + 0.02)
            video.on_sender_report(t - 6.0, rtp(90_000, 11, t), t + 0.06)
        a = audio.capture_time(rtp(48_000, 7, t), t + 0.02)
        v = video.capture_time(rtp(90_000, 11, t), t + 0.06)
        if i > 150:
            assert a == pytest.approx(t + 0.02, abs=1e-6)
            assert v == pytest.approx(t + 0.06, abs=1e-6)
    assert audio.kind == video.kind == "relative"


def test_sender_clock_within_the_bound_is_wall_clock() -> None:
    clock = CaptureClock(90_000, trust_offset_s=0.5)
    for i in range(30):
        t = T0 + i / 30
        clock.capture_time(rtp(90_000, 1, t), t + 0.3)
    t = T0 + 1.0
    clock.on_sender_report(t, rtp(90_000, 1, t), t + 0.3)
    assert clock.kind == "sender"
    assert clock.sender_delay == pytest.approx(0.3, abs=1e-6)
    strict = CaptureClock(90_000, trust_offset_s=0.2)  # the same sender, a tighter bound
    for i in range(30):
        t = T0 + i / 30
        strict.capture_time(rtp(90_000, 1, t), t + 0.3)
    strict.on_sender_report(T0 + 1.0, rtp(90_000, 1, T0 + 1.0), T0 + 1.3)
    assert strict.kind == "relative"
    assert stream_clock(clock) == "sender"
    assert stream_clock(clock, strict) == "relative"
    assert stream_clock(CaptureClock(48_000), None) == "arrival"


def test_later_sender_reports_correct_rtp_clock_drift() -> None:
    rate, origin = 48_000, 5
    drift = 1e-4  # the sender's audio clock runs 100 ppm fast

    def stamp(t: float) -> int:
        return (origin + round((t - T0) * rate * (1 + drift))) % MOD

    clock = CaptureClock(rate)
    clock.on_sender_report(T0, stamp(T0), T0)
    late = T0 + 20.0
    error_before = clock.capture_time(stamp(late), late + 0.05) - late  # 50 ms network
    clock.on_sender_report(late - 0.5, stamp(late - 0.5), late - 0.45)
    error_after = clock.capture_time(stamp(late + 0.1), late + 0.15) - (late + 0.1)
    assert error_before == pytest.approx(20.0 * drift, rel=0.01)  # 2 ms off before
    assert abs(error_after) < 1e-4  # ~0.06 ms after the refresh


def test_two_tracks_with_random_origins_map_to_the_same_instant() -> None:
    rng = np.random.default_rng(3)
    audio, video = CaptureClock(48_000), CaptureClock(90_000)
    a0, v0 = (int(x) for x in rng.integers(0, MOD, 2))
    sender_offset = -0.35  # sender clock vs ours: only the SR mapping knows it
    for i in range(300):
        t = T0 + i * 0.02
        a = audio.capture_time(rtp(48_000, a0, t), t + 0.02 + rng.uniform(0, 0.01))
        v = video.capture_time(rtp(90_000, v0, t), t + 0.05 + rng.uniform(0, 0.01))
        if i == 20:
            audio.on_sender_report(t + sender_offset, rtp(48_000, a0, t), t + 0.02)
        if i == 35:
            video.on_sender_report(t + sender_offset, rtp(90_000, v0, t), t + 0.05)
        if i > 250:  # both synced, and ~0.4 s slewed out at 10 % (4 s of media)
            assert a == pytest.approx(t + sender_offset, abs=2e-5)
            assert v == pytest.approx(t + sender_offset, abs=2e-5)
            assert abs(skew(a, v)) < 3e-5
    local = T0 + 20.0
    now = stream_now(local, audio, video)
    assert now == pytest.approx(local - 0.05 - 0.35, abs=0.002)  # the slower track wins


def test_sender_report_before_any_packet() -> None:
    clock = CaptureClock(90_000)
    clock.on_sender_report(T0, 1000, T0 + 0.01)
    assert clock.capture_time(1000 + 90_000, T0 + 1.02) == pytest.approx(T0 + 1.0, abs=1e-9)
    assert clock.capture_now(T0 + 2.0) == pytest.approx(T0 + 2.0 - 0.02, abs=1e-9)


def test_report_without_a_time_is_ignored() -> None:
    clock = CaptureClock(90_000)
    t = clock.capture_time(1000, T0 + 0.01)
    clock.on_sender_report(ntp_to_unix(0), 0, T0 + 0.5)  # aiortc before its first packet
    assert not clock.synced
    assert clock.ignored_reports == 1
    assert clock.capture_time(1000 + 9000, T0 + 0.11) == pytest.approx(t + 0.1, abs=1e-9)


def test_capture_now_without_media_is_local_time() -> None:
    assert CaptureClock(48_000).capture_now(5.0) == 5.0
    assert stream_now(5.0) == 5.0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="clock_rate"):
        CaptureClock(0)
    with pytest.raises(ValueError, match="max_slew"):
        CaptureClock(90_000, max_slew=1.0)
    with pytest.raises(ValueError, match="size"):
        SlidingMin(0)
