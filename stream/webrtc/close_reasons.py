"""Why a session failed, in the words the status channel and `/api/streams` use (pure).

aiortc reports one `connectionState` for the whole peer connection: "failed" whether ICE never
found a path or ICE worked and the DTLS handshake did not (a publisher whose DTLS stack does not
accept ours). The two need different fixes (network/TURN vs. certificates/cipher suites), so the
reason is read from the transports' own states. A stalled stream is told apart the same way:
RTP still arriving at the end of the media timeout while no frame decodes is `decode errors` (a
codec or packetisation the decoder rejects), nothing arriving is `no media`.
"""

from __future__ import annotations

from collections.abc import Iterable

DTLS_FAILED = "dtls failed"
ICE_FAILED = "ice failed"
CONNECTION_CLOSED = "connection closed"
DECODE_ERRORS = "decode errors"
NO_MEDIA = "no media"
OVERLOADED = "overloaded"  # the scheduler's `degraded` reason starts with this word


def connection_failure(states: Iterable[tuple[str, str]]) -> str:
    """The reason for a failed/closed connection from its transports' (ICE, DTLS) states.

    Any DTLS transport that failed over an ICE transport that had connected means the handshake
    failed; an ICE transport that failed (or none that connected) means ICE failed.
    """
    pairs = list(states)
    if any(
        dtls == "failed" and ice in ("completed", "connected", "checking") for ice, dtls in pairs
    ):
        return DTLS_FAILED
    if any(ice == "failed" for ice, _ in pairs):
        return ICE_FAILED
    if any(dtls == "failed" for _, dtls in pairs):
        return DTLS_FAILED
    return CONNECTION_CLOSED


def stall_reason(packets_before: int | None, packets_now: int | None) -> str:
    """Why no frame came for the media timeout: RTP packets still arriving (between the
    watchdog's last two looks, long after the last decoded frame) or not."""
    if packets_before is None or packets_now is None:
        return NO_MEDIA
    return DECODE_ERRORS if packets_now > packets_before else NO_MEDIA
