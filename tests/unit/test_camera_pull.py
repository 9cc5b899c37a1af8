"""Pulled cameras' pure parts: URL redaction, input options, config validation, timing."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from stream.config import CameraConfig, ConfigError, load_settings
from stream.ingest.camera import PulledTiming, input_options, redact


def test_redact_hides_credentials() -> None:
    assert redact("rtsp://admin:pw@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert redact("rtsp://10.0.0.5/stream1") == "rtsp://10.0.0.5/stream1"


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
