"""Pure loss decisions: bounded reordering, frame starts and keyframes, the keyframe gate."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from stream.webrtc.loss import (
    KeyframeGate,
    PacketReorder,
    SequenceUnwrapper,
    frame_start,
    h264_annexb_keyframe,
    h264_frame_start,
    rtp_delta,
    vp8_frame_start,
)

pytestmark = pytest.mark.unit

FRAME = 960  # one 20 ms Opus frame at 48 kHz


def push_all(reorder: PacketReorder[int], seqs: list[int]) -> list[int]:
    out: list[int] = []
    for seq in seqs:
        out.extend(reorder.push(seq % 65536, (seq * FRAME) % (1 << 32), seq))
    return out


def test_in_order_packets_are_released_at_once() -> None:
    reorder: PacketReorder[int] = PacketReorder(48_000, 0.04)
    for seq in range(10):
        assert reorder.push(seq, seq * FRAME, seq) == [seq]
    assert reorder.held == 0
    assert reorder.counts.lost == 0


def test_a_reordered_packet_within_the_hold_is_put_back_in_place() -> None:
    reorder: PacketReorder[int] = PacketReorder(48_000, 0.04)
    assert push_all(reorder, [0, 1, 3, 2, 4]) == [0, 1, 2, 3, 4]
    assert reorder.counts.lost == 0


def test_a_lost_packet_is_given_up_once_audio_runs_past_the_hold() -> None:
    reorder: PacketReorder[int] = PacketReorder(48_000, 0.04)
    assert push_all(reorder, [0, 1]) == [0, 1]
    assert reorder.push(3, 3 * FRAME, 3) == []  # 40 ms past the last released: still waiting
    assert reorder.push(4, 4 * FRAME, 4) == [3, 4]  # 60 ms: packet 2 given up
    assert reorder.counts.lost == 1
    assert reorder.push(2, 2 * FRAME, 2) == []  # too late: would send time backwards
    assert reorder.counts.late == 1
    assert reorder.push(5, 5 * FRAME, 5) == [5]


def test_a_blackout_is_released_with_the_first_packet_after_it() -> None:
    reorder: PacketReorder[int] = PacketReorder(48_000, 0.04)
    push_all(reorder, [0, 1, 2])
    assert reorder.push(103, 103 * FRAME, 103) == [103]  # 2 s of RTP time ahead: no wait
    assert reorder.counts.lost == 100


def test_duplicates_and_sequence_wrap() -> None:
    reorder: PacketReorder[int] = PacketReorder(48_000, 0.04)
    assert push_all(reorder, [65534, 65536, 65536, 65535, 65537]) == [65534, 65535, 65536, 65537]
    assert reorder.counts.duplicate == 1
    assert reorder.counts.lost == 0
    assert push_all(reorder, [65537]) == []  # a repeat of a released packet is simply late
    assert reorder.counts.late == 1


def test_the_hold_is_also_bounded_by_packet_count() -> None:
    reorder: PacketReorder[int] = PacketReorder(48_000, 10.0, capacity=4)
    assert reorder.push(0, 0, 0) == [0]
    out = [r for seq in range(2, 8) for r in reorder.push(seq, 0, seq)]  # same RTP time
    assert out == [2, 3, 4, 5, 6, 7]
    assert reorder.counts.lost == 1


def test_rtp_arithmetic_wraps() -> None:
    assert rtp_delta(5, (1 << 32) - 5) == 10
    assert rtp_delta((1 << 32) - 5, 5) == -10
    unwrap = SequenceUnwrapper()
    assert [unwrap.unwrap(s) for s in (65535, 0, 65535, 1)] == [65535, 65536, 65535, 65537]


def _frames(n: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 255, (120, 160, 3), np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90_000)
        out.append(frame)
    return out


def test_vp8_payloads_from_aiortcs_encoder_are_classified() -> None:
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
    encoder = get_encoder(codec)
    first, _ = encoder.encode(_frames(1)[0])
    second, _ = encoder.encode(_frames(2)[1])
    keyed, _ = encoder.encode(_frames(3)[2], force_keyframe=True)
    assert vp8_frame_start(first[0]) == (True, True)
    assert vp8_frame_start(second[0]) == (True, False)
    assert vp8_frame_start(keyed[0]) == (True, True)
    assert frame_start("video/VP8", keyed[0]) == (True, True)
    for later in first[1:]:
        assert vp8_frame_start(later)[0] is False


def test_h264_payloads_from_aiortcs_encoder_are_classified() -> None:
    encoder = H264Encoder()
    first, _ = encoder.encode(_frames(1)[0])
    second, _ = encoder.encode(_frames(2)[1])
    assert h264_frame_start(first[0]) == (True, True)  # STAP-A with SPS/PPS, or an IDR start
    assert h264_frame_start(second[0])[0] is True
    assert h264_frame_start(second[0])[1] is False
    assert frame_start("video/H264", first[0]) == (True, True)
    assert frame_start("audio/opus", b"\x01") == (True, False)


def test_h264_access_units_are_searched_for_an_idr_or_sps() -> None:
    sei, idr, slice_ = b"\x06\x05\x01", b"\x65\x88\x80", b"\x41\x9a\x02"
    assert h264_annexb_keyframe(b"\x00\x00\x00\x01" + sei + b"\x00\x00\x01" + idr)
    assert not h264_annexb_keyframe(b"\x00\x00\x00\x01" + sei + b"\x00\x00\x01" + slice_)
    assert not h264_annexb_keyframe(b"")


def test_keyframe_gate_drops_inter_frames_after_a_loss_and_asks_again() -> None:
    gate = KeyframeGate(request_every=3, max_wait_frames=10)
    assert gate.admit(True, False) == (True, False)
    assert gate.lost() is True
    assert gate.lost() is False  # one request per loss burst
    results = [gate.admit(True, False) for _ in range(3)]
    assert results == [(False, False), (False, False), (False, True)]
    assert gate.admit(True, True) == (True, False)
    assert gate.admit(True, False) == (True, False)
    assert gate.dropped == 3
    assert gate.requests == 2


def test_keyframe_gate_gives_up_on_a_sender_that_never_answers() -> None:
    gate = KeyframeGate(request_every=100, max_wait_frames=5)
    gate.lost()
    assert [gate.admit(True, False)[0] for _ in range(6)] == [False] * 5 + [True]


def test_a_frame_without_its_head_is_never_passed() -> None:
    gate = KeyframeGate()
    assert gate.admit(False, False) == (False, True)
    assert gate.awaiting
