"""The one place that reaches into aiortc's receiver: RTCP Sender Reports and RTP timelines.

aiortc (pinned 1.16.*) neither exposes the NTP↔RTP pair of a Sender Report on the track nor the
RTP timestamp of a decoded frame (`frame.pts` is rebased to 0 per track). Both are needed to put
audio and video of one stream on the sender's capture clock. This module

- wraps the receiver's `_handle_rtcp_packet` (instance attribute; the original still runs) to
  report every `RtcpSrPacket` as a `SenderReport`;
- reads the receiver's private timestamp mapper origin to turn a frame's pts back into the wire
  RTP timestamp, and the negotiated codec's clock rate;
- throttles the video receiver's REMB feedback to libwebrtc's cadence (`throttle_remb`).

`tests/unit/test_rtcp_hook.py` fails loudly when a new aiortc changes any of these internals.
Callers must treat `RtcpHookError` as "no Sender Reports": map by arrival time instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSrPacket

from stream.webrtc import aiortc_internals as internals
from stream.webrtc.aiortc_internals import require_pinned
from stream.webrtc.ntp import ntp_to_unix

logger = logging.getLogger(__name__)

_CODECS_ATTR = internals.RECEIVER_CODECS
_ESTIMATOR_ATTR = internals.RECEIVER_ESTIMATOR
_MAPPER_ATTR = internals.RECEIVER_MAPPER
_HOOK_ATTR = internals.RECEIVER_RTCP_HANDLER

REMB_INTERVAL_MS = 200  # libwebrtc's REMB send interval
REMB_DROP_RATIO = 0.97  # ... and a drop of 3 % or more is sent at once
RTP_MODULO = 1 << 32


class RtcpHookError(RuntimeError):
    """aiortc's receiver internals are not what this module was written against."""


@dataclass(frozen=True, slots=True)
class SenderReport:
    """One RTCP Sender Report: the sender's wall clock at `rtp_timestamp`, and when it arrived."""

    ntp_unix: float
    rtp_timestamp: int
    arrival: float


def check_internals(receiver: RTCRtpReceiver) -> None:
    """Raise `RtcpHookError` unless `receiver` has every internal this module relies on."""
    require_pinned(RtcpHookError)
    mapper = getattr(receiver, _MAPPER_ATTR, None)
    if mapper is None or not hasattr(mapper, "_origin"):
        raise RtcpHookError("aiortc RTCRtpReceiver has no timestamp mapper with `_origin`")
    if not isinstance(getattr(receiver, _CODECS_ATTR, None), dict):
        raise RtcpHookError("aiortc RTCRtpReceiver has no codec table")
    if not callable(getattr(receiver, _HOOK_ATTR, None)):
        raise RtcpHookError("aiortc RTCRtpReceiver has no `_handle_rtcp_packet`")


class RembThrottle:
    """Wraps a receiver's REMB estimator so that it reports at most every `interval_ms`.

    aiortc sends a REMB packet each time its estimator updates, and under overuse that is on
    every video packet: one RTCP packet (SRTCP protect, sendto) per RTP packet received.
    libwebrtc sends one every 200 ms, or at once when the estimate drops by 3 % or more; this
    does the same. The estimator itself still sees every packet.
    """

    def __init__(self, estimator: Any, *, interval_ms: int = REMB_INTERVAL_MS) -> None:
        self._estimator = estimator
        self._interval_ms = interval_ms
        self._sent_at: int | None = None
        self._sent_bitrate = 0
        self.suppressed = 0

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        remb: tuple[int, list[int]] | None = self._estimator.add(
            arrival_time_ms=arrival_time_ms,
            abs_send_time=abs_send_time,
            payload_size=payload_size,
            ssrc=ssrc,
        )
        if remb is None:
            return None
        bitrate = int(remb[0])
        due = self._sent_at is None or arrival_time_ms - self._sent_at >= self._interval_ms
        if not due and bitrate >= self._sent_bitrate * REMB_DROP_RATIO:
            self.suppressed += 1
            return None
        self._sent_at, self._sent_bitrate = arrival_time_ms, bitrate
        return remb


def throttle_remb(receiver: RTCRtpReceiver) -> RembThrottle | None:
    """Throttle the REMB feedback of a video receiver (see `RembThrottle`); None for audio.

    Raises `RtcpHookError` if aiortc's receiver has no estimator attribute to wrap.
    """
    if not hasattr(receiver, _ESTIMATOR_ATTR):
        raise RtcpHookError("aiortc RTCRtpReceiver has no remote bitrate estimator")
    estimator = getattr(receiver, _ESTIMATOR_ATTR)
    if estimator is None or isinstance(estimator, RembThrottle):
        return estimator
    throttle = RembThrottle(estimator)
    setattr(receiver, _ESTIMATOR_ATTR, throttle)
    return throttle


class ReceiverTimeline:
    """Sender Reports and wire RTP timestamps of one aiortc receiver (one track)."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_report: Callable[[SenderReport], None],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        check_internals(receiver)
        self._receiver = receiver
        self._mapper: Any = getattr(receiver, _MAPPER_ATTR)
        self._on_report = on_report
        self._wall_clock = wall_clock
        self.reports = 0
        self._clock_rate: int | None = None
        original = getattr(receiver, _HOOK_ATTR)

        async def handle_rtcp_packet(packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket):
                self._report(packet)
            await original(packet)

        setattr(receiver, _HOOK_ATTR, handle_rtcp_packet)

    def _report(self, packet: RtcpSrPacket) -> None:
        info = packet.sender_info
        report = SenderReport(
            ntp_to_unix(info.ntp_timestamp), info.rtp_timestamp, self._wall_clock()
        )
        self.reports += 1
        try:
            self._on_report(report)
        except Exception:  # a bad report must not break aiortc's RTCP handling
            logger.exception("sender report handler failed")

    @property
    def clock_rate(self) -> int | None:
        """The RTP clock rate of the negotiated (non-RTX) codec, once negotiated."""
        if self._clock_rate is None:
            codecs: dict[int, Any] = getattr(self._receiver, _CODECS_ATTR)
            for codec in codecs.values():
                if not str(codec.mimeType).lower().endswith("/rtx"):
                    self._clock_rate = int(codec.clockRate)
                    break
        return self._clock_rate

    def rtp_timestamp(self, pts: int | None, time_base: Fraction | None) -> int | None:
        """The wire RTP timestamp (mod 2**32) of a decoded frame, from its rebased pts."""
        origin = self._mapper._origin
        rate = self.clock_rate
        if origin is None or pts is None or time_base is None or rate is None:
            return None
        # pts is in the decoder's time base; integer math (Fraction arithmetic is slow per frame)
        num, den = time_base.numerator, time_base.denominator
        ticks = (2 * pts * rate * num + den) // (2 * den)
        return int((origin + ticks) % RTP_MODULO)

    def detach(self) -> None:
        """Stop reporting (the receiver keeps working); drops the reference to the callback."""
        self._on_report = _ignore


def _ignore(_: SenderReport) -> None:
    return None


_RECEIVER_LOGGER = "aiortc.rtcrtpreceiver"
_DECODE_FAILED = "RTCRtpReceiver(%s) failed to decode"


class _DecodeErrorFilter(logging.Filter):
    def __init__(self, on_error: Callable[[str], None]) -> None:
        super().__init__()
        self._on_error = on_error

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_DECODE_FAILED) and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            self._on_error(str(args[0]))
        return True  # the warning itself is still logged


def watch_decode_errors(on_error: Callable[[str], None]) -> Callable[[], None]:
    """Call `on_error(kind)` for every frame aiortc fails to decode; returns the undo.

    aiortc drops such frames in its decoder thread and only logs a warning (no counter, no
    event), so the warning is the one signal there is; the message is pinned with aiortc.
    """
    log = logging.getLogger(_RECEIVER_LOGGER)
    watcher = _DecodeErrorFilter(on_error)
    log.addFilter(watcher)
    return lambda: log.removeFilter(watcher)
