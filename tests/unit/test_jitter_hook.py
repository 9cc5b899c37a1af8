"""The loss-tolerant receive buffers on real aiortc receivers (aiortc is pinned 1.16.*): real RTP
packets through the receiver's own `_handle_rtp_packet`, real VP8 from aiortc's encoder."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.codecs import CODECS, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from stream.webrtc.jitter import (
    BoundedVideoJitterBuffer,
    PassThroughJitterBuffer,
    install_audio_guard,
    install_video_buffer,
)
from stream.webrtc.rtcp import RtcpHookError

pytestmark = pytest.mark.unit


def internal(rx: RTCRtpReceiver, name: str) -> Any:
    """A name-mangled private attribute of aiortc's receiver."""
    return getattr(rx, f"_RTCRtpReceiver__{name}")


def receiver(kind: str) -> tuple[RTCRtpReceiver, Any]:
    transport = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
    )
    rx = RTCRtpReceiver(kind, transport)
    codec = CODECS[kind][0]
    internal(rx, "codecs")[codec.payloadType] = codec
    return rx, codec


def spy(rx: RTCRtpReceiver) -> list[tuple[bool, JitterFrame | None]]:
    """Record what the receiver's (replaced) jitter buffer returns for each packet."""
    buffer = internal(rx, "jitter_buffer")
    results: list[tuple[bool, JitterFrame | None]] = []
    real = buffer.add

    def add(packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        result = real(packet)
        results.append(result)
        return result

    buffer.add = add
    return results


class Events:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

        self.undecodable_at: list[int] = []

    def __call__(self, kind: str, event: str, count: int, rtp_timestamp: int | None) -> None:
        if event == "undecodable":
            assert rtp_timestamp is not None
            self.undecodable_at.append(rtp_timestamp)
        key = f"{kind}:{event}"
        self.seen[key] = self.seen.get(key, 0) + count


def test_aiortc_audio_buffer_stalls_on_one_loss() -> None:
    """The upstream behaviour the guard works around: one lost packet holds audio ~300 ms."""
    buffer = JitterBuffer(capacity=16, prefetch=1)
    released = []
    for seq in [0, 1, *range(3, 20)]:
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=960 * seq)
        packet._data = b"x"  # type: ignore[attr-defined]
        frame = buffer.add(packet)[1]
        released.append(frame.timestamp // 960 if frame else None)
    assert released[:3] == [None, 0, None]
    assert released[2:16] == [None] * 14  # 15 packets later audio is still stuck behind seq 2


async def test_audio_guard_releases_in_order_and_gives_a_loss_up_after_the_hold() -> None:
    rx, codec = receiver("audio")
    events = Events()
    install_audio_guard(rx, 0.04, events)
    assert isinstance(internal(rx, "jitter_buffer"), PassThroughJitterBuffer)
    results = spy(rx)
    order = [0, 1, 3, 4, 2, 5, 7, 6, 8]  # 2 lost (arrives too late), 6/7 swapped
    for seq in order:
        packet = RtpPacket(
            payload_type=codec.payloadType, sequence_number=seq, timestamp=960 * seq,
            payload=b"\xfc\xff\xfe",
        )  # fmt: skip
        await rx._handle_rtp_packet(packet, arrival_time_ms=seq * 20)
    released = [f.timestamp // 960 for _, f in results if f is not None]
    assert released == [0, 1, 3, 4, 5, 6, 7, 8]  # in order at once; 2 given up, never backwards
    assert events.seen == {"audio:lost": 1, "audio:late": 1}


def _vp8_packets(keyframes: set[int], count: int, marked: bool = True) -> list[list[RtpPacket]]:
    """RTP packets of `count` real VP8 frames (keyframes where asked), 30 fps; the last packet
    of a frame carries the marker bit unless `marked` is False."""
    codec = CODECS["video"][0]
    encoder = get_encoder(codec)
    rng = np.random.default_rng(1)
    frames, seq = [], 1000
    for i in range(count):
        image = av.VideoFrame.from_ndarray(rng.integers(0, 255, (96, 128, 3), np.uint8), "rgb24")
        image.pts, image.time_base = i * 3000, Fraction(1, 90_000)
        payloads, ts = encoder.encode(image, force_keyframe=i in keyframes)
        packets = []
        for n, payload in enumerate(payloads):
            packets.append(RtpPacket(payload_type=codec.payloadType, sequence_number=seq,
                                     timestamp=ts, payload=payload,
                                     marker=int(n == len(payloads) - 1 and marked)))  # fmt: skip
            seq += 1
        frames.append(packets)
    return frames


async def test_video_buffer_gives_a_lost_packet_up_and_waits_for_a_keyframe() -> None:
    rx, codec = receiver("video")
    events = Events()
    install_video_buffer(rx, 0.1, events)
    assert isinstance(internal(rx, "jitter_buffer"), BoundedVideoJitterBuffer)
    results = spy(rx)
    frames = _vp8_packets(keyframes={0, 9}, count=12)
    assert len(frames[2]) > 1
    lost = frames[2][1]  # frame 2 loses a packet (no retransmission ever comes)
    for packets in frames:
        for packet in packets:
            if packet is not lost:
                await rx._handle_rtp_packet(packet, arrival_time_ms=0)
    released = [f for _, f in results if f is not None]
    first_ts = frames[0][0].timestamp
    indices = [round((f.timestamp - first_ts) / 3000) for f in released]
    # frames 0, 1 decode; 2 (hole) and the inter frames 3..8 after it do not; from keyframe 9 on
    # everything does
    assert indices == [0, 1, 9, 10, 11]
    assert any(pli for pli, _ in results), "no keyframe request after the loss"
    assert events.seen["video:lost"] == 1
    assert events.seen["video:undecodable"] >= 5
    assert [round((t - first_ts) / 3000) for t in events.undecodable_at] == [3, 4, 5, 6, 7, 8]
    assert events.seen["video:keyframe_request"] >= 1
    decoder = get_decoder(codec)
    for frame in released:
        assert decoder.decode(frame), "a released frame did not decode"


async def test_video_without_loss_is_untouched() -> None:
    rx, _ = receiver("video")
    events = Events()
    install_video_buffer(rx, 0.1, events)
    results = spy(rx)
    frames = _vp8_packets(keyframes={0}, count=6)
    for i, packets in enumerate(frames):
        for packet in reversed(packets) if i else packets:  # reordered within each later frame
            await rx._handle_rtp_packet(packet, arrival_time_ms=0)
    assert len([f for _, f in results if f is not None]) == 6  # each at its marker bit
    assert not any(pli for pli, _ in results)
    assert events.seen == {}


def test_install_refuses_what_it_was_not_written_against() -> None:
    with pytest.raises(RtcpHookError):
        install_audio_guard(object(), 0.04, Events())  # type: ignore[arg-type]
    with pytest.raises(RtcpHookError):
        install_video_buffer(object(), 0.1, Events())  # type: ignore[arg-type]


async def test_late_retransmissions_after_a_give_up_do_not_restart_the_buffer() -> None:
    rx, _ = receiver("video")
    events = Events()
    install_video_buffer(rx, 0.1, events)
    results = spy(rx)
    frames = _vp8_packets(keyframes={0, 9}, count=70)
    lost = frames[2][1]
    for packets in frames[:-2]:
        for packet in packets:
            if packet is not lost:
                await rx._handle_rtp_packet(packet, arrival_time_ms=0)
    assert frames[-3][0].sequence_number - lost.sequence_number >= 100  # aiortc's restart distance
    released = len([f for _, f in results if f is not None])
    await rx._handle_rtp_packet(lost, arrival_time_ms=0)  # a NACK retransmission, far too late
    assert events.seen["video:late"] == 1
    for packets in frames[-2:]:
        for packet in packets:
            await rx._handle_rtp_packet(packet, arrival_time_ms=0)
    assert len([f for _, f in results if f is not None]) == released + 2  # nothing thrown away


async def test_without_marker_bits_a_frame_waits_for_the_next_one() -> None:
    rx, _ = receiver("video")
    install_video_buffer(rx, 0.1, Events())
    results = spy(rx)
    for packets in _vp8_packets(keyframes={0}, count=4, marked=False):
        for packet in packets:
            await rx._handle_rtp_packet(packet, arrival_time_ms=0)
    assert len([f for _, f in results if f is not None]) == 3  # the last is not known complete


async def test_a_failing_loss_handler_does_not_break_packet_handling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rx, codec = receiver("audio")

    def broken(kind: str, event: str, count: int, rtp_timestamp: int | None) -> None:
        raise RuntimeError("handler bug")

    install_audio_guard(rx, 0.0, broken)
    results = spy(rx)
    for seq in (0, 2, 3):  # 1 lost: the handler is called and fails
        packet = RtpPacket(payload_type=codec.payloadType, sequence_number=seq,
                           timestamp=960 * seq, payload=b"\xfc\xff\xfe")  # fmt: skip
        await rx._handle_rtp_packet(packet, arrival_time_ms=0)
    assert [f.timestamp // 960 for _, f in results if f is not None] == [0, 2, 3]
    assert "loss event handler failed" in caplog.text
