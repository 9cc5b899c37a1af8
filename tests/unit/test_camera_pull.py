"""Pulled cameras' pure parts: URL redaction, input options, config validation, timing."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import numpy as np
import pytest

from stream.config import CameraConfig, ConfigError, load_settings
from stream.ingest.camera import failure_reason, input_options, redact
from stream.ingest.clock import ClockAnchor
from stream.ingest.pulled_timing import PulledTiming, SenderTime, carried


def test_redact_hides_credentials() -> None:
    assert redact("rtsp://admin:pw@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact("rtsp://10.0.0.5/stream1") == "rtsp://10.0.0.5/stream1"


def test_failure_reasons_never_carry_the_password() -> None:
    url = "rtsps://admin:hunter2@10.0.0.5:322/stream1"
    error = OSError(
        f"[Errno 825242872] Server returned 401 Unauthorized (authorization failed): '{url}'"
    )
    reason = failure_reason(error, url)
    assert "hunter2" not in reason
    assert reason.endswith("'rtsps://***@10.0.0.5:322/stream1'")


def test_rtsp_defaults_to_tcp_unless_the_camera_says_otherwise() -> None:
    tcp = input_options(CameraConfig(id="a", url="rtsp://h/s"))
    assert tcp == {"rtsp_transport": "tcp"}
    udp = input_options(CameraConfig(id="a", url="rtsp://h/s", options={"rtsp_transport": "udp"}))
    assert udp == {"rtsp_transport": "udp"}
    assert input_options(CameraConfig(id="a", url="rtmp://h/live/cam")) == {}


def test_config_refuses_other_schemes_bad_ids_and_repeats() -> None:
    for url in ("file:///etc/passwd", "srt://h:9000", "/dev/video0"):
        with pytest.raises(ConfigError, match=r"cameras\.0\.url"):
            load_settings(None, cameras=[{"id": "a", "url": url}])
    with pytest.raises(ConfigError, match=r"cameras\.0\.id"):
        load_settings(None, cameras=[{"id": "no spaces", "url": "rtsp://h/s"}])
    with pytest.raises(ConfigError, match="repeated: a"):
        load_settings(None, cameras=[{"id": "a", "url": "rtsp://h/1"},
                                     {"id": "a", "url": "rtsp://h/2"}])  # fmt: skip
    settings = load_settings(None, cameras=[{"id": "a", "url": "rtsps://h/1"}])
    assert settings.cameras[0].url == "rtsps://h/1"


def _audio(pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 48_000, pts, Fraction(1, 48_000)
    return frame


def _video(pts: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
    frame.pts, frame.time_base = pts, Fraction(1, 90_000)
    return frame


def test_both_tracks_are_mapped_by_arrival() -> None:
    audio, video = PulledTiming("audio"), PulledTiming("video")
    assert audio.capture_time(_audio(0), arrival=50.0) == pytest.approx(50.0)
    assert video.capture_time(_video(0), arrival=50.1) == pytest.approx(50.1)
    # Jitter only delays: a frame that comes early moves the mapping, a late one does not.
    assert audio.capture_time(_audio(48_000), arrival=51.2) == pytest.approx(51.0)


def test_a_step_in_pts_restarts_the_mapping_instead_of_slewing() -> None:
    video = PulledTiming("video")
    for n in range(10):
        assert video.capture_time(_video(n * 3_000), arrival=100 + n / 30) == pytest.approx(
            100 + n / 30
        )
    # FFmpeg moved the track onto the Sender Report timeline: pts jump ahead by 20 s.
    t = video.capture_time(_video(20 * 90_000 + 10 * 3_000), arrival=100 + 10 / 30)
    assert t == pytest.approx(100 + 10 / 30)  # still on time, not 20 s in the future
    assert video.restarts == 1


def _live(
    timing: PulledTiming,
    *,
    camera_offset: float,
    start: float,
    seconds: float,
    burst_s: float = 0.0,
    delay: float = 0.02,
) -> list[tuple[float, float, float]]:
    """Feed `seconds` of 20 ms audio frames; the camera's clock is ours plus `camera_offset`.
    The first `burst_s` of media arrives at once (FFmpeg's probing burst). Every frame carries
    its reference time (as FFmpeg's `prft`), the first one a new report. Returns
    (camera wall time, our arrival, capture time) per frame."""
    out = []
    for n in range(round(seconds * 50)):
        media = n * 0.02
        captured = start + media  # on our clock
        arrival = max(captured, start + burst_s) + delay
        wall = captured + camera_offset
        timing.on_sender_time(SenderTime(wall, media, arrival, new_report=n == 0))
        t = timing.capture_time(_audio(n * 960), arrival)
        assert t is not None
        out.append((wall, arrival, t))
    return out


def test_a_camera_clock_that_agrees_with_arrival_is_wall_clock() -> None:
    timing = PulledTiming("audio")
    frames = _live(timing, camera_offset=0.0, start=1000.0, seconds=4.0)
    assert timing.clock is not None
    assert timing.clock.kind == "sender"
    for wall, arrival, t in frames[5:]:
        assert t == pytest.approx(wall, abs=1e-6)  # the camera's capture time, not arrival
        assert t <= arrival


def test_a_camera_clock_far_from_ours_is_relative_and_never_ahead_of_arrival() -> None:
    timing = PulledTiming("audio")
    frames = _live(timing, camera_offset=-7.0, start=1000.0, seconds=4.0)  # 7 s behind
    assert timing.clock is not None
    assert timing.clock.kind == "relative"
    for _, arrival, t in frames:
        assert arrival - 0.05 <= t <= arrival  # anchored on arrival (least delay), not 7 s off


def test_after_the_connection_burst_frames_reach_the_camera_clock_within_seconds() -> None:
    timing = PulledTiming("audio")
    frames = _live(timing, camera_offset=0.0, start=1000.0, seconds=6.0, burst_s=1.0)
    times = [t for _, _, t in frames]
    assert all(b >= a for a, b in itertools.pairwise(times))  # never backwards
    assert all(t <= arrival for _, arrival, t in frames)
    assert timing.clock is not None
    assert timing.clock.kind == "sender"  # judged again after it
    settled = [(wall, t) for wall, _, t in frames if wall >= 1000.0 + 3.5]
    assert settled
    assert all(t == pytest.approx(wall, abs=1e-3) for wall, t in settled)


def test_the_tracks_of_a_camera_share_one_anchor() -> None:
    anchor = ClockAnchor()
    audio = PulledTiming("audio", anchor=anchor)
    video = PulledTiming("video", anchor=anchor)
    for n in range(100):
        media = n * 0.04
        tracks = ((audio, _audio(n * 1920), 0.01), (video, _video(n * 3600), 0.06))
        for timing, frame, delay in tracks:
            arrival = 500.0 + media + delay
            timing.on_sender_time(SenderTime(500.0 + media - 9.0, media, arrival, n == 0))
            assert timing.capture_time(frame, arrival) is not None
    assert audio.clock is not None
    assert video.clock is not None
    assert audio.clock.kind == video.clock.kind == "relative"
    # One timeline: the same media instant maps to the same capture time on both tracks.
    a = audio.capture_time(_audio(100 * 1920), 500.0 + 4.0 + 0.01)
    v = video.capture_time(_video(100 * 3600), 500.0 + 4.0 + 0.06)
    assert a is not None
    assert v is not None
    assert a == pytest.approx(v, abs=1e-3)


def test_a_new_report_waits_for_a_frame_of_its_track() -> None:
    report = SenderTime(10.0, 0.0, 10.01, new_report=True)
    plain = SenderTime(10.02, 0.02, 10.03, new_report=False)
    newer_report = SenderTime(10.04, 0.04, 10.05, new_report=True)
    assert carried(None, plain) is plain
    assert carried(report, plain) is report  # the packet decoded to no frame: keep the report
    assert carried(report, newer_report) is newer_report
    assert carried(plain, report) is report
