"""Pure validation of a WHIP offer before any WebRTC object is created.

Every rejection carries the HTTP status the README's HTTP contract assigns: 400 malformed, 413 too
large, 422 nothing usable. Codec support is checked with aiortc's own capability list and
matching rule, so "accepted here" means "negotiable by the peer connection".
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.rtcpeerconnection import find_common_codecs

MEDIA_KINDS = ("audio", "video")


class OfferError(Exception):
    """An offer that cannot be answered; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What a valid offer will publish: which kinds, with which negotiable codecs."""

    video_codecs: tuple[str, ...]
    audio_codecs: tuple[str, ...]

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
    _check_structure(text)
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise OfferError(400, f"malformed SDP: {exc}") from exc
    return text, _summarise(description, _bundle_only_mids(text, description))


def _check_structure(text: str) -> None:
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if not lines:
        raise OfferError(400, "empty SDP offer")
    if lines[0].strip() != "v=0":
        raise OfferError(400, "malformed SDP: the first line must be v=0")
    for number, line in enumerate(lines, start=1):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise OfferError(400, f"malformed SDP: line {number} is not `<type>=<value>`")
    if not any(line.startswith("o=") for line in lines):
        raise OfferError(400, "malformed SDP: no o= line")


def _bundle_only_mids(text: str, description: aiortc_sdp.SessionDescription) -> set[str]:
    """Mids of `a=bundle-only` sections inside a BUNDLE group (RFC 9143 §6): port 0, yet media.

    aiortc's parser drops `a=bundle-only`, so it is read from the text. webrtcbin's default
    (max-bundle in whipsink/whipclientsink) and Chrome with `bundlePolicy: "max-bundle"` send
    every section but the first like this.
    """
    bundled = {mid for g in description.group if g.semantic == "BUNDLE" for mid in g.items}
    found: set[str] = set()
    mid: str | None = None
    flagged = False
    for line in [*text.splitlines(), "m="]:
        line = line.strip()
        if line.startswith("m="):
            if flagged and mid in bundled:
                found.add(mid)
            mid, flagged = None, False
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line == "a=bundle-only":
            flagged = True
    return found


def _summarise(
    description: aiortc_sdp.SessionDescription, bundle_only: set[str] | frozenset[str] = frozenset()
) -> OfferSummary:
    found: dict[str, tuple[str, ...]] = {}
    for media in description.media:
        rejected = media.port == 0 and media.rtp.muxId not in bundle_only
        if media.kind not in MEDIA_KINDS or rejected:
            continue  # data channels and rejected sections are not ours to judge
        if media.kind in found:
            raise OfferError(422, f"more than one {media.kind} track; publish one of each kind")
        if media.direction not in (None, "sendonly", "sendrecv"):
            raise OfferError(
                422, f"the {media.kind} track is `{media.direction}`: WHIP only receives"
            )
        if not media.ice or not media.dtls:
            raise OfferError(
                400, f"malformed SDP: the {media.kind} section lacks ICE/DTLS attributes"
            )
        common = [
            c for c in find_common_codecs(CODECS[media.kind], media.rtp.codecs) if c.name != "rtx"
        ]
        if not common:
            offered = sorted({_describe(c) for c in media.rtp.codecs if c.name != "rtx"})
            raise OfferError(
                422,
                f"no usable {media.kind} codec in the offer ({', '.join(offered) or 'none'}); "
                + (
                    "use VP8 or H.264 constrained baseline" if media.kind == "video" else "use Opus"
                ),
            )
        found[media.kind] = tuple(dict.fromkeys(c.name for c in common))
    if not found:
        raise OfferError(422, "the offer has no audio or video track")
    return OfferSummary(found.get("video", ()), found.get("audio", ()))


def _describe(codec: object) -> str:
    name = str(getattr(codec, "name", "?"))
    profile = getattr(codec, "parameters", {}).get("profile-level-id")
    return f"{name} {profile}" if profile else name
