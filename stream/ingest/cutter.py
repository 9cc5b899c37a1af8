"""Cutting time-aligned windows for one (stream, engine) from the stream's rings.

Window ends sit on a grid of multiples of the hop on the capture clock (Unix seconds), so the
windows of every stream an engine serves fall due together and batch well. The first end is the
first grid point at least one window length after the first media. A window is cut when every
modality it waits for has reached its end, or, once one has, when the others are more than
`max_wait_s` late: a late modality is then used for what it has, its unreceived tail reported
in the window's gaps, and listed in `missing` (zero-filled) only when none of it falls in the
window. Pure logic: no I/O.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from engines.window import Window, WindowSpec
from stream.ingest.rings import AudioRing, VideoRing

VIDEO = "video"
AUDIO = "audio"
_EPS = 1e-9  # grid arithmetic slack (seconds / grid steps)


class WindowCutter:
    """Every hop, cuts `[t_end - L, t_end]` for one (stream, engine); see the module docstring.

    `skipped` counts windows passed over because the cutter fell more than `max_backlog`
    windows behind (e.g. media resumed after a stall): only the newest due window is cut then.
    """

    def __init__(
        self,
        stream: str,
        engine: str,
        spec: WindowSpec,
        *,
        max_wait_s: float,
        has_video: bool,
        has_audio: bool,
        max_backlog: int = 2,
    ) -> None:
        if spec.length_s <= 0 or spec.hop_s <= 0 or max_wait_s < 0 or max_backlog < 1:
            raise ValueError("length_s and hop_s must be positive, max_wait_s >= 0, backlog >= 1")
        wanted = {m for m, s in ((VIDEO, spec.video), (AUDIO, spec.audio)) if s is not None}
        present = {m for m, p in ((VIDEO, has_video), (AUDIO, has_audio)) if p}
        self._waits_for = tuple(sorted(wanted & present))
        if not self._waits_for:
            raise ValueError(f"stream {stream!r} has none of the media engine {engine!r} uses")
        self.stream = stream
        self.engine = engine
        self.spec = spec
        self.max_wait_s = max_wait_s
        self.max_backlog = max_backlog
        self._absent = frozenset(wanted - present)
        self._next: int | None = None  # grid index of the next window end (end = index * hop)
        self._seq = 0
        self.skipped = 0
        self._frame_offsets: npt.NDArray[np.float64] | None = None
        if spec.video is not None:
            steps = np.arange(spec.video.frames - 1, -1, -1, dtype=np.float64)
            self._frame_offsets = steps / spec.video.fps  # wanted time i = end - offsets[i]

    @staticmethod
    def serves(spec: WindowSpec, *, has_video: bool, has_audio: bool) -> bool:
        """Whether an engine with `spec` has anything to analyse in such a stream."""
        return (spec.video is not None and has_video) or (spec.audio is not None and has_audio)

    @property
    def next_end(self) -> float | None:
        """End of the next window to cut (capture clock); None until media has arrived."""
        return None if self._next is None else self._next * self.spec.hop_s

    def poll(
        self, video: VideoRing | None, audio: AudioRing | None, now: float, mono: float
    ) -> list[Window]:
        """Windows due now, oldest first. `now`: capture-clock time; `mono`: `time.monotonic()`.

        O(1) when nothing is due, so it can run after every push.
        """
        reached = self._reached(video, audio)
        if self._next is None and not self._anchor(video, audio, max(reached.values())):
            return []
        assert self._next is not None
        hop = self.spec.hop_s
        if max(reached.values()) < self._next * hop:
            return []  # the common case: nothing has reached the next window end yet
        due = max(
            self._count_due(min(reached.values())),
            self._count_due(min(max(reached.values()), now - self.max_wait_s)),
        )
        if due > self.max_backlog:
            self.skipped += due - 1
            self._next += due - 1
            due = 1
        windows = []
        for _ in range(due):
            windows.append(self._cut(self._next * hop, reached, video, audio, mono))
            self._next += 1
        return windows

    def wants_frame(self, t: float, period: float) -> bool:
        """Whether a frame captured at `t` will be picked by a window not yet cut.

        A frame is picked for a wanted time when it is the newest frame at or before it, so it
        matters when a wanted time falls in `[t, t + period)`, `period` being the caller's
        estimate of the time to the next frame. Lets ingest drop unused frames before any
        conversion (pass those to `VideoRing.mark_seen`). True until the grid is fixed.
        """
        video = self.spec.video
        if video is None or VIDEO not in self._waits_for:
            return False
        if self._next is None:
            return True
        hop, fps = self.spec.hop_s, video.fps
        span = (video.frames - 1) / fps
        first = max(self._next, math.ceil(t / hop - _EPS))
        last = math.floor((t + period + span) / hop + _EPS)
        for index in range(first, last + 1):
            end = index * hop
            step = min(video.frames - 1, math.floor((end - t) * fps + _EPS))
            if step >= 0 and end - step / fps < t + period:
                return True
        return False

    def _reached(self, video: VideoRing | None, audio: AudioRing | None) -> dict[str, float]:
        """How far each awaited modality has arrived on the capture clock (-inf: nothing yet)."""
        reached = {}
        for modality in self._waits_for:
            t: float | None = None
            if modality == VIDEO and video is not None:
                t = video.seen_time
            elif modality == AUDIO and audio is not None:
                t = audio.end_time
            reached[modality] = -math.inf if t is None else t
        return reached

    def _anchor(self, video: VideoRing | None, audio: AudioRing | None, reached: float) -> bool:
        """Fix the grid at the first media; False while there is none."""
        starts = []
        if VIDEO in self._waits_for and video is not None:
            starts.append(video.oldest_time if video.oldest_time is not None else video.seen_time)
        if AUDIO in self._waits_for and audio is not None:
            starts.append(audio.start_time)
        known = [s for s in starts if s is not None]
        if not known:
            return False
        hop = self.spec.hop_s
        first = math.ceil((min(known) + self.spec.length_s) / hop - _EPS)
        # A cutter created mid-stream starts at the newest window, not at the oldest kept media.
        if math.isfinite(reached):
            first = max(first, math.floor(reached / hop + _EPS))
        self._next = first
        return True

    def _count_due(self, limit: float) -> int:
        """Number of grid ends from the next one up to `limit` (inclusive)."""
        assert self._next is not None
        hop = self.spec.hop_s
        if limit < self._next * hop or not math.isfinite(limit):
            return 0
        count = int((limit - self._next * hop) // hop) + 1
        while (self._next + count) * hop <= limit:  # float guard at exact multiples
            count += 1
        while count and (self._next + count - 1) * hop > limit:
            count -= 1
        return count

    def _cut(
        self,
        end: float,
        reached: dict[str, float],
        video: VideoRing | None,
        audio: AudioRing | None,
        mono: float,
    ) -> Window:
        start = end - self.spec.length_s
        # A modality late at the cut is used for what it has: the rings report its unreceived
        # tail as a gap. Only one with nothing in the window is missing (zero-filled).
        missing = set(self._absent) | {m for m, t in reached.items() if t <= start}
        gaps: list[tuple[float, float]] = []
        frames, frame_times = self._cut_video(start, end, video, missing, gaps)
        samples = self._cut_audio(end, audio, missing, gaps)
        skew = 0.0
        if video is not None and audio is not None:
            v, a = video.seen_time, audio.end_time
            skew = abs(a - v) if a is not None and v is not None else 0.0
        window = Window(
            stream=self.stream,
            engine=self.engine,
            seq=self._seq,
            start=start,
            end=end,
            video=frames,
            frame_times=frame_times,
            audio=samples,
            gaps=merge_spans(gaps),
            missing=frozenset(missing),
            cut_at=mono,
            av_skew_s=skew,
        )
        self._seq += 1
        return window

    def _cut_video(
        self,
        start: float,
        end: float,
        video: VideoRing | None,
        missing: set[str],
        gaps: list[tuple[float, float]],
    ) -> tuple[npt.NDArray[np.uint8] | None, npt.NDArray[np.float64] | None]:
        spec = self.spec.video
        if spec is None or self._frame_offsets is None:
            return None, None
        wanted = end - self._frame_offsets
        if VIDEO in missing or video is None or not len(video):
            missing.add(VIDEO)  # frame_times of a missing video are the wanted times
            return np.zeros((spec.frames, spec.height, spec.width, 3), np.uint8), wanted
        if (video.height, video.width) != (spec.height, spec.width):
            raise ValueError(
                f"video ring is {video.height}x{video.width}, engine wants "
                f"{spec.height}x{spec.width}"
            )
        frames, times = video.select(wanted)
        gaps.extend(frame_gaps(video.capture_times(), start, end, 2.0 / spec.fps))
        return frames, times

    def _cut_audio(
        self,
        end: float,
        audio: AudioRing | None,
        missing: set[str],
        gaps: list[tuple[float, float]],
    ) -> npt.NDArray[np.float32] | None:
        spec = self.spec.audio
        if spec is None:
            return None
        if AUDIO in missing or audio is None:
            missing.add(AUDIO)
            return np.zeros(spec.samples, np.float32)
        if audio.sample_rate != spec.sample_rate:
            raise ValueError(
                f"audio ring is {audio.sample_rate} Hz, engine wants {spec.sample_rate} Hz"
            )
        samples, audio_gaps = audio.read(end - spec.samples / spec.sample_rate, spec.samples)
        gaps.extend(audio_gaps)
        return samples


def frame_gaps(
    times: npt.NDArray[np.float64], start: float, end: float, max_interval: float
) -> list[tuple[float, float]]:
    """Stretches of `[start, end]` longer than `max_interval` with no frame (`times` sorted)."""
    before = int(np.searchsorted(times, start, side="right")) - 1
    after = int(np.searchsorted(times, end, side="left"))
    points = times[max(before, 0) : after + 1]
    if before < 0:
        points = np.concatenate(([start], points))
    if after >= len(times):
        points = np.concatenate((points, [end]))
    holes = np.flatnonzero(np.diff(points) > max_interval)
    spans = [(max(float(points[i]), start), min(float(points[i + 1]), end)) for i in holes]
    return [(a, b) for a, b in spans if a < b]


def merge_spans(spans: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Sorted spans with overlapping ones merged."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)
