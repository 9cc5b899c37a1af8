"""WHIP offer validation: every bad offer gets the contract's status, good ones a summary."""

from __future__ import annotations

import pytest

from stream.http.sdp import OfferError, validate_offer

pytestmark = pytest.mark.unit

HEADER = "v=0\r\no=- 4004919832 4004919832 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
TRANSPORT = (
    "c=IN IP4 127.0.0.1\r\na=rtcp-mux\r\n"
    "a=ice-ufrag:l18i\r\na=ice-pwd:Gm44QSipORzCWyURfvRlHI\r\n"
    "a=fingerprint:sha-256 9A:AC:69:53:94:51:B6:02:41:FD:49:54:F7:AD:63:6F:56:F2:F6:F3:B8:B5:79:"
    "2E:8F:20:0C:E4:65:0A:31:B9\r\na=setup:actpass\r\n"
)
Codecs = list[tuple[int, str, str | None]]
VP8: Codecs = [(97, "VP8/90000", None), (98, "rtx/90000", "apt=97")]
H264_CB: Codecs = [(99, "H264/90000", "packetization-mode=1;profile-level-id=42e01f")]
H264_HIGH: Codecs = [(100, "H264/90000", "packetization-mode=1;profile-level-id=640032")]
OPUS: Codecs = [(96, "opus/48000/2", None)]


def section(kind: str, codecs: Codecs, direction: str = "sendonly",
            mid: int = 0) -> str:  # fmt: skip
    pts = " ".join(str(pt) for pt, _, _ in codecs)
    lines = [f"m={kind} 9 UDP/TLS/RTP/SAVPF {pts}", f"a=mid:{mid}", f"a={direction}"]
    for pt, name, fmtp in codecs:
        lines.append(f"a=rtpmap:{pt} {name}")
        if fmtp:
            lines.append(f"a=fmtp:{pt} {fmtp}")
    return "\r\n".join(lines) + "\r\n" + TRANSPORT


def offer(*sections: str) -> bytes:
    return (HEADER + "".join(sections)).encode()


def status_of(body: bytes, max_bytes: int = 100_000) -> int:
    with pytest.raises(OfferError) as info:
        validate_offer(body, max_bytes)
    return info.value.status


def test_audio_and_video_offer_is_summarised() -> None:
    _, summary = validate_offer(
        offer(section("video", VP8 + H264_CB), section("audio", OPUS, mid=1)), 100_000
    )
    assert summary.video_codecs == ("VP8", "H264")
    assert summary.audio_codecs == ("opus",)


def test_video_only_and_audio_only_are_accepted() -> None:
    _, video = validate_offer(offer(section("video", VP8)), 100_000)
    _, audio = validate_offer(offer(section("audio", OPUS)), 100_000)
    assert (video.has_video, video.has_audio) == (True, False)
    assert (audio.has_video, audio.has_audio) == (False, True)


@pytest.mark.parametrize(
    "body",
    [b"", b"\r\n", b"hello world", b"\xff\xfe\x00garbage", b'{"sdp": "v=0"}',
     b"v=0\r\nthis is not sdp\r\n", b"v=1\r\no=- 1 1 IN IP4 0.0.0.0\r\n"],
)  # fmt: skip
def test_malformed_offers_are_400(body: bytes) -> None:
    assert status_of(body) == 400


def test_section_without_ice_credentials_is_400() -> None:
    bare = HEADER + "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 VP8/90000\r\n"
    assert status_of(bare.encode()) == 400


def test_too_large_is_413_before_parsing() -> None:
    assert status_of(b"x" * 2000, max_bytes=1000) == 413


def test_no_media_is_422() -> None:
    assert status_of(offer()) == 422


def test_h264_high_only_is_422_and_says_what_was_offered() -> None:
    with pytest.raises(OfferError) as info:
        validate_offer(offer(section("video", H264_HIGH), section("audio", OPUS, mid=1)), 100_000)
    assert info.value.status == 422
    assert "640032" in info.value.detail
    assert "constrained baseline" in info.value.detail


def test_unsupported_audio_codec_is_422() -> None:
    assert status_of(offer(section("audio", [(111, "ISAC/16000", None)]))) == 422


def test_recvonly_offer_is_422() -> None:
    assert status_of(offer(section("video", VP8, direction="recvonly"))) == 422


def test_two_video_tracks_are_422() -> None:
    assert status_of(offer(section("video", VP8), section("video", VP8, mid=1))) == 422
