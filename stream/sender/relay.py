"""Relay already-encoded media (VP8/H.264 + Opus) in real time, looping, without re-encoding.

aiortc's `MediaPlayer(loop=True)` restarts pts at every pass, which stalls pacing and sends RTP
timestamps backwards; these tracks hold a short file's packets in memory and shift each pass by
the file's duration instead. A cheap sender for load tests: no decode, no encode.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RELAYABLE_VIDEO = {"vp8": "vp8", "h264": "h264"}
RELAYABLE_AUDIO = {"opus"}
MAX_LOOP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Encoded:
    data: bytes
    pts: int
    keyframe: bool


@dataclass(slots=True)
class EncodedClip:
    """The packets of one stream of a file, with its time base and pass duration."""

    kind: str
    codec: str
    time_base: Fraction
    packets: list[_Encoded]
    duration: int  # in time_base units


def relay_codecs(path: Path) -> tuple[str | None, str | None]:
    """(video codec, audio codec) names of a file's first streams, lower case."""
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context.name if container.streams.video else None
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return video, audio


def load_clip(path: Path) -> dict[str, EncodedClip]:
    """Demux a file once into memory, per kind; raises ValueError when it cannot be relayed."""
    if path.stat().st_size > MAX_LOOP_BYTES:
        raise ValueError(f"{path} is over {MAX_LOOP_BYTES >> 20} MB: too large to loop in memory")
    clips: dict[str, EncodedClip] = {}
    with av.open(str(path)) as container:
        streams = [s for s in (*container.streams.video[:1], *container.streams.audio[:1])]
        for stream in streams:
            name = stream.codec_context.name
            if name not in RELAYABLE_VIDEO and name not in RELAYABLE_AUDIO:
                raise ValueError(f"{path}: {name} cannot be relayed (VP8/H.264 and Opus can)")
            if stream.time_base is None:
                raise ValueError(f"{path}: the {stream.type} stream has no time base")
            clips[stream.type] = EncodedClip(stream.type, name, stream.time_base, [], 0)
        for packet in container.demux(*streams):
            if packet.size == 0 or packet.pts is None:
                continue
            clip = clips[packet.stream.type]
            clip.packets.append(_Encoded(bytes(packet), int(packet.pts), packet.is_keyframe))
            end = int(packet.pts) + int(packet.duration or 0)
            clip.duration = max(clip.duration, end)
    for clip in clips.values():
        clip.packets.sort(key=lambda p: p.pts)
        if not clip.packets:
            raise ValueError(f"{path}: the {clip.kind} stream has no packets")
        first = clip.packets[0].pts
        clip.packets = [_Encoded(p.data, p.pts - first, p.keyframe) for p in clip.packets]
        clip.duration -= first
    return clips


class LoopingPacketTrack(MediaStreamTrack):
    """Packets of an `EncodedClip`, released in real time; pass `n` is shifted by `n * duration`."""

    def __init__(self, clip: EncodedClip, *, start: float, loop: bool = True) -> None:
        super().__init__()
        self.kind = clip.kind
        self._clip = clip
        self._start = start
        self._repeat = loop
        self._index = 0

    async def recv(self) -> av.Packet[Any]:
        clip = self._clip
        passes, index = divmod(self._index, len(clip.packets))
        if self.readyState != "live" or (passes and not self._repeat):
            self.stop()
            raise MediaStreamError
        self._index += 1
        encoded = clip.packets[index]
        pts = encoded.pts + passes * clip.duration
        delay = self._start + float(pts * clip.time_base) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(encoded.data)
        packet.pts = pts
        packet.dts = pts
        packet.time_base = clip.time_base
        packet.is_keyframe = encoded.keyframe
        return packet
