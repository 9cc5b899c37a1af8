"""Live ingest of one stream: stamp capture times, fill rings, cut windows.

Readers hand it decoded frames (`stream.ingest.webrtc_reader` for a WHIP stream's tracks,
`stream.ingest.camera` for a pulled camera), and it does only cheap work per frame (aiortc's
own queues are unbounded, so a slow reader would grow latency without end): a video frame is
first checked against what the windows will pick (`WindowCutter.wants_frame`: dropped as
`sampled` before any pixel work, so the rings fill at the engines' frame rate), then resized
once by swscale to each engine input size (≈0.2–0.6 ms up to 1080p, so it stays on the loop;
larger frames go to the executor); audio frames are held as they arrive and resampled to each
engine rate in one call just before the windows are cut (`stream.ingest.audio_batch`). After
every frame each engine's `WindowCutter` is polled once media has reached its next window end,
and its windows are handed to the `WindowSink`, which must not block.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import Interpolation, VideoReformatter

from engines.window import Window, WindowSpec
from stream.config import IngestConfig
from stream.ingest.audio_batch import AudioBatcher
from stream.ingest.clock import ClockAnchor, ClockKind, stream_clock, stream_now
from stream.ingest.cutter import WindowCutter
from stream.ingest.rings import AudioRing, VideoRing
from stream.ingest.tracks import TrackTiming
from stream.ingest.window_sink import WindowSink
from stream.metrics import Metrics

logger = logging.getLogger(__name__)

INGEST_ENGINE_LABEL = "all"  # stage="ingest" is shared by every engine
_AREA = Interpolation.AREA  # area averaging: the clean downscale
# Up to 1080p a resize costs less than its trip through a thread pool (0.2 ms at 640x480 and
# 0.6 ms at 1920x1080 to 224x224, against ~0.1 ms of wake-ups and future callbacks, which made
# ingest ~4 % dearer in CPU at 4 streams), so it runs on the loop; larger frames go to the pool.
INLINE_RESIZE_MAX_PIXELS = 1920 * 1080


@dataclass(slots=True)
class IngestStats:
    """Per-stream figures served by `/api/streams` (no per-stream Prometheus labels)."""

    received: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    dropped: dict[str, int] = field(default_factory=dict)  # "kind:reason" -> count
    windows: int = 0
    last_window_latency_s: float | None = None  # cut (wall) minus window end (capture clock)
    resolution: tuple[int, int] | None = None  # (width, height) of the latest video frame
    _fps_window: list[float] = field(default_factory=list)

    def frame(self, kind: str, mono: float) -> None:
        self.received[kind] = self.received.get(kind, 0) + 1
        if kind == "video":
            self._fps_window.append(mono)
            if len(self._fps_window) > 61:
                del self._fps_window[0]

    def fps(self, mono: float) -> float:
        """Video frames per second over the last ~2 s (0 once frames stop for a second)."""
        times = self._fps_window
        if len(times) < 2 or mono - times[-1] > 1.0:
            return 0.0
        return (len(times) - 1) / max(1e-6, times[-1] - times[0])


class StreamIngest:
    """Rings, capture clocks and window cutters of one live stream, fed by its track readers."""

    def __init__(
        self,
        stream: str,
        specs: Mapping[str, WindowSpec],
        sink: WindowSink,
        metrics: Metrics,
        config: IngestConfig,
        *,
        has_video: bool,
        has_audio: bool,
        wall_clock: Callable[[], float] = time.time,
        executor: Executor | None = None,
    ) -> None:
        self.stream = stream
        self.stats = IngestStats()
        self.last_media = time.monotonic()
        self._sink, self._metrics, self._wall = sink, metrics, wall_clock
        self._executor = executor  # frame resizing; None resizes on the loop (tests, tools)
        self._trust_offset_s = config.sender_clock_max_offset_s
        self._anchor = ClockAnchor()  # one sender timeline for the stream's tracks
        self.clock: ClockKind = "arrival"
        self._clock_gauge: Any = metrics.stream_clocks  # None once closed
        self._clock_gauge.labels(clock=self.clock).inc()
        specs = {
            name: spec
            for name, spec in specs.items()
            if WindowCutter.serves(spec, has_video=has_video, has_audio=has_audio)
        }
        self._specs = specs
        video_specs = [s.video for s in specs.values() if s.video is not None and has_video]
        fps = max((v.fps for v in video_specs), default=0.0)
        capacity = max(2, math.ceil(config.ring_seconds * fps) + 1)
        self.video_rings = {
            (v.height, v.width): VideoRing(capacity, v.height, v.width) for v in video_specs
        }
        rates = {s.audio.sample_rate for s in specs.values() if s.audio is not None and has_audio}
        self.audio_rings = {rate: AudioRing(rate, config.ring_seconds) for rate in rates}
        self._batchers: dict[int, AudioBatcher] = {}  # audio held until the next cut
        self._cutters = {
            name: WindowCutter(
                stream, name, spec, max_wait_s=config.max_wait_s,
                has_video=has_video, has_audio=has_audio,
            )
            for name, spec in specs.items()
        }  # fmt: skip
        self._cutters_by_size = {
            size: [
                self._cutters[n]
                for n, s in specs.items()
                if s.video and (s.video.height, s.video.width) == size
            ]
            for size in self.video_rings
        }
        self._tracks: list[TrackTiming] = []
        self._reached = -math.inf  # newest capture time any modality has reached
        self._due_at = -math.inf  # earliest next window end among the cutters
        self._pre_grid: dict[tuple[int, int], int] = {}  # frames pushed before the grid, by ring
        # A reformatter keeps its swscale context between frames (`frame.reformat` builds a new
        # one every call: ~2 ms a frame); one thread, because sliced scaling of a small output
        # costs about twice the CPU in wake-ups. About 0.3 ms a frame in all.
        self._reformatters = {size: VideoReformatter() for size in self.video_rings}
        # Metric children resolved once: `labels()` takes a lock and a dict lookup per call.
        self._received = {k: metrics.frames_received.labels(kind=k) for k in ("video", "audio")}
        self._dropped: dict[str, Any] = {}
        self._ingest_seconds = metrics.stage_seconds.labels("ingest", INGEST_ENGINE_LABEL)

    # -- readers -----------------------------------------------------------------------------

    @property
    def anchor(self) -> ClockAnchor:
        """The stream's sender-timeline anchor (its tracks' clocks share it)."""
        return self._anchor

    @property
    def trust_offset_s(self) -> float:
        """How far a sender's clock may lag arrival and still count as wall-clock."""
        return self._trust_offset_s

    def attach_timing(self, timing: TrackTiming) -> None:
        """Register a track's timing fed by another reader (a pulled camera's)."""
        self._tracks.append(timing)

    def video_reached(self, t: float) -> None:
        """The video reached capture time `t` without a frame to show for it (the receive
        buffer gave up on a frame): windows need not wait for it."""
        for ring in self.video_rings.values():
            ring.mark_seen(t)
        self._cut(t)

    def wall(self) -> float:
        """Our wall clock (Unix seconds), as this ingest reads it."""
        return self._wall()

    async def on_video_frame(self, frame: av.VideoFrame, timing: TrackTiming) -> None:
        """Sample, resize once per engine size (large frames in the executor), push, cut windows."""
        started, mono, arrival = time.perf_counter(), time.monotonic(), self._wall()
        self.last_media = mono
        self.stats.frame("video", mono)
        self._received["video"].inc()
        self.stats.resolution = (frame.width, frame.height)
        t = timing.capture_time(frame, arrival)
        if t is None:
            return self.drop("video", "no_timestamp")
        period = timing.frame_interval(t)
        sizes = []
        for size, ring in self.video_rings.items():
            if any(c.wants_frame(t, period) for c in self._cutters_by_size[size]):
                sizes.append(size)
            else:
                ring.mark_seen(t)  # no window will pick it: no pixel work at all
        if not sizes:
            self.drop("video", "sampled" if self.video_rings else "unused")
        else:
            if self._executor is None or frame.width * frame.height <= INLINE_RESIZE_MAX_PIXELS:
                images = self._convert(frame, sizes)
            else:  # the loop keeps receiving packets meanwhile (swscale releases the GIL)
                loop = asyncio.get_running_loop()
                images = await loop.run_in_executor(self._executor, self._convert, frame, sizes)
            self._push_video(images, t)
        self._ingested("video", time.perf_counter() - started)
        self._cut(t)
        return None

    def _convert(
        self, frame: av.VideoFrame, sizes: list[tuple[int, int]]
    ) -> list[tuple[tuple[int, int], npt.NDArray[np.uint8]]]:
        """RGB images of `frame` at each (height, width); runs in the executor when given."""
        out = []
        for height, width in sizes:
            reformatter = self._reformatters[(height, width)]
            image = reformatter.reformat(frame, width, height, "rgb24", interpolation=_AREA,
                                         threads=1).to_ndarray()  # fmt: skip
            out.append(((height, width), image.astype(np.uint8, copy=False)))
        return out

    def _push_video(
        self, images: list[tuple[tuple[int, int], npt.NDArray[np.uint8]]], t: float
    ) -> None:
        for size, image in images:
            ring = self.video_rings.get(size)
            if ring is None:
                return  # closed while converting
            newest, overwritten = ring.newest_time, ring.overwritten
            ring.push(image, t)
            if self._due_at == -math.inf:  # before the window grid: kept, but maybe never used
                self._pre_grid[size] = self._pre_grid.get(size, 0) + 1
            if newest is not None and t <= newest:
                self.drop("video", "out_of_order")
            elif ring.overwritten > overwritten:
                if self._pre_grid.get(size, 0) > 0:
                    self._pre_grid[size] -= 1  # older than any window: not media lost
                else:
                    self.drop("video", "ring_overflow")

    def on_audio_frame(self, frame: av.AudioFrame, timing: TrackTiming) -> None:
        """Hold the frame for conversion at the next cut (or when enough is held), cut windows."""
        started, mono, arrival = time.perf_counter(), time.monotonic(), self._wall()
        self.last_media = mono
        self.stats.frame("audio", mono)
        self._received["audio"].inc()
        duration = frame.samples / frame.sample_rate
        # Its last sample was captured before it arrived: the frame's end, not its start, is
        # bounded by arrival (a window never ends after the media in it reached us).
        t = timing.capture_time(frame, arrival - duration)
        if t is None:
            return self.drop("audio", "no_timestamp")
        if not self.audio_rings:
            return self.drop("audio", "unused")
        full = False
        for rate in self.audio_rings:
            batcher = self._batchers.get(rate)
            if batcher is None:
                batcher = self._batchers[rate] = AudioBatcher(rate)
            full = batcher.add(frame, t) or full
        self._ingested("audio", time.perf_counter() - started)
        if full:
            self._flush_audio()
        self._cut(t + duration)
        return None

    def _flush_audio(self) -> None:
        """Convert the held audio frames into the rings (one resampler call per run and rate)."""
        if not any(batcher.held_s for batcher in self._batchers.values()):
            return
        started = time.perf_counter()
        for rate, batcher in self._batchers.items():
            ring = self.audio_rings[rate]  # batchers exist only for the rings' rates
            for samples, t_first in batcher.flush():
                dropped = ring.dropped_samples
                ring.push(samples, t_first)
                if ring.dropped_samples > dropped:
                    self.drop("audio", "out_of_order")
        self._ingested("audio", time.perf_counter() - started)

    def _ingested(self, kind: str, seconds: float) -> None:
        """A frame went from `recv()` into the rings in `seconds` (the ingest stage)."""
        self._ingest_seconds.observe(seconds)

    # -- windows -----------------------------------------------------------------------------

    def _cut(self, reached: float) -> None:
        """Poll the cutters once media has reached the earliest next window end.

        A cutter cuts nothing until some modality reaches its next end, so checking that first
        saves a poll (and a capture-clock "now") per frame for most frames.
        """
        self._reached = max(self._reached, reached)
        if self._reached < self._due_at:
            return
        if self._batchers:
            self._flush_audio()  # the cutters read the rings: bring them up to date first
        clocks = [timing.clock for timing in self._tracks if timing.clock is not None]
        self._set_clock(stream_clock(*clocks))
        now_capture = stream_now(self._wall(), *clocks)
        for name, cutter in self._cutters.items():
            spec = self._specs[name]
            started = time.perf_counter()
            video = (
                self.video_rings.get((spec.video.height, spec.video.width)) if spec.video else None
            )
            audio = self.audio_rings.get(spec.audio.sample_rate) if spec.audio else None
            windows = cutter.poll(video, audio, now_capture, time.monotonic())
            for window in windows:
                self._submit(window)
            if windows:
                self._metrics.stage_seconds.labels(stage="window", engine=name).observe(
                    time.perf_counter() - started
                )
        ends = [cutter.next_end for cutter in self._cutters.values()]
        self._due_at = (
            -math.inf if None in ends else min((e for e in ends if e is not None), default=math.inf)
        )

    def _set_clock(self, kind: ClockKind) -> None:
        """Which clock the stream's capture times are on (`/api/streams`, a gauge per kind)."""
        if kind != self.clock and self._clock_gauge is not None:
            self._clock_gauge.labels(clock=self.clock).dec()
            self._clock_gauge.labels(clock=kind).inc()
            self.clock = kind

    def tick(self) -> None:
        """Cut windows that fell due without a new frame (a modality waited out, media stopped)."""
        if self._cutters:  # none once closed
            self._cut(-math.inf)

    def _submit(self, window: Window) -> None:
        self.stats.windows += 1
        self.stats.last_window_latency_s = self._wall() - window.end
        if self.video_rings and self.audio_rings:
            # Every window of an A/V stream, missing modality or not: content 4 s apart is a
            # 4 s skew (and windows that wait for the late modality), not a gap in the histogram.
            self._metrics.av_skew_seconds.observe(window.av_skew_s)
        self._sink.submit(window)

    def drop(self, kind: str, reason: str) -> None:
        """Count a frame not taken into the rings (`frames_dropped{kind,reason}`)."""
        key = f"{kind}:{reason}"
        counter = self._dropped.get(key)
        if counter is None:
            counter = self._dropped[key] = self._metrics.frames_dropped.labels(kind, reason)
        counter.inc()
        self.stats.dropped[key] = self.stats.dropped.get(key, 0) + 1

    def close(self) -> None:
        """Release rings and audio batchers; the session cancels the readers."""
        if self._clock_gauge is not None:
            self._clock_gauge.labels(clock=self.clock).dec()
            self._clock_gauge = None
        for timing in self._tracks:
            timing.close()
        self._tracks.clear()
        self.video_rings.clear()
        self.audio_rings.clear()
        self._batchers.clear()
        self._reformatters.clear()
        self._cutters.clear()
