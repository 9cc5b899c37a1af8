"""Live aiortc tracks that render a `SceneRenderer` in real time.

Audio and video share one `SceneClock`: frame `n` of either track is drawn at scene time
`n * period` and released at `start + n * period` on the wall clock, and its pts is that same
offset in the track's RTP clock. aiortc's Sender Reports pair an RTP timestamp with the wall clock
at sending, so a receiver maps both tracks to the instant each frame was drawn for.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import av
import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from engines.lab.scenes.base import SceneRenderer

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)


class SceneClock:
    """The wall-clock instant of scene time 0, fixed by whichever track asks first."""

    def __init__(self, *, loop_s: float | None = None, lead_s: float = 0.05) -> None:
        self._start: float | None = None
        self._lead_s = lead_s
        self.loop_s = loop_s  # scene time wraps at this (a looping finite scenario)

    @property
    def started(self) -> bool:
        """Whether a track has fixed the start (asked for its first frame)."""
        return self._start is not None

    @property
    def start(self) -> float:
        """Wall time (Unix seconds) of scene time 0."""
        if self._start is None:
            self._start = time.time() + self._lead_s
        return self._start

    def scene_time(self, offset_s: float) -> float:
        """Scene time at `offset_s` after the start (wrapped when looping)."""
        return offset_s % self.loop_s if self.loop_s else offset_s

    async def wait_until(self, offset_s: float) -> None:
        """Sleep until `offset_s` after the start; returns at once when already late."""
        delay = self.start + offset_s - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


class SceneVideoTrack(VideoStreamTrack):
    """Video frames of a scene at `fps`, `width`x`height`, rendered just before release."""

    def __init__(
        self,
        scene: SceneRenderer,
        clock: SceneClock,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        stop_after_s: float | None = None,
    ) -> None:
        super().__init__()
        self._scene, self._clock = scene, clock
        self._size = (height, width)
        self._fps = fps
        self._frame = 0
        self._stop_after_s = _limit(scene, clock, stop_after_s)

    def resize(self, width: int, height: int) -> None:
        """Render at a new size from the next frame on (a camera changing resolution)."""
        self._size = (height, width)

    async def recv(self) -> av.VideoFrame:
        offset = self._frame / self._fps
        if self.readyState != "live" or offset >= self._stop_after_s:
            self.stop()
            raise MediaStreamError
        self._frame += 1
        image = self._scene.render_video(self._clock.scene_time(offset), *self._size)
        await self._clock.wait_until(offset)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = round(offset * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        return frame


class SceneAudioTrack(AudioStreamTrack):
    """Mono s16 audio of a scene in `frame_ms` frames at `sample_rate`."""

    def __init__(
        self,
        scene: SceneRenderer,
        clock: SceneClock,
        *,
        sample_rate: int = 48_000,
        frame_ms: int = 20,
        stop_after_s: float | None = None,
    ) -> None:
        super().__init__()
        self._scene, self._clock = scene, clock
        self._rate = sample_rate
        self._samples = sample_rate * frame_ms // 1000
        self._frame = 0
        self._stop_after_s = _limit(scene, clock, stop_after_s)

    async def recv(self) -> av.AudioFrame:
        first = self._frame * self._samples
        offset = first / self._rate
        if self.readyState != "live" or offset >= self._stop_after_s:
            self.stop()
            raise MediaStreamError
        self._frame += 1
        samples = self._scene.render_audio(
            self._clock.scene_time(offset), self._samples, self._rate
        )
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
        await self._clock.wait_until(offset)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = first
        frame.time_base = fractions.Fraction(1, self._rate)
        return frame


def _limit(scene: SceneRenderer, clock: SceneClock, stop_after_s: float | None) -> float:
    """When a track ends: the given limit, else the scene's end unless it loops."""
    limit = math.inf if stop_after_s is None else stop_after_s
    if clock.loop_s is None and math.isfinite(scene.duration_s):
        limit = min(limit, scene.duration_s)
    return limit
