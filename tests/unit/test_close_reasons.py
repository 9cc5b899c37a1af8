"""Close reasons: ICE vs DTLS failure from the transports' states, decode errors vs no media."""

from __future__ import annotations

import pytest

from stream.webrtc.close_reasons import (
    CONNECTION_CLOSED,
    DECODE_ERRORS,
    DTLS_FAILED,
    ICE_FAILED,
    NO_MEDIA,
    connection_failure,
    stall_reason,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("states", "reason"),
    [
        ([("completed", "failed")], DTLS_FAILED),  # ICE worked, the handshake did not
        ([("failed", "connecting")], ICE_FAILED),
        ([("failed", "new")], ICE_FAILED),
        ([("completed", "connected"), ("completed", "failed")], DTLS_FAILED),  # unbundled
        ([("failed", "failed")], ICE_FAILED),  # no path: DTLS never had a chance
        ([("closed", "failed")], DTLS_FAILED),
        ([("completed", "closed")], CONNECTION_CLOSED),  # the publisher closed DTLS
        ([], CONNECTION_CLOSED),
    ],
)
def test_connection_failure_names_the_layer_that_failed(
    states: list[tuple[str, str]], reason: str
) -> None:
    assert connection_failure(states) == reason


def test_stall_reason_tells_undecodable_rtp_from_silence() -> None:
    assert stall_reason(100, 140) == DECODE_ERRORS  # RTP keeps coming, nothing decodes
    assert stall_reason(140, 140) == NO_MEDIA
    assert stall_reason(None, 140) == NO_MEDIA  # stats unavailable: say only what is known
    assert stall_reason(140, None) == NO_MEDIA
