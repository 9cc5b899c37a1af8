"""The aiortc receiver hook: fails loudly if aiortc's internals move (aiortc is pinned 1.16.*)."""

from __future__ import annotations

import inspect
import itertools
import logging
from fractions import Fraction
from typing import Any

import aiortc
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, rtcrtpreceiver
from aiortc.codecs import CODECS
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from stream.webrtc.ntp import unix_to_ntp
from stream.webrtc.rtcp import (
    ReceiverTimeline,
    RembThrottle,
    RtcpHookError,
    SenderReport,
    check_internals,
    throttle_remb,
    watch_decode_errors,
)

pytestmark = pytest.mark.unit


def internal(rx: RTCRtpReceiver, name: str) -> Any:
    """A name-mangled private attribute of aiortc's receiver."""
    return getattr(rx, f"_RTCRtpReceiver__{name}")


def receiver(kind: str = "audio") -> RTCRtpReceiver:
    # A real, never-started transport: the receiver only checks its state until it receives.
    transport = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
    )
    rx = RTCRtpReceiver(kind, transport)
    codec = CODECS[kind][0]
    internal(rx, "codecs")[codec.payloadType] = codec
    return rx


def test_aiortc_is_the_pinned_version() -> None:
    assert aiortc.__version__.startswith("1.16."), (
        "stream/webrtc/rtcp.py reads aiortc 1.16 receiver internals: re-check it, then re-pin"
    )


def test_receiver_internals_are_present() -> None:
    check_internals(receiver())  # raises RtcpHookError naming what moved


def feed_delayed_packets(estimator: Any, packets: int, delay_growth_ms: float) -> list[int]:
    """Video packets every 5 ms whose one-way delay grows steadily (a congested path); returns
    the arrival times (ms) at which the estimator asked for a REMB to be sent."""
    sent = []
    for i in range(packets):
        send_ms = 5 * i
        abs_send_time = int(send_ms / 1000 * (1 << 18)) & 0xFFFFFF  # 6.18 fixed point seconds
        arrival = 1000 + int(send_ms + delay_growth_ms * i)
        if estimator.add(
            arrival_time_ms=arrival, abs_send_time=abs_send_time, payload_size=1200, ssrc=1
        ):
            sent.append(arrival)
    return sent


def test_remb_is_sent_at_libwebrtc_cadence_under_overuse() -> None:
    from aiortc.rate import RemoteBitrateEstimator

    plain = feed_delayed_packets(RemoteBitrateEstimator(), 2000, 0.5)
    throttled = feed_delayed_packets(RembThrottle(RemoteBitrateEstimator()), 2000, 0.5)
    span_s = (plain[-1] - plain[0]) / 1000
    assert len(plain) / span_s > 50, "aiortc no longer sends a REMB per packet: drop the throttle?"
    assert throttled[0] == plain[0]  # the first estimate goes out at once
    gaps = [b - a for a, b in itertools.pairwise(throttled)]
    assert min(gaps) >= 200
    assert len(throttled) / span_s >= 4  # still fed back ~5 times a second


def test_remb_drop_of_three_percent_is_sent_at_once() -> None:
    class Scripted:
        def __init__(self, bitrates: list[int]) -> None:
            self.bitrates = bitrates

        def add(self, **_: int) -> tuple[int, list[int]]:
            return self.bitrates.pop(0), [1]

    throttle = RembThrottle(Scripted([1_000_000, 990_000, 960_000, 950_000, 900_000]))
    sent = [throttle.add(10 * i, 0, 1200, 1) for i in range(5)]  # 10 ms apart
    assert [r[0] if r else None for r in sent] == [1_000_000, None, 960_000, None, 900_000]
    assert throttle.suppressed == 2


def test_remb_throttle_wraps_the_video_receivers_estimator() -> None:
    rx = receiver("video")
    throttle = throttle_remb(rx)
    assert isinstance(throttle, RembThrottle)
    assert internal(rx, "remote_bitrate_estimator") is throttle
    assert throttle_remb(rx) is throttle  # wrapping twice keeps one throttle
    assert throttle_remb(receiver("audio")) is None  # audio has no REMB estimator
    with pytest.raises(RtcpHookError):
        throttle_remb(object())  # type: ignore[arg-type]


def test_missing_internals_raise() -> None:
    class NotAReceiver:
        pass

    with pytest.raises(RtcpHookError):
        check_internals(NotAReceiver())  # type: ignore[arg-type]


async def test_sender_reports_reach_the_callback_and_aiortc_still_handles_them() -> None:
    rx = receiver()
    reports: list[SenderReport] = []
    ReceiverTimeline(rx, reports.append, wall_clock=lambda: 123.0)
    info = RtcpSenderInfo(ntp_timestamp=unix_to_ntp(1_795_929_600.25), rtp_timestamp=48_000,
                          packet_count=1, octet_count=10)  # fmt: skip
    await rx._handle_rtcp_packet(RtcpSrPacket(ssrc=1234, sender_info=info))
    assert len(reports) == 1
    assert reports[0].ntp_unix == pytest.approx(1_795_929_600.25, abs=1e-6)
    assert (reports[0].rtp_timestamp, reports[0].arrival) == (48_000, 123.0)
    assert 1234 in internal(rx, "lsr")  # the original handler ran too


def test_wire_rtp_timestamp_is_recovered_from_the_rebased_pts() -> None:
    rx = receiver("video")
    timeline = ReceiverTimeline(rx, lambda _: None)
    assert timeline.clock_rate == 90_000
    assert timeline.rtp_timestamp(0, Fraction(1, 90_000)) is None  # nothing received yet
    mapper = internal(rx, "timestamp_mapper")
    first = (1 << 32) - 3000
    assert mapper.map(first) == 0
    assert timeline.rtp_timestamp(0, Fraction(1, 90_000)) == first
    pts = mapper.map(3000)  # wrapped on the wire
    assert timeline.rtp_timestamp(pts, Fraction(1, 90_000)) == 3000


def test_decode_errors_are_seen_in_aiortcs_warning() -> None:
    source = inspect.getsource(rtcrtpreceiver.decoder_worker)
    assert '"RTCRtpReceiver(%s) failed to decode %s frame: %s"' in source  # what we match
    seen: list[str] = []
    unwatch = watch_decode_errors(seen.append)
    log = logging.getLogger("aiortc.rtcrtpreceiver")
    log.warning("RTCRtpReceiver(%s) failed to decode %s frame: %s", "video", "VP8", "boom")
    log.warning("RTCRtpReceiver(%s) something else", "audio")
    unwatch()
    log.warning("RTCRtpReceiver(%s) failed to decode %s frame: %s", "video", "VP8", "boom")
    assert seen == ["video"]
