"""Pulled cameras' pure parts: URL redaction, input options, config validation, timing."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stream.config import CameraConfig, ConfigError, load_settings
from stream.ingest.camera import CLOCK_RATE, PulledTiming, input_options, redact
from stream.ingest.clock import CaptureClock


def test_redact_hides_credentials() -> None:
    assert redact("rtsp://admin:pw@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact("rtsp://10.0.0.5/stream1") == "rtsp://10.0.0.5/stream1"


def test_rtsp_defaults_to_tcp_unless_the_camera_says_otherwise() -> None:
    tcp = input_options(CameraConfig(id="a", url="rtsp://h/s"))
    assert tcp == {"rtsp_transport": "tcp"}
    udp = input_options(CameraConfig(id="a", url="rtsp://h/s", options={"rtsp_transport": "udp"}))
    assert udp == {"rtsp_transport": "udp"}
    assert input_options(CameraConfig(id="a", url="srt://h:9000")) == {}


def test_config_refuses_other_schemes_bad_ids_and_repeats() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.0\.url"):
        load_settings(None, cameras=[{"id": "a", "url": "file:///etc/passwd"}])
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


def test_sender_report_time_puts_both_tracks_on_the_camera_clock() -> None:
    clock = CaptureClock(CLOCK_RATE)
    clock.on_sender_report(1_000.0, 0, 1_000.2)  # pts 0 was captured at 1000.0
    audio, video = PulledTiming("audio", clock), PulledTiming("video", clock)
    assert audio.capture_time(_audio(48_000), arrival=1_001.3) == pytest.approx(1_001.0)
    assert video.capture_time(_video(90_000), arrival=1_001.4) == pytest.approx(1_001.0)


def test_without_sender_reports_one_offset_serves_both_tracks() -> None:
    clock = CaptureClock(CLOCK_RATE)
    audio, video = PulledTiming("audio", clock), PulledTiming("video", clock)
    a = audio.capture_time(_audio(0), arrival=50.0)
    v = video.capture_time(_video(0), arrival=50.0)
    assert a == v == pytest.approx(50.0)  # same pts, same instant, whatever each one's delay
