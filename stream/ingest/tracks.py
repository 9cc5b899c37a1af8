"""Per-track timing of a live stream: each decoded frame's capture time on the sender's clock.

A track's frames carry aiortc's rebased pts; `TrackTiming` turns them back into wire RTP
timestamps through the RTCP hook (`stream.webrtc.rtcp`) and maps them to capture time with the
track's `CaptureClock`, which RTCP Sender Reports put on the sender's wall clock.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import av

from stream.ingest.clock import CaptureClock, ClockAnchor
from stream.webrtc.rtcp import ReceiverTimeline, RtcpHookError, SenderReport

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000


@functools.cache
def _warn_hook_unavailable(reason: str) -> None:
    """Once per process and reason, not once per track."""
    logger.warning("RTCP hook unavailable, capture times by arrival: %s", reason)


class TrackTiming:
    """Per-track timing: capture clock plus (if aiortc's internals allow) the RTCP timeline."""

    def __init__(
        self,
        kind: str,
        receiver: Any,
        *,
        anchor: ClockAnchor | None = None,
        trust_offset_s: float = 1.0,
    ) -> None:
        self.kind = kind
        self._anchor, self._trust_offset_s = anchor, trust_offset_s
        self.timeline: ReceiverTimeline | None = None
        self._interval: float | None = None  # EMA of the source frame interval
        self._last_t: float | None = None
        self.clock: CaptureClock | None = None
        try:
            self.timeline = ReceiverTimeline(receiver, self._on_report)
        except RtcpHookError as exc:
            _warn_hook_unavailable(str(exc))

    def _on_report(self, report: SenderReport) -> None:
        if self.clock is not None:
            self.clock.on_sender_report(report.ntp_unix, report.rtp_timestamp, report.arrival)

    def capture_time(self, frame: av.VideoFrame | av.AudioFrame, arrival: float) -> float | None:
        """Capture time of a decoded frame on the sender's clock (arrival-mapped before an SR)."""
        if frame.pts is None or frame.time_base is None:
            return None
        rate = self.timeline.clock_rate if self.timeline is not None else None
        rtp = self.timeline.rtp_timestamp(frame.pts, frame.time_base) if self.timeline else None
        if rate is None or rtp is None:  # no hook: the rebased pts is still a monotonic RTP clock
            rate = VIDEO_CLOCK_RATE if self.kind == "video" else int(1 / frame.time_base)
            rtp = round(frame.pts * frame.time_base * rate) % (1 << 32)
        if self.clock is None:
            self.clock = CaptureClock(
                rate, anchor=self._anchor, trust_offset_s=self._trust_offset_s
            )
        return float(self.clock.capture_time(rtp, arrival))

    def capture_time_rtp(self, rtp_timestamp: int, arrival: float) -> float | None:
        """Capture time of media with a wire RTP timestamp (None before the first frame)."""
        if self.clock is None or self.timeline is None:
            return None
        return float(self.clock.capture_time(rtp_timestamp, arrival))

    def frame_interval(self, t: float) -> float:
        """Expected time to the next frame (an EMA of the source's intervals; 1/30 s at first)."""
        if self._last_t is not None and 0 < t - self._last_t < 1.0:
            step = t - self._last_t
            self._interval = (
                step if self._interval is None else self._interval + 0.1 * (step - self._interval)
            )
        self._last_t = t
        return self._interval if self._interval is not None else 1 / 30

    def close(self) -> None:
        if self.timeline is not None:
            self.timeline.detach()
