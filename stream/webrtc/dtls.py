"""DTLS interop adapters for aiortc (pinned 1.16.*): who is the DTLS client, and with which suites.

Two facts about aiortc 1.16 break publishers that are not browsers:

- **Role.** Answering an offer with `a=setup:actpass`, aiortc always answers `a=setup:active`, so
  it is the DTLS client and the publisher's DTLS stack must accept aiortc's ClientHello.
- **Suites.** Its ClientHello offers only ECDHE-ECDSA suites (aiortc#1011 cut the list down, to
  keep the ClientHello unfragmented for mbedTLS, aiortc#956). A publisher whose certificate is
  RSA, as GStreamer webrtcbin's is, answers `no shared cipher` (aiortc#1392, #1335, #1434; PR
  #1421 was not merged).

`answer_passive` makes aiortc answer `a=setup:passive` to an `actpass` offer: the publisher is then
the DTLS client and proposes suites of its own, which include the ECDHE-ECDSA ones our ECDSA
certificate can serve (RFC 8842 §5.3 lets the answerer pick either role; a WHIP server answering
passive is what most media servers do). `widen_client_suites` adds three ECDHE-RSA suites to
aiortc's list, for offers that say `a=setup:passive` (the publisher is the DTLS server) with an
RSA certificate; the list stays short (12 suites with the SCSV), so the ClientHello still fits
in one record. Both reach into aiortc internals; `check_internals` fails loudly when a new aiortc
changes them (`tests/unit/test_dtls_adapter.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport

from stream.webrtc.aiortc_internals import require_pinned

_CONTEXT_ATTR = "_create_ssl_context"
_ROLE_ATTR = "_role"
# aiortc 1.16's own list first (ECDSA: our certificate), then ECDHE-RSA for RSA peers as servers.
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:"
    b"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA"
)


class DtlsAdapterError(RuntimeError):
    """aiortc's DTLS internals are not what this module was written against."""


def check_internals() -> None:
    """Raise `DtlsAdapterError` unless aiortc has every internal this module relies on."""
    require_pinned(DtlsAdapterError)
    if not callable(getattr(RTCCertificate, _CONTEXT_ATTR, None)):
        raise DtlsAdapterError("aiortc RTCCertificate has no `_create_ssl_context`")
    if not callable(getattr(RTCDtlsTransport, "_set_role", None)):
        raise DtlsAdapterError("aiortc RTCDtlsTransport has no `_set_role`")


_original_context: Callable[..., Any] | None = None


def widen_client_suites() -> None:
    """Offer ECDHE-RSA suites as well in every DTLS context aiortc creates (idempotent)."""
    global _original_context
    check_internals()
    if _original_context is not None:
        return
    original: Callable[..., Any] = getattr(RTCCertificate, _CONTEXT_ATTR)

    @functools.wraps(original)
    def create_ssl_context(self: RTCCertificate, *args: Any, **kwargs: Any) -> Any:
        context = original(self, *args, **kwargs)
        context.set_cipher_list(CIPHERS)
        return context

    _original_context = original
    setattr(RTCCertificate, _CONTEXT_ATTR, create_ssl_context)


def client_suites_widened() -> bool:
    """Whether `widen_client_suites` is in effect."""
    return _original_context is not None


def restore_client_suites() -> None:
    """Undo `widen_client_suites` (tests)."""
    global _original_context
    if _original_context is not None:
        setattr(RTCCertificate, _CONTEXT_ATTR, _original_context)
        _original_context = None


def actpass_mids(offer_sdp: str) -> set[str]:
    """The mids of the offer's media sections that say `a=setup:actpass` (pure).

    A session-level `a=setup` applies to every section that has none of its own.
    """
    session_setup: str | None = None
    sections: list[tuple[str | None, str | None]] = []  # (mid, setup) per m-section
    for raw in offer_sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append((None, None))
        elif line.startswith("a=setup:"):
            value = line[len("a=setup:") :].strip().lower()
            if sections:
                sections[-1] = (sections[-1][0], value)
            else:
                session_setup = value
        elif line.startswith("a=mid:") and sections:
            sections[-1] = (line[len("a=mid:") :].strip(), sections[-1][1])
    return {
        mid for mid, setup in sections if mid is not None and (setup or session_setup) == "actpass"
    }


def answer_passive(pc: RTCPeerConnection, offer_sdp: str) -> int:
    """After `setRemoteDescription(offer)`: be the DTLS server where the offer said actpass.

    Call before `createAnswer` (which then writes `a=setup:passive`). Returns how many DTLS
    transports were switched. Raises `DtlsAdapterError` if aiortc's internals changed.
    """
    check_internals()
    mids = actpass_mids(offer_sdp)
    switched = 0
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transceiver.mid not in mids or getattr(transport, _ROLE_ATTR, None) != "auto":
            continue
        transport._set_role("server")
        switched += 1
    return switched
