"""The A/V skew metric measures how far apart the audio and video content that windows pair is,
and the stream's clock kind is counted per kind (`scenestream_stream_clocks`)."""

from __future__ import annotations

import pytest

from stream.config import IngestConfig
from stream.ingest.clock import CaptureClock
from stream.ingest.stream_ingest import StreamIngest
from stream.ingest.tracks import TrackTiming
from stream.metrics import Metrics
from tests.unit.test_ingest_frames import SPEC, Sink, audio_frame, counter, video_frame

pytestmark = pytest.mark.unit

T0 = 1_000.0


async def _feed(video_behind_s: float, seconds: float = 8.0) -> tuple[Metrics, StreamIngest]:
    """30 fps video and 50 fps audio arriving on time; the Sender Reports (a sender clock
    trusted up to 10 s here) date the video's content `video_behind_s` before the audio's."""
    metrics = Metrics(process=False)
    config = IngestConfig.model_validate({"sender_clock_max_offset_s": 10.0})
    ingest = StreamIngest("cam", {"e": SPEC}, Sink(), metrics, config,
                          has_video=True, has_audio=True)  # fmt: skip
    clock = [T0]
    ingest._wall = lambda: clock[0]
    tv = TrackTiming("video", None, trust_offset_s=10.0)
    tv.clock = CaptureClock(90_000, trust_offset_s=10.0)  # its report came before any frame
    tv.clock.on_sender_report(T0 - video_behind_s, 0, T0)  # media time 0 captured then
    ta = TrackTiming("audio", None, trust_offset_s=10.0)
    ta.clock = CaptureClock(48_000, trust_offset_s=10.0)
    ta.clock.on_sender_report(T0, 0, T0)
    ingest._tracks += [tv, ta]  # what `read_track` does for a live track
    events = sorted([(n / 30, "v", n) for n in range(round(seconds * 30))]
                    + [(n / 50, "a", n) for n in range(round(seconds * 50))])  # fmt: skip
    for t, kind, n in events:
        clock[0] = T0 + 0.05 + t
        if kind == "v":
            await ingest.on_video_frame(video_frame(n), tv)
        else:
            ingest.on_audio_frame(audio_frame(n), ta)
    return metrics, ingest


async def test_four_seconds_between_audio_and_video_content_shows_in_the_skew() -> None:
    metrics, ingest = await _feed(video_behind_s=4.0)
    observed = counter(metrics, "scenestream_av_skew_seconds_count")
    total = counter(metrics, "scenestream_av_skew_seconds_sum")
    assert observed >= 5, "windows missing video must still be measured"
    assert total / observed == pytest.approx(4.0, abs=0.3)
    assert counter(metrics, "scenestream_av_skew_seconds_bucket", le="2.0") == 0
    assert ingest.clock == "sender"
    assert counter(metrics, "scenestream_stream_clocks", clock="sender") == 1


async def test_aligned_content_has_a_small_skew_and_the_clock_gauge_is_released() -> None:
    metrics, ingest = await _feed(video_behind_s=0.0)
    observed = counter(metrics, "scenestream_av_skew_seconds_count")
    assert observed >= 10
    assert counter(metrics, "scenestream_av_skew_seconds_bucket", le="0.1") == observed
    ingest.close()
    assert counter(metrics, "scenestream_stream_clocks", clock="sender") == 0
    assert counter(metrics, "scenestream_stream_clocks", clock="arrival") == 0
