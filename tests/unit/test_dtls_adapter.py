"""The DTLS interop adapter against the pinned aiortc: who is the DTLS client, which suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import SRTP_AES128_CM_SHA1_80, RTCCertificate
from OpenSSL import SSL

from stream.webrtc.dtls import (
    actpass_mids,
    answer_passive,
    check_internals,
    client_suites_widened,
    restore_client_suites,
    widen_client_suites,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def widened() -> Iterator[None]:
    """Widened for the test; afterwards as before (sessions in this process widen it once)."""
    before = client_suites_widened()
    widen_client_suites()
    try:
        yield
    finally:
        restore_client_suites()
        if before:
            widen_client_suites()


def test_pinned_aiortc_has_the_internals() -> None:
    check_internals()


def _suites() -> list[str]:
    context = RTCCertificate.generateCertificate()._create_ssl_context(
        srtp_profiles=[SRTP_AES128_CM_SHA1_80]
    )
    # TLS 1.3 suites are listed too, but DTLS 1.2 never uses them
    return [s for s in SSL.Connection(context).get_cipher_list() if not s.startswith("TLS_")]


def test_client_suites_add_ecdhe_rsa_and_stay_short(widened: None) -> None:
    suites = _suites()
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in suites  # RFC 8827's mandatory suite, first
    assert suites[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert "ECDHE-RSA-AES128-GCM-SHA256" in suites  # GStreamer's and other RSA certificates
    # aiortc#956: a long list fragments the ClientHello, which mbedTLS (OBS) cannot reassemble
    assert len(suites) <= 8


def test_restore_brings_back_aiortc_s_own_list(widened: None) -> None:
    restore_client_suites()
    assert not any("RSA" in s.replace("ECDSA", "") for s in _suites())


def test_actpass_mids_reads_session_and_media_level_setup() -> None:
    sdp = (
        "v=0\r\na=setup:actpass\r\nm=video 9 X 96\r\na=mid:v\r\n"
        "m=audio 9 X 97\r\na=setup:passive\r\na=mid:a\r\nm=video 9 X 98\r\na=mid:w\r\n"
        "a=setup:actpass\r\n"
    )
    assert actpass_mids(sdp) == {"v", "w"}


async def _offer(setup: str) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp.replace("a=setup:actpass", f"a=setup:{setup}")


@pytest.mark.parametrize(("offered", "answered"), [
    ("actpass", "passive"),  # we are the DTLS server: the publisher picks from its suites
    ("passive", "active"),  # the publisher insists on being the server (FFmpeg)
    ("active", "passive"),
])  # fmt: skip
async def test_answer_setup_follows_the_offer(offered: str, answered: str) -> None:
    offer = await _offer(offered)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        answer_passive(pc, offer)
        await pc.setLocalDescription(await pc.createAnswer())
        assert f"a=setup:{answered}" in pc.localDescription.sdp
    finally:
        await pc.close()
