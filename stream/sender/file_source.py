"""Publish a media file in real time: relay what WebRTC carries, decode what it does not.

Both tracks are paced from one clock (`SceneClock`): media at file offset `x` (seconds after the
earliest start among the file's used streams) is released at `start + x`, whichever track asks
first fixing `start`. aiortc's Sender Reports pair each track's RTP clock with the wall clock at
sending, so the receiver puts audio and video on one capture clock exactly as they sit in the
file. (aiortc's `MediaPlayer` paces each track from its own first frame, and rebases nothing
across tracks, so a file's video could land seconds away from its audio.)

VP8 and H.264 without B-frames are relayed as they are (H.264 from MP4/MKV/MOV converted from
length-prefixed NAL units to Annex B, which RTP packetisation expects); Opus is relayed; any other
codec is decoded here and encoded by aiortc. A looping file repeats every `period_s` (the
longest of its streams), each pass shifted by that much, so the tracks never drift apart.

Blocking PyAV calls run in a worker thread (`asyncio.to_thread`), one call at a time per track.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.bitstream import BitStreamFilterContext

from stream.sender.relay import RELAYABLE_AUDIO, RELAYABLE_VIDEO
from stream.sender.tracks import VIDEO_TIME_BASE, SceneClock

AUDIO_RATE = 48_000
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
START_SCAN_PACKETS = 2_000  # packets read to find each stream's first timestamp
GAP_TOLERANCE_S = 0.005  # decoded audio further apart than this is padded with silence


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How one stream of the file is sent: relayed as packets, or decoded for aiortc to encode."""

    kind: str  # "video" or "audio"
    index: int  # stream index in the container
    codec: str
    relay: bool
    annexb: bool = False  # H.264 stored as length-prefixed NAL units (MP4, MKV, MOV)
    start_s: float = 0.0  # first timestamp, in file seconds


@dataclass(frozen=True, slots=True)
class FilePlan:
    """The streams to send and the file's timeline."""

    path: Path
    streams: tuple[StreamPlan, ...]
    origin_s: float  # earliest start among the streams: offset 0
    period_s: float | None  # one pass, when looping

    @property
    def video_codec(self) -> str | None:
        """The codec the video track must be offered in when relayed (else None: any)."""
        video = next((s for s in self.streams if s.kind == "video" and s.relay), None)
        return None if video is None else RELAYABLE_VIDEO[video.codec]


def relayable(kind: str, codec: str, has_b_frames: bool) -> bool:
    """Whether packets of this codec can go to WebRTC as they are.

    B-frames are decoded and re-encoded: WebRTC has none, and RTP timestamps must not step back.
    """
    if kind == "video":
        return codec in RELAYABLE_VIDEO and not (codec == "h264" and has_b_frames)
    return codec in RELAYABLE_AUDIO


def needs_annexb(codec: str, extradata: bytes | None) -> bool:
    """H.264 whose extradata is an avcC record (version byte 1): NAL units are length-prefixed."""
    return codec == "h264" and bool(extradata) and extradata is not None and extradata[0] == 1


def plan_file(path: Path, *, loop: bool) -> FilePlan:
    """Probe `path` (blocking): its first video and audio stream, their starts, and the pass
    length when looping (a full demux-only scan). Raises `ValueError` with a one-line reason."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    with av.open(str(path)) as container:
        picked = [*container.streams.video[:1], *container.streams.audio[:1]]
        if not picked:
            raise ValueError(f"{path} has no audio or video stream")
        starts: dict[int, float] = {}
        ends: dict[int, float] = {}
        for count, packet in enumerate(container.demux(*picked)):
            if packet.pts is None or packet.time_base is None:
                continue
            index = packet.stream.index
            t = float(packet.pts * packet.time_base)
            starts[index] = min(starts.get(index, math.inf), t)
            end = t + float((packet.duration or 0) * packet.time_base)
            ends[index] = max(ends.get(index, -math.inf), end)
            if not loop and count >= START_SCAN_PACKETS and len(starts) == len(picked):
                break
        plans = []
        for stream in picked:
            if stream.index not in starts:
                continue  # a stream without a single timed packet is left out
            ctx = stream.codec_context
            name = ctx.name
            b_frames = bool(getattr(ctx, "has_b_frames", False))
            plans.append(
                StreamPlan(
                    kind=stream.type,
                    index=stream.index,
                    codec=name,
                    relay=relayable(stream.type, name, b_frames),
                    annexb=needs_annexb(name, ctx.extradata),
                    start_s=starts[stream.index],
                )
            )
    if not plans:
        raise ValueError(f"{path} has no packets with timestamps")
    origin = min(p.start_s for p in plans)
    period = None
    if loop:
        period = max(ends[p.index] for p in plans) - origin
        if not period > 0:
            raise ValueError(f"{path} is too short to loop")
    return FilePlan(path, tuple(plans), origin, period)


Media = Union["av.Packet[Any]", av.VideoFrame, av.AudioFrame]


class StreamReader:
    """One stream of the file, one pass: `read()` returns the next items `(offset_s, media)`
    (offset from the file's origin, not yet shifted by a pass), or None at the end. Blocking."""

    def __init__(self, plan: FilePlan, stream: StreamPlan) -> None:
        self._plan, self._stream = plan, stream
        self._container: Any = av.open(str(plan.path))
        self._source: Any = self._container.streams[stream.index]
        self._packets = self._container.demux(self._source)
        self._filter = (
            BitStreamFilterContext("h264_mp4toannexb", self._source) if stream.annexb else None
        )
        self._resampler = (
            # In aiortc's own 20 ms frames: its encoder then sends each frame as it gets it
            # rather than holding samples for the next one (which would send them late).
            av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE, frame_size=960)
            if stream.kind == "audio" and not stream.relay
            else None
        )
        self._done = False
        self._resampled_to: float | None = None  # offset of the resampler's next output sample

    def read(self) -> list[tuple[float, Media]] | None:
        """The items of the next packet (none for a packet the decoder keeps), None at the end."""
        if self._done:
            return None
        packet = next(self._packets, None)
        if packet is None or packet.size == 0:  # demux ends with an empty flushing packet
            self._done = True
            return self._flush()
        if packet.pts is None:
            return []
        if self._stream.relay:
            return self._relay(packet)
        return self._decode(packet)

    def _relay(self, packet: av.Packet[Any]) -> list[tuple[float, Media]]:
        packets = self._filter.filter(packet) if self._filter is not None else [packet]
        out: list[tuple[float, Media]] = []
        for p in packets:
            if p.pts is None or p.time_base is None:
                continue
            out.append((float(p.pts * p.time_base) - self._plan.origin_s, p))
        return out

    def _decode(self, packet: av.Packet[Any] | None) -> list[tuple[float, Media]]:
        out: list[tuple[float, Media]] = []
        for frame in self._source.codec_context.decode(packet):
            if frame.pts is None or frame.time_base is None:
                continue
            offset = float(frame.pts * frame.time_base) - self._plan.origin_s
            if self._resampler is not None:
                # The resampler's output runs on from the samples it held back, not from this
                # frame's start: its position is the first input's offset plus what it emitted.
                if self._resampled_to is None:
                    self._resampled_to = offset
                for pcm in self._resampler.resample(frame):
                    out.append((self._resampled_to, pcm))
                    self._resampled_to += pcm.samples / AUDIO_RATE
            else:
                out.append((offset, frame))
        return out

    def _flush(self) -> list[tuple[float, Media]]:
        if self._stream.relay:
            return []
        return self._decode(None)

    def close(self) -> None:
        """Release the container."""
        self._container.close()


class FileTrack(MediaStreamTrack):
    """One stream of a file, released in real time on the shared clock; see the module docstring.

    After a single pass it sends one copy of its last item a frame later: a receiver's jitter
    buffer releases a frame only when the next one arrives, so without it the file's last frame
    would never be decoded (the copy itself stays in that buffer).
    """

    def __init__(
        self, plan: FilePlan, stream: StreamPlan, clock: SceneClock, *, loop: bool
    ) -> None:
        super().__init__()
        self.kind = stream.kind
        self._plan, self._stream, self._clock = plan, stream, clock
        self._repeat = loop and plan.period_s is not None
        self._reader: StreamReader | None = None
        self._pending: deque[tuple[float, Media]] = deque()
        self._pass = 0
        self._last: tuple[float, Media] | None = None
        self._interval = 1 / 30 if stream.kind == "video" else 0.02
        self._next_audio_s: float | None = None  # decoded audio: where the next sample belongs
        self._finished = False
        self._reading = False  # a read is running in the worker thread: stop() must not close

    async def recv(self) -> Media:
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._next_item()
        if item is None:
            self.stop()
            raise MediaStreamError
        offset, media = item
        await self._clock.wait_until(offset)
        return self._stamp(offset, media)

    async def _next_item(self) -> tuple[float, Media] | None:
        while not self._pending:
            if self._finished:
                return None
            items = await self._read()
            if self.readyState != "live":
                self._close_reader()
                return None
            if items is not None:
                shift = self._pass * (self._plan.period_s or 0.0)
                self._pending.extend((offset + shift, media) for offset, media in items)
                continue
            self._close_reader()
            if self._repeat:
                self._pass += 1
            else:
                self._finished = True
                if self._last is not None:  # the jitter-buffer flush (see the class docstring)
                    offset, media = self._last
                    self._pending.append((offset + self._interval, _silence_like(media)))
        item = self._pending.popleft()
        if self._last is not None and item[0] > self._last[0]:
            self._interval = min(0.5, item[0] - self._last[0])
        self._last = item
        return self._pad_audio(item)

    async def _read(self) -> list[tuple[float, Media]] | None:
        """The next items of the current pass (opening it first), in the worker thread."""
        self._reading = True
        try:
            if self._reader is None:
                self._reader = await asyncio.to_thread(StreamReader, self._plan, self._stream)
            return await asyncio.to_thread(self._reader.read)
        finally:
            self._reading = False

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()  # closing a file container only frees memory: it does not block

    def _pad_audio(self, item: tuple[float, Media]) -> tuple[float, Media]:
        """Decoded audio is kept sample-contiguous: aiortc's Opus encoder counts RTP time in
        samples, so a gap (between passes, say) is sent as silence rather than skipped."""
        offset, media = item
        if not isinstance(media, av.AudioFrame):
            return item
        expected = self._next_audio_s
        self._next_audio_s = max(expected or offset, offset) + media.samples / AUDIO_RATE
        if expected is not None and offset - expected > GAP_TOLERANCE_S:
            self._pending.appendleft(item)
            samples = min(round((offset - expected) * AUDIO_RATE), AUDIO_RATE)
            self._next_audio_s = expected + samples / AUDIO_RATE
            return expected, _silence(samples)
        return item

    def _stamp(self, offset: float, media: Media) -> Media:
        """The item's pts on the send timeline (offset from the shared start)."""
        if isinstance(media, av.Packet):
            time_base = media.time_base or VIDEO_TIME_BASE
            copy = av.Packet(bytes(media))
            copy.pts = copy.dts = max(0, round(offset / time_base))
            copy.time_base = time_base
            copy.is_keyframe = media.is_keyframe
            return copy
        if isinstance(media, av.VideoFrame):
            media.pts, media.time_base = max(0, round(offset * 90_000)), VIDEO_TIME_BASE
        else:
            media.pts, media.time_base = max(0, round(offset * AUDIO_RATE)), AUDIO_TIME_BASE
        return media

    def stop(self) -> None:
        super().stop()
        if not self._reading:  # else the read in flight closes it when it returns
            self._close_reader()


def _silence(samples: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, samples * 2), np.int16), format="s16", layout="stereo"
    )
    frame.sample_rate = AUDIO_RATE
    return frame


def _silence_like(media: Media) -> Media:
    """The end-of-file copy: a relayed packet as it is, decoded audio as silence."""
    if isinstance(media, av.AudioFrame):
        return _silence(media.samples)
    return media


def open_file_tracks(plan: FilePlan, *, loop: bool) -> tuple[list[MediaStreamTrack], SceneClock]:
    """One `FileTrack` per planned stream, sharing one clock."""
    clock = SceneClock()
    tracks: list[MediaStreamTrack] = [FileTrack(plan, s, clock, loop=loop) for s in plan.streams]
    return tracks, clock
