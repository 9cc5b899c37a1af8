"""Packet loss on the receive path, as pure decisions: reordering with a bounded wait, and which
video frames a decoder can use after a loss.

aiortc's receive buffers wait for a missing packet until they overflow (16 audio packets, about
320 ms; 512 video packets, seconds), and after that hand over one frame per arriving packet, so a
single loss delays everything that follows for good. Here a missing packet is waited for only
while the newest packet is at most `max_hold` ahead of it in RTP time (media time, not arrival
time: a burst of late packets is not mistaken for a loss); then it is given up, counted, and what
was held behind it is released at once. The waits are measured on the sender's RTP clock, so the
decisions do not depend on when this code happens to run. No asyncio, no aiortc, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_SEQ_MODULO = 1 << 16
_RTP_MODULO = 1 << 32


def rtp_delta(later: int, earlier: int) -> int:
    """Signed difference `later - earlier` of two 32-bit RTP timestamps (wrap-aware)."""
    step = (later - earlier) % _RTP_MODULO
    return step - _RTP_MODULO if step >= _RTP_MODULO // 2 else step


class SequenceUnwrapper:
    """Extends 16-bit RTP sequence numbers to an unbounded count (steps taken as < 2**15)."""

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, seq: int) -> int:
        """The extended value of `seq`, nearest to the newest one seen."""
        if self._last is None:
            self._last = seq % _SEQ_MODULO
            return self._last
        step = (seq - self._last) % _SEQ_MODULO
        if step >= _SEQ_MODULO // 2:
            return self._last + step - _SEQ_MODULO  # older than the newest: not a wrap
        self._last += step
        return self._last


@dataclass(slots=True)
class ReorderCounts:
    """What a `PacketReorder` did with the packets it was given."""

    released: int = 0
    lost: int = 0  # missing packets given up after the hold
    late: int = 0  # packets that arrived after they were given up (discarded)
    duplicate: int = 0


class PacketReorder(Generic[T]):
    """Releases packets in sequence order; a missing one is waited for at most `max_hold_s`.

    In-order packets are released at once (nothing is held when nothing is missing). A packet
    ahead of a gap is held until the gap fills, or until the newest held packet's RTP timestamp
    is more than `max_hold_s` past the last released one (or more than `capacity` packets are
    held); then the gap is given up (`counts.lost`) and the held run is released. A packet
    arriving after its gap was given up is discarded (`counts.late`): releasing it would send
    time backwards.
    """

    def __init__(self, clock_rate: int, max_hold_s: float, *, capacity: int = 64) -> None:
        if clock_rate < 1 or max_hold_s < 0 or capacity < 1:
            raise ValueError("clock_rate and capacity must be positive, max_hold_s >= 0")
        self._hold_ticks = round(max_hold_s * clock_rate)
        self._capacity = capacity
        self._unwrapper = SequenceUnwrapper()
        self._next: int | None = None  # extended sequence number to release next
        self._held: dict[int, tuple[int, T]] = {}
        self._released_ts: int | None = None
        self._newest_ts: int | None = None
        self.counts = ReorderCounts()

    @property
    def held(self) -> int:
        """Packets waiting behind a gap."""
        return len(self._held)

    def push(self, seq: int, timestamp: int, item: T) -> list[T]:
        """Add a packet; returns the items now released, in sequence order."""
        ext = self._unwrapper.unwrap(seq)
        if self._next is None:
            self._next = ext
        if ext < self._next:
            self.counts.late += 1
            return []
        if ext in self._held:
            self.counts.duplicate += 1
            return []
        self._held[ext] = (timestamp, item)
        if self._newest_ts is None or rtp_delta(timestamp, self._newest_ts) > 0:
            self._newest_ts = timestamp
        out = self._release_run()
        while self._held and (self._overdue() or len(self._held) > self._capacity):
            oldest = min(self._held)
            self.counts.lost += oldest - self._next
            self._next = oldest
            out.extend(self._release_run())
        return out

    def _overdue(self) -> bool:
        if self._released_ts is None or self._newest_ts is None:
            return False  # the first packet is always released at once: nothing is held yet
        return rtp_delta(self._newest_ts, self._released_ts) > self._hold_ticks

    def _release_run(self) -> list[T]:
        assert self._next is not None
        out = []
        while (entry := self._held.pop(self._next, None)) is not None:
            self._released_ts, item = entry
            out.append(item)
            self._next += 1
        self.counts.released += len(out)
        return out


def vp8_frame_start(payload: bytes) -> tuple[bool, bool]:
    """`(starts a frame, is a keyframe)` for one VP8 RTP payload (RFC 7741 descriptor)."""
    if not payload:
        return False, False
    first = payload[0]
    start = bool(first & 0x10) and first & 0x07 == 0
    pos = 1
    if first & 0x80 and len(payload) > pos:  # X: extension byte I L T K
        ext = payload[pos]
        pos += 1
        if ext & 0x80 and len(payload) > pos:  # I: picture id, 7 or 15 bits
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/KEYIDX
            pos += 1
    if not start or len(payload) <= pos:
        return start, False
    return True, payload[pos] & 0x01 == 0  # frame tag: 0 marks a key frame


_H264_KEY_NALS = {5, 7, 8}  # IDR slice, SPS, PPS: a decoder can start here


def h264_frame_start(payload: bytes) -> tuple[bool, bool]:
    """`(starts a frame, is a keyframe)` for one H.264 RTP payload (RFC 6184), first-slice view."""
    if not payload:
        return False, False
    nal = payload[0] & 0x1F
    if nal == 28:  # FU-A: starts with the fragment that has the S bit
        if len(payload) < 2 or not payload[1] & 0x80:
            return False, False
        return True, payload[1] & 0x1F in _H264_KEY_NALS
    if nal == 24:  # STAP-A: aggregated NAL units, each behind a 16-bit size
        pos, key = 1, False
        while pos + 2 < len(payload):
            size = int.from_bytes(payload[pos : pos + 2], "big")
            key = key or payload[pos + 2] & 0x1F in _H264_KEY_NALS
            pos += 2 + size
        return True, key
    return 1 <= nal <= 23, nal in _H264_KEY_NALS


def h264_annexb_keyframe(data: bytes) -> bool:
    """Whether a depacketised H.264 access unit (Annex B) holds an IDR slice or an SPS: the
    first packet of a keyframe may carry only an SEI or access-unit delimiter."""
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        if data[pos + 3] & 0x1F in (5, 7):
            return True
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return False


def frame_start(mime_type: str, payload: bytes) -> tuple[bool, bool]:
    """`(starts a frame, is a keyframe)` by codec; unknown codecs: every frame, never key."""
    codec = mime_type.lower().rsplit("/", 1)[-1]
    if codec == "vp8":
        return vp8_frame_start(payload)
    if codec == "h264":
        return h264_frame_start(payload)
    return True, False


class KeyframeGate:
    """After a loss, passes video frames again only from a keyframe on, asking for one.

    Inter frames that follow a lost packet reference a picture the decoder never had; they
    decode to garbage or fail, so they are dropped (the cost of a loss is the frames until the
    next decodable one) and a keyframe is requested (PLI), again every `request_every` dropped
    frames. A sender that never answers (e.g. a relay that cannot encode) is given up on after
    `max_wait_frames`: frames pass again, artefacts and all.
    """

    def __init__(self, *, request_every: int = 15, max_wait_frames: int = 90) -> None:
        if request_every < 1 or max_wait_frames < 1:
            raise ValueError("request_every and max_wait_frames must be positive")
        self.request_every = request_every
        self.max_wait_frames = max_wait_frames
        self.awaiting = False
        self._waited = 0
        self.dropped = 0
        self.requests = 0

    def lost(self) -> bool:
        """A packet was given up: await a keyframe. True when a request should go out now."""
        if self.awaiting:
            return False  # already asked; `admit` repeats the request on its cadence
        self.awaiting, self._waited = True, 0
        self.requests += 1
        return True

    def admit(self, starts_frame: bool, keyframe: bool) -> tuple[bool, bool]:
        """Whether a complete frame may go to the decoder, and whether to request a keyframe.

        A frame whose first packet is not a frame start lost its head: it is never passed.
        """
        if not starts_frame:
            self.dropped += 1
            return False, self.lost()
        if not self.awaiting or keyframe:
            self.awaiting = False
            return True, False
        self._waited += 1
        if self._waited > self.max_wait_frames:
            self.awaiting = False
            return True, False
        self.dropped += 1
        request = self._waited % self.request_every == 0
        self.requests += request
        return False, request
