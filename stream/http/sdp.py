"""Pure validation of a WHIP offer before any slot, claim or WebRTC object exists.

Every rejection carries the HTTP status the README's HTTP contract assigns: 400 malformed, 413 too
large, 422 nothing usable. `offer_check` reads every line; this module decides what is published:
one audio and/or one video track, sent to us, in a codec the pipeline decodes (video VP8 or H.264
constrained baseline, matched by aiortc's own rule so that "accepted here" means "negotiable by
the peer connection"; audio Opus only, the one audio codec the answer accepts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import ParametersDict, RTCRtpCodecParameters

from stream.http.offer_check import ParsedOffer, check_transport, parse_offer
from stream.http.sdp_lines import FMTP_INT_PARAMETERS, MEDIA_KINDS, MediaSection, OfferError

__all__ = ["OfferError", "OfferSummary", "decodable_codecs", "validate_offer"]

logger = logging.getLogger(__name__)

CODEC_ADVICE = {"video": "use VP8 or H.264 constrained baseline", "audio": "use Opus"}


def decodable_codecs(kind: str) -> list[RTCRtpCodecParameters]:
    """What the pipeline decodes, as aiortc codec parameters: every aiortc video codec (VP8 and
    H.264 baseline / constrained baseline, packetization-mode 1) and, for audio, Opus only."""
    return [c for c in CODECS[kind] if kind == "video" or c.name.lower() == "opus"]


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What a valid offer will publish: which kinds (in m-line order), with which codecs."""

    video_codecs: tuple[str, ...]
    audio_codecs: tuple[str, ...]
    kinds: tuple[str, ...] = ()

    @property
    def has_video(self) -> bool:
        return bool(self.video_codecs)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codecs)


def validate_offer(body: bytes, max_bytes: int) -> tuple[str, OfferSummary]:
    """Decode and check an SDP offer; returns its text and a summary or raises `OfferError`."""
    if len(body) > max_bytes:
        raise OfferError(413, f"offer is {len(body)} bytes; at most {max_bytes} are accepted")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OfferError(400, "offer is not UTF-8 text") from exc
    offer = parse_offer(text)
    summary = _summarise(offer)
    check_transport(offer)
    try:  # a last guard: what offer_check accepts must parse in aiortc
        aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:
        logger.warning("offer passed our checks but not aiortc's parser",
                       extra={"error": type(exc).__name__})  # fmt: skip
        raise OfferError(400, "malformed SDP: the offer could not be read") from None
    return text, summary


def _summarise(offer: ParsedOffer) -> OfferSummary:
    found: dict[str, tuple[str, ...]] = {}
    kinds: list[str] = []
    for media in offer.media:
        if media.kind not in MEDIA_KINDS:
            continue  # a data channel: negotiated, never read
        if media.kind in found:
            raise OfferError(422, f"more than one {media.kind} track; publish one of each kind")
        if media.direction is None:  # RFC 4566's default (sendrecv) is unknown to aiortc
            raise OfferError(
                422, f"the {media.kind} track has no direction; a publisher offers a=sendonly"
            )
        if media.direction not in ("sendonly", "sendrecv"):
            raise OfferError(
                422, f"the {media.kind} track is `{media.direction}`: WHIP only receives"
            )
        offered = _codecs(media)
        common = [
            c for c in find_common_codecs(decodable_codecs(media.kind), offered) if c.name != "rtx"
        ]
        if not common:
            names = sorted({_describe(c) for c in offered if c.name.lower() != "rtx"})
            raise OfferError(
                422,
                f"no usable {media.kind} codec in the offer ({', '.join(names) or 'none'}); "
                + CODEC_ADVICE[media.kind],
            )
        found[media.kind] = tuple(dict.fromkeys(c.name for c in common))
        kinds.append(media.kind)
    if not found:
        raise OfferError(422, "the offer has no audio or video track")
    return OfferSummary(found.get("video", ()), found.get("audio", ()), tuple(kinds))


def _codecs(media: MediaSection) -> list[RTCRtpCodecParameters]:
    """The section's codecs as aiortc reads them (fmtp integers converted the same way)."""
    codecs = []
    for pt, rtpmap in media.rtpmaps.items():
        parameters: ParametersDict = {}
        for key, value in media.fmtps.get(pt, {}).items():
            parameters[key] = int(value) if key in FMTP_INT_PARAMETERS and value else value
        codecs.append(
            RTCRtpCodecParameters(
                mimeType=f"{media.kind}/{rtpmap.name}",
                clockRate=rtpmap.clock_rate,
                channels=rtpmap.channels,
                payloadType=pt,
                parameters=parameters,
            )
        )
    return codecs


def _describe(codec: RTCRtpCodecParameters) -> str:
    profile = codec.parameters.get("profile-level-id")
    return f"{codec.name} {profile}" if profile else codec.name
