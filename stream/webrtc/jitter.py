"""Loss-tolerant receive buffers for aiortc's receivers (pinned 1.16.*; see `stream.webrtc.loss`).

Works around aiortc's `JitterBuffer` (`aiortc/jitterbuffer.py`) as `RTCRtpReceiver` uses it:

- a missing packet stalls the buffer until it overflows (16 packets for audio: ~320 ms; 512 for
  video: seconds), and afterwards the buffer releases one frame per arriving packet, so the
  stall is never caught up (every later frame arrives that much later);
- a video frame is released only when the next frame's first packet arrives (the marker bit
  that ends a frame is ignored): one frame interval added to every frame; and one frame at most
  leaves per arriving packet, so frames completed together stay behind;
- after a video loss it hands inter frames that reference the lost picture to the decoder and
  asks for a keyframe only once it overflows;
- a video packet 100 or more behind its origin is taken for a restarted stream: everything held
  is thrown away and the buffer restarts at that old packet. After a blackout the receiver's
  NACKs bring back a run of such packets (retransmissions), and each one restarted the buffer.

Audio: the receiver's `_handle_rtp_packet` is wrapped (an instance attribute; the original still
does the rest) so that packets pass a `PacketReorder` first, and the audio `JitterBuffer` is
replaced by a pass-through (one Opus packet is one frame): in-order audio is decoded at once, a
loss becomes a jump in RTP time, i.e. a gap at the right capture time that the rings zero-fill.
Video: the `JitterBuffer` is replaced by a subclass that gives a missing packet up after a bounded
wait in RTP time, releases a frame at its marker bit (all complete frames at once, the earlier
ones queued for the decoder as aiortc would), drops frames until a keyframe
(`KeyframeGate`), returns aiortc's PLI flag to ask the sender for one, and discards packets of
media already released or given up.
`tests/unit/test_jitter_hook.py` fails when aiortc changes these.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from stream.webrtc import aiortc_internals as internals
from stream.webrtc.aiortc_internals import require_pinned
from stream.webrtc.loss import (
    KeyframeGate,
    PacketReorder,
    frame_start,
    h264_annexb_keyframe,
    rtp_delta,
)
from stream.webrtc.rtcp import RtcpHookError

logger = logging.getLogger(__name__)

_CODECS_ATTR = internals.RECEIVER_CODECS
_DECODER_QUEUE_ATTR = internals.RECEIVER_DECODER_QUEUE
_DECODER_THREAD_ATTR = internals.RECEIVER_DECODER_THREAD
_JITTER_ATTR = internals.RECEIVER_JITTER_BUFFER
_MAPPER_ATTR = internals.RECEIVER_MAPPER
_RTP_HOOK_ATTR = internals.RECEIVER_RTP_HANDLER

VIDEO_CLOCK_RATE = 90_000
OPUS_CLOCK_RATE = 48_000
VIDEO_CAPACITY = 512  # aiortc's own video buffer size (packets)

LossEvent = Callable[[str, str, int, int | None], None]
"""`(kind, event, count, rtp_timestamp)`: event is `lost`, `late`, `keyframe_request`, or
`undecodable` (a video frame dropped before decoding; with its wire RTP timestamp, so that ingest
knows the video has reached that time even though no frame will show it)."""


def _safe(on_event: LossEvent) -> LossEvent:
    """`on_event` runs inside aiortc's packet handling: an error there must not break it."""

    def emit(kind: str, event: str, count: int, rtp_timestamp: int | None) -> None:
        try:
            on_event(kind, event, count, rtp_timestamp)
        except Exception:
            logger.exception("loss event handler failed")

    return emit


def _check(receiver: RTCRtpReceiver) -> JitterBuffer:
    require_pinned(RtcpHookError)
    buffer = getattr(receiver, _JITTER_ATTR, None)
    if not isinstance(buffer, JitterBuffer) or not all(
        hasattr(buffer, a) for a in ("_origin", "_packets", "_capacity", "_remove_frame")
    ):
        raise RtcpHookError("aiortc RTCRtpReceiver has no JitterBuffer with the known internals")
    if not isinstance(getattr(receiver, _CODECS_ATTR, None), dict):
        raise RtcpHookError("aiortc RTCRtpReceiver has no codec table")
    if not callable(getattr(receiver, _RTP_HOOK_ATTR, None)):
        raise RtcpHookError("aiortc RTCRtpReceiver has no `_handle_rtp_packet`")
    return buffer


class PassThroughJitterBuffer(JitterBuffer):
    """Each packet is a complete frame, released at once (ordering is done before it)."""

    def __init__(self) -> None:
        super().__init__(capacity=16)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        data: bytes = getattr(packet, "_data", packet.payload)
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


class AudioLossGuard:
    """Bounded reordering in front of an audio receiver (see the module docstring)."""

    def __init__(self, receiver: RTCRtpReceiver, max_hold_s: float, on_event: LossEvent) -> None:
        _check(receiver)
        self._on_event = _safe(on_event)
        self.reorder: PacketReorder[RtpPacket] = PacketReorder(OPUS_CLOCK_RATE, max_hold_s)
        self._lost = self._late = 0
        original: Callable[..., Awaitable[None]] = getattr(receiver, _RTP_HOOK_ATTR)

        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            for ready in self.reorder.push(packet.sequence_number, packet.timestamp, packet):
                await original(ready, arrival_time_ms=arrival_time_ms)
            self._report()

        setattr(receiver, _RTP_HOOK_ATTR, handle_rtp_packet)
        setattr(receiver, _JITTER_ATTR, PassThroughJitterBuffer())

    def _report(self) -> None:
        counts = self.reorder.counts
        if counts.lost > self._lost:
            self._on_event("audio", "lost", counts.lost - self._lost, None)
            self._lost = counts.lost
        if counts.late > self._late:
            self._on_event("audio", "late", counts.late - self._late, None)
            self._late = counts.late


class BoundedVideoJitterBuffer(JitterBuffer):
    """aiortc's video `JitterBuffer` with a bounded wait for missing packets and a keyframe gate.

    A frame stuck behind a hole is given up once the newest packet is more than `max_hold_s`
    ahead of it in RTP time (time for a NACK retransmission to arrive): its packets and the hole
    are dropped up to the next frame start, and frames then wait for a keyframe.
    """

    def __init__(
        self,
        codecs: dict[int, Any],
        max_hold_s: float,
        on_event: LossEvent,
        *,
        capacity: int = VIDEO_CAPACITY,
        gate: KeyframeGate | None = None,
        deliver: Callable[[Any, JitterFrame], None] | None = None,
    ) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self._codecs = codecs
        self._deliver = deliver
        self._hold_ticks = round(max_hold_s * VIDEO_CLOCK_RATE)
        self._on_event = _safe(on_event)
        self.gate = gate if gate is not None else KeyframeGate()
        self._newest_seq: int | None = None
        self._newest_ts: int | None = None
        self._released_ts: int | None = None
        self._request = False

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq, ts = packet.sequence_number, packet.timestamp
        if self._late(seq, ts):
            self._on_event("video", "late", 1, None)
            return False, None
        if self._newest_seq is None or uint16_add(seq, -self._newest_seq) < 0x8000:
            self._newest_seq = seq
        if self._newest_ts is None or rtp_delta(ts, self._newest_ts) > 0:
            self._newest_ts = ts
        pli, frame = super().add(packet)
        if frame is None and self._stuck():
            self._skip()
            self._request = self.gate.lost() or self._request
            frame = self._remove_frame(seq)
        if frame is not None and self._deliver is not None:
            frame = self._drain(packet, frame)
        if self._request:
            pli, self._request = True, False
            self._on_event("video", "keyframe_request", 1, None)
        return pli, frame

    def _drain(self, packet: RtpPacket, frame: JitterFrame) -> JitterFrame:
        """Hand every further complete frame to the decoder now, `frame` first; returns the last
        for aiortc to queue. aiortc takes one frame per arriving packet, so frames completed
        together (a hole filled by a retransmission) would otherwise stay that far behind when
        each frame is a single packet."""
        assert self._deliver is not None
        codec = self._codecs.get(packet.payload_type)
        while (following := self._remove_frame(packet.sequence_number)) is not None:
            self._deliver(codec, frame)
            frame = following
        return frame

    def _late(self, seq: int, ts: int) -> bool:
        """A packet behind the origin (released or given up already) carrying media no newer
        than the newest seen: typically a NACK retransmission that came after the wait. aiortc
        would take one 100 or more packets behind for a restarted stream and throw away
        everything it holds; a real restart carries newer media and still restarts."""
        if self._origin is None or self._newest_ts is None:
            return False
        behind = uint16_add(self._origin, -seq)
        return 0 < behind < 0x8000 and rtp_delta(ts, self._newest_ts) <= 0

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        """The next complete frame the decoder can use; the ones it cannot are dropped."""
        while True:
            origin = self._origin
            first = self._packets[origin % self._capacity] if origin is not None else None
            frame = super()._remove_frame(sequence_number)
            if frame is None:
                frame = self._remove_marked_frame()
            if frame is None or first is None:
                return frame
            self._released_ts = frame.timestamp
            if self._admit(first, frame):
                return frame

    def _admit(self, first: RtpPacket, frame: JitterFrame) -> bool:
        mime = self._mime(first)
        starts, key = frame_start(mime, first.payload)
        if starts and not key and self.gate.awaiting and mime.lower().endswith("/h264"):
            key = h264_annexb_keyframe(frame.data)
        passed, request = self.gate.admit(starts, key)
        self._request = self._request or request
        if not passed:
            self._on_event("video", "undecodable", 1, frame.timestamp)
        return passed

    def _remove_marked_frame(self) -> JitterFrame | None:
        """The frame at the origin once all its packets are in, known by the RTP marker bit on
        its last packet (RFC 7741, RFC 6184). aiortc waits for the next frame's first packet
        instead, one frame interval (33 ms at 30 fps) later."""
        if self._origin is None:
            return None
        packets: list[RtpPacket] = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                data = b"".join(getattr(p, "_data", b"") for p in packets)
                return JitterFrame(data=data, timestamp=packets[0].timestamp)
        return None

    def _mime(self, packet: RtpPacket) -> str:
        codec = self._codecs.get(packet.payload_type)
        return str(codec.mimeType) if codec is not None else ""

    def _pending(self) -> bool:
        """Whether any slot from the origin up to the newest packet is still held."""
        if self._origin is None or self._newest_seq is None:
            return False
        return uint16_add(self._newest_seq, -self._origin) < 0x8000

    def _head_ts(self) -> int | None:
        assert self._origin is not None
        head = self._packets[self._origin % self._capacity]
        return head.timestamp if head is not None else self._released_ts

    def _stuck(self) -> bool:
        if not self._pending() or self._newest_ts is None:
            return False
        head_ts = self._head_ts()
        return head_ts is not None and rtp_delta(self._newest_ts, head_ts) > self._hold_ticks

    def _skip(self) -> None:
        """Drop the stuck frame and the holes up to the next packet that starts a later frame."""
        stuck_ts, missing = self._head_ts(), 0
        while self._pending():
            assert self._origin is not None
            pos = self._origin % self._capacity
            packet = self._packets[pos]
            if (
                packet is not None
                and packet.timestamp != stuck_ts
                and frame_start(self._mime(packet), packet.payload)[0]
            ):
                break
            missing += packet is None
            self._packets[pos] = None
            self._origin = uint16_add(self._origin, 1)
        if missing:
            self._on_event("video", "lost", missing, None)


def install_audio_guard(
    receiver: RTCRtpReceiver, max_hold_s: float, on_event: LossEvent
) -> AudioLossGuard:
    """Put bounded reordering in front of an audio receiver; raises `RtcpHookError` if aiortc's
    internals are not the pinned ones (aiortc's own buffer then stays)."""
    return AudioLossGuard(receiver, max_hold_s, on_event)


def install_video_buffer(
    receiver: RTCRtpReceiver, max_hold_s: float, on_event: LossEvent
) -> BoundedVideoJitterBuffer:
    """Replace a video receiver's jitter buffer by `BoundedVideoJitterBuffer` (packets already
    held move over); raises `RtcpHookError` if aiortc's internals are not the pinned ones."""
    old = _check(receiver)
    mapper = getattr(receiver, _MAPPER_ATTR, None)
    queue = getattr(receiver, _DECODER_QUEUE_ATTR, None)
    if mapper is None or not callable(getattr(mapper, "map", None)) or queue is None:
        raise RtcpHookError("aiortc RTCRtpReceiver has no timestamp mapper or decoder queue")

    def deliver(codec: Any, frame: JitterFrame) -> None:
        """What aiortc's `_handle_rtp_packet` does with the frame the buffer returns."""
        if codec is not None and getattr(receiver, _DECODER_THREAD_ATTR, None) is not None:
            frame.timestamp = mapper.map(frame.timestamp)
            queue.put((codec, frame))

    buffer = BoundedVideoJitterBuffer(getattr(receiver, _CODECS_ATTR), max_hold_s, on_event,
                                      capacity=old._capacity, deliver=deliver)  # fmt: skip
    buffer._origin, buffer._packets = old._origin, old._packets
    setattr(receiver, _JITTER_ATTR, buffer)
    return buffer
