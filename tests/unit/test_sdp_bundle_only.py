"""Offers whose second section is `a=bundle-only` (port 0 inside a BUNDLE group): media, not a
rejected section. GStreamer's whipsink and Chrome with max-bundle send these."""

from __future__ import annotations

import pytest

from stream.http.sdp import OfferError, validate_offer

pytestmark = pytest.mark.unit

FINGERPRINT = (
    "a=fingerprint:sha-256 9A:AC:69:53:94:51:B6:02:41:FD:49:54:F7:AD:63:6F:56:F2:F6:F3:B8:B5:79:"
    "2E:8F:20:0C:E4:65:0A:31:B9\r\n"
)


def offer(*, group: bool, audio_port: int, bundle_only: bool) -> bytes:
    head = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    if group:
        head += "a=group:BUNDLE video0 audio1\r\n"
    transport = "c=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:" + (
        "p" * 22 + "\r\n" + FINGERPRINT
    )
    video = (
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + transport + "a=rtcp-mux\r\na=sendrecv\r\n"
        "a=rtpmap:96 VP8/90000\r\na=mid:video0\r\n"
    )
    audio = (
        f"m=audio {audio_port} UDP/TLS/RTP/SAVPF 97\r\n" + transport
        + ("a=bundle-only\r\n" if bundle_only else "")
        + "a=rtcp-mux\r\na=sendrecv\r\na=rtpmap:97 OPUS/48000/2\r\na=mid:audio1\r\n"
    )  # fmt: skip
    return (head + video + audio).encode()


def test_bundle_only_section_in_a_bundle_group_is_media() -> None:
    _, summary = validate_offer(offer(group=True, audio_port=0, bundle_only=True), 100_000)
    assert summary.has_video
    assert summary.audio_codecs == ("opus",)


@pytest.mark.parametrize(
    ("group", "bundle_only", "status"),
    [(True, False, 422), (False, True, 422)],  # port 0 alone, or bundle-only outside any group
)
def test_port_zero_without_bundle_only_in_a_group_is_refused(
    group: bool, bundle_only: bool, status: int
) -> None:
    """A disabled section (port 0 not bundled into the group) is not published media: the
    publisher is told to offer only its tracks (422)."""
    with pytest.raises(OfferError) as refused:
        validate_offer(offer(group=group, audio_port=0, bundle_only=bundle_only), 100_000)
    assert refused.value.status == status
