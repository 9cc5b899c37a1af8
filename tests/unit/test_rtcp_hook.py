"""The aiortc receiver hook: fails loudly if aiortc's internals move (aiortc is pinned 1.16.*)."""

from __future__ import annotations

import inspect
import logging
from fractions import Fraction
from typing import Any

import aiortc
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, rtcrtpreceiver
from aiortc.codecs import CODECS
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from stream.clock import unix_to_ntp
from stream.webrtc.rtcp import (
    ReceiverTimeline,
    RtcpHookError,
    SenderReport,
    check_internals,
    set_jitter_prefetch,
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


def test_audio_jitter_prefetch_is_set_and_releases_frames_sooner() -> None:
    from aiortc.rtp import RtpPacket

    rx = receiver("audio")
    buffer = internal(rx, "jitter_buffer")
    assert buffer._prefetch == 4, "aiortc's audio default changed: re-check the latency note"
    set_jitter_prefetch(rx, 1)
    released = []
    for n in range(3):
        packet = RtpPacket(payload_type=111, sequence_number=n, timestamp=960 * n)
        packet._data = b"opus"  # type: ignore[attr-defined]  # what aiortc's depayloader attaches before the jitter buffer
        released.append(buffer.add(packet)[1])
    # with prefetch 1 a 20 ms frame leaves as soon as the next one starts (aiortc's 4: 80 ms)
    assert released[0] is None
    assert released[1] is not None
    assert released[1].timestamp == 0
    with pytest.raises(RtcpHookError):
        set_jitter_prefetch(object(), 1)  # type: ignore[arg-type]


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
