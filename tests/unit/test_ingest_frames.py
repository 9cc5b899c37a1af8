"""StreamIngest fed decoded frames directly (no network): sampling, counts, windows, cleanup."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
import pytest

from engines.window import AudioSpec, VideoSpec, Window, WindowSpec
from stream.config import IngestConfig
from stream.ingest.stream_ingest import INLINE_RESIZE_MAX_PIXELS, StreamIngest
from stream.ingest.tracks import TrackTiming
from stream.metrics import Metrics

pytestmark = pytest.mark.unit

SPEC = WindowSpec(
    length_s=1.0,
    hop_s=0.5,
    video=VideoSpec(frames=8, fps=8.0, height=48, width=64),
    audio=AudioSpec(sample_rate=16_000, samples=16_000),
)


class Sink:
    def __init__(self) -> None:
        self.windows: list[Window] = []

    def submit(self, window: Window) -> None:
        self.windows.append(window)

    def stream_ended(self, stream: str) -> None:
        raise AssertionError("not expected here")


def video_frame(n: int, width: int = 320, height: int = 240) -> av.VideoFrame:
    image = np.full((height, width, 3), n % 256, np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts, frame.time_base = n * 3000, Fraction(1, 90_000)
    return frame


def audio_frame(n: int) -> av.AudioFrame:
    pcm = np.zeros((1, 960 * 2), np.int16)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = 48_000, n * 960, Fraction(1, 48_000)
    return frame


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def feed(ingest: StreamIngest, seconds: float, *, video: bool = True, audio: bool = True,
               resize_at: float | None = None) -> None:  # fmt: skip
    """Interleave 30 fps video and 50 fps audio frames in capture order, arriving on time."""
    tv, ta = TrackTiming("video", None), TrackTiming("audio", None)
    clock = [1_000.0]
    ingest._wall = lambda: clock[0]  # arrival time = capture time + a fixed 50 ms
    events = []
    if video:
        events += [(n / 30, "v", n) for n in range(round(seconds * 30))]
    if audio:
        events += [(n / 50, "a", n) for n in range(round(seconds * 50))]
    for t, kind, n in sorted(events):
        clock[0] = 1_000.05 + t
        if kind == "v":
            size = (640, 360) if resize_at is not None and t >= resize_at else (320, 240)
            await ingest.on_video_frame(video_frame(n, *size), tv)
        else:
            ingest.on_audio_frame(audio_frame(n), ta)


def make(metrics: Metrics, sink: Sink, *, video: bool = True, audio: bool = True) -> StreamIngest:
    return StreamIngest("cam", {"e": SPEC}, sink, metrics, IngestConfig.model_validate({}),
                        has_video=video, has_audio=audio)  # fmt: skip


async def test_frames_are_sampled_before_conversion_and_windows_cut_every_hop() -> None:
    metrics, sink = Metrics(process=False), Sink()
    ingest = make(metrics, sink)
    await feed(ingest, 6.0)
    assert counter(metrics, "scenestream_frames_received_total", kind="video") == 180
    assert counter(metrics, "scenestream_frames_received_total", kind="audio") == 300
    sampled = counter(metrics, "scenestream_frames_dropped_total", kind="video", reason="sampled")
    kept = 180 - sampled
    assert counter(metrics, "scenestream_frames_dropped_total", kind="video",
                   reason="ring_overflow") == 0  # fmt: skip
    ends = [w.end for w in sink.windows]
    assert len(ends) in (9, 10, 11)
    assert np.allclose(np.diff(ends), 0.5)
    covered = ends[-1] - (ends[0] - SPEC.length_s)  # only 8 fps over what windows cover is kept
    assert covered * 8 - 2 <= kept <= 6 * 8 + 2
    window = sink.windows[-1]
    assert window.video is not None
    assert window.video.shape == (8, 48, 64, 3)
    assert window.audio is not None
    assert window.audio.shape == (16_000,)
    assert not window.missing
    assert ingest.stats.windows == len(sink.windows)


async def test_audio_only_stream_marks_video_missing() -> None:
    metrics, sink = Metrics(process=False), Sink()
    await feed(make(metrics, sink, video=False), 3.0, video=False)
    assert sink.windows
    assert all(w.missing == frozenset({"video"}) for w in sink.windows)


async def test_resolution_change_keeps_the_engine_size() -> None:
    metrics, sink = Metrics(process=False), Sink()
    ingest = make(metrics, sink)
    await feed(ingest, 4.0, resize_at=2.0)
    assert ingest.stats.resolution == (640, 360)
    late = [w for w in sink.windows if w.start > 2.5]
    assert late
    assert all(w.video is not None and w.video.shape == (8, 48, 64, 3) for w in late)


async def test_close_releases_the_rings() -> None:
    metrics, sink = Metrics(process=False), Sink()
    ingest = make(metrics, sink)
    await feed(ingest, 1.5)
    ingest.close()
    assert ingest.video_rings == {}
    assert ingest.audio_rings == {}


async def test_frames_up_to_1080p_resize_on_the_loop_larger_in_the_executor() -> None:
    """A pool trip costs more than resizing a small frame; a 4K frame still leaves the loop."""
    assert 1920 * 1080 <= INLINE_RESIZE_MAX_PIXELS < 3840 * 2160
    threads: list[str] = []
    with ThreadPoolExecutor(1, thread_name_prefix="resize-test") as pool:
        ingest = StreamIngest("cam", {"e": SPEC}, Sink(), Metrics(process=False),
                              IngestConfig.model_validate({}), has_video=True, has_audio=False,
                              executor=pool)  # fmt: skip
        convert = ingest._convert

        def spy(frame: av.VideoFrame, sizes: list[tuple[int, int]]) -> object:
            threads.append(threading.current_thread().name)
            return convert(frame, sizes)

        ingest._convert = spy  # type: ignore[method-assign,assignment]
        track = TrackTiming("video", None)
        for n, size in enumerate([(1920, 1080), (3840, 2160)]):
            ingest._wall = lambda n=n: 1_000.0 + n * 4  # arrival keeps pace with the frames
            await ingest.on_video_frame(video_frame(n * 4, *size), track)
        ingest.close()
    assert len(threads) == 2
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("resize-test")


async def test_tick_cuts_the_window_that_waited_for_media_that_stopped() -> None:
    """Video stops before audio (the end of a file): the window past the last video frame is
    due once `max_wait_s` has passed, and only the tick can cut it (no frame arrives)."""
    metrics, sink = Metrics(process=False), Sink()
    ingest = make(metrics, sink)
    tv, ta = TrackTiming("video", None), TrackTiming("audio", None)
    clock = [1_000.0]
    ingest._wall = lambda: clock[0]
    events = sorted([(n / 30, "v", n) for n in range(75)] + [(n / 50, "a", n) for n in range(175)])
    for t, kind, n in events:  # video to 2.47 s, audio to 3.5 s (capture = 1000.05 + t)
        clock[0] = 1_000.05 + t
        if kind == "v":
            await ingest.on_video_frame(video_frame(n), tv)
        else:
            ingest.on_audio_frame(audio_frame(n), ta)
    cut = len(sink.windows)
    ingest.tick()  # nothing is due yet: the window ending at 1002.5+ still waits for video
    assert len(sink.windows) == cut
    clock[0] += 1.0
    ingest.tick()
    late = sink.windows[cut:]
    assert late, "the tick cut nothing"
    for w in late:  # past the last video frame: video is missing or a gap up to the end
        assert "video" in w.missing or (w.gaps and w.gaps[-1][1] >= w.end), w
    assert max(w.end for w in late) <= 1_000.05 + 3.5
