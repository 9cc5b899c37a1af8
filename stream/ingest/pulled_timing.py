"""Capture times of a pulled camera's frames: the camera's RTCP clock, where it sends one.

FFmpeg's RTSP demuxer reads the camera's RTCP Sender Reports. Once a track's first report has
arrived, it puts every track's pts on the reports' clock (so audio and video share one
timeline) and attaches to each packet a producer reference time (`prft` side data): the sender's
wall-clock time of that packet's media, from the last report; a packet that came with a new
report also carries the report itself (`rtcp_sr`). The reader thread takes both from the packet
(`sender_time`); `PulledTiming` hands them to the track's `CaptureClock` as a Sender Report,
whenever a new report arrived and at most once a second in between (so the clock is judged
again soon after the connection's first burst). A pulled camera's clock is then judged exactly as
a WHIP sender's: wall-clock (`sender`) while it agrees with arrival within
`ingest.sender_clock_max_offset_s`, relative (anchored on arrival, min-filtered) when it does
not, `arrival` for a camera that sends no reports. Capture times are never later than arrival.

Two differences from a WHIP track. Right after connecting, FFmpeg hands over the media it
buffered while probing the stream in one burst, late rather than early: the mapping's backward
correction is slewed out fast (`PULLED_MAX_SLEW`), so live frames are on the camera's clock
within about a second. And FFmpeg's pts step when a track's first report arrives: a step in pts
that arrival does not show (over `PTS_JUMP_S`) starts the track's clock afresh.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from stream.ingest.clock import SENDER_CLOCK_MAX_OFFSET_S, CaptureClock, ClockAnchor
from stream.ingest.tracks import TrackTiming

PTS_JUMP_S = 1.0  # a pts step this much larger (or smaller) than the arrival step is a new timeline
PULLED_MAX_SLEW = 0.5  # backward corrections: seconds of capture time per second of media
REPORT_EVERY_S = 1.0  # between Sender Reports, the reference time is applied this often
DEFAULT_CLOCK_RATE = 90_000
_PRFT = struct.Struct("<q")  # AVProducerReferenceTime.wallclock: microseconds since the epoch


@dataclass(frozen=True, slots=True)
class SenderTime:
    """A packet's producer reference time: its media time on the camera's wall clock."""

    wall: float  # the camera's clock when the packet's media was captured (Unix seconds)
    media: float  # the packet's pts, seconds
    arrival: float  # our clock when the packet was read (Unix seconds)
    new_report: bool  # a Sender Report arrived with this packet


def sender_time(packet: Any, arrival: float) -> SenderTime | None:
    """The `av.Packet`'s `SenderTime`, if FFmpeg attached a producer reference time to it."""
    if packet.pts is None or packet.time_base is None:
        return None
    prft: bytes | None = None
    new_report = False
    for side in packet.iter_sidedata():
        if side.data_type == "prft":
            prft = bytes(memoryview(side))
        elif side.data_type == "rtcp_sr":
            new_report = True
    if prft is None or len(prft) < _PRFT.size:
        return None
    (wall_us,) = _PRFT.unpack_from(prft)
    return SenderTime(wall_us / 1e6, float(packet.pts * packet.time_base), arrival, new_report)


def carried(held: SenderTime | None, newer: SenderTime) -> SenderTime:
    """Which reference time a track's next frame carries: a new report is not overwritten by
    a later packet's plain reference time (a packet may decode to no frame)."""
    return held if held is not None and held.new_report and not newer.new_report else newer


def clock_rate(time_base: Fraction) -> int:
    """The RTP-like clock rate of a track's pts: 1/time_base where that is a whole rate."""
    inverse = 1 / time_base
    return int(inverse) if inverse.denominator == 1 and inverse >= 1000 else DEFAULT_CLOCK_RATE


class PulledTiming(TrackTiming):
    """A pulled track's timing: its pts mapped to capture time (module docstring)."""

    def __init__(
        self,
        kind: str,
        *,
        anchor: ClockAnchor | None = None,
        trust_offset_s: float = SENDER_CLOCK_MAX_OFFSET_S,
        smoothing_window: int = 64,
    ) -> None:  # no aiortc receiver: nothing of `TrackTiming.__init__` applies
        self.kind = kind
        self.timeline = None
        self.clock: CaptureClock | None = None
        self._interval = None
        self._last_t = None
        self._anchor: ClockAnchor = anchor if anchor is not None else ClockAnchor()
        self._trust_offset_s = trust_offset_s
        self._window = smoothing_window
        self._rate: int | None = None
        self._last: tuple[float, float] | None = None  # (pts seconds, arrival) of the last frame
        self._pending: SenderTime | None = None  # a reference time before the clock exists
        self._applied_at = -math.inf  # arrival of the last reference time applied
        self.restarts = 0

    def on_sender_time(self, sender: SenderTime) -> None:
        """A packet's reference time: applied as a Sender Report when one is due."""
        if self.clock is None or self._rate is None:
            self._pending = sender
            return
        if not sender.new_report and sender.arrival - self._applied_at < REPORT_EVERY_S:
            return
        self._applied_at = sender.arrival
        self.clock.on_sender_report(sender.wall, self._rtp(sender.media), sender.arrival)

    def capture_time(self, frame: av.VideoFrame | av.AudioFrame, arrival: float) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        media = float(frame.pts * frame.time_base)
        if self._rate is None:
            self._rate = clock_rate(frame.time_base)
        if self._last is not None and self.clock is not None:
            step = (media - self._last[0]) - (arrival - self._last[1])
            if abs(step) > PTS_JUMP_S:  # a new timeline: map it afresh
                self._anchor.forget(id(self.clock))
                self.clock = None
                self.restarts += 1
        self._last = (media, arrival)
        if self.clock is None:
            self.clock = CaptureClock(
                self._rate, smoothing_window=self._window, max_slew=PULLED_MAX_SLEW,
                trust_offset_s=self._trust_offset_s, anchor=self._anchor,
            )  # fmt: skip
            self._applied_at = -math.inf
            if self._pending is not None:
                pending, self._pending = self._pending, None
                self.on_sender_time(pending)
        return float(self.clock.capture_time(self._rtp(media), arrival))

    def _rtp(self, media: float) -> int:
        assert self._rate is not None
        return round(media * self._rate) % (1 << 32)

    def close(self) -> None:
        if self.clock is not None:
            self._anchor.forget(id(self.clock))
