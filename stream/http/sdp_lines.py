"""One SDP line at a time, read as aiortc reads it: the values of an offer's attributes.

Each reader checks what aiortc would convert or look up in its line (`int()` on a number,
`split()` unpacked to a fixed length, a payload type that must exist) and raises `OfferError`
with a reason in our words; `stream.http.offer_check` groups the lines and checks the whole
offer. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MEDIA_KINDS = ("audio", "video")
_C_VALUE = re.compile(r"^IN (IP4|IP6) ([^ ]+)$")  # aiortc's ipaddress_from_sdp, asserted
UINT = re.compile(r"[0-9]{1,10}")
# fmtp parameters aiortc converts with int() (aiortc.sdp.FMTP_INT_PARAMETERS)
FMTP_INT_PARAMETERS = ("apt", "max-fr", "max-fs", "maxplaybackrate", "minptime", "stereo",
                       "useinbandfec")  # fmt: skip
MAX_CANDIDATES = 64  # per section: every remote candidate is an ICE check to run


class OfferError(Exception):
    """An offer that cannot be answered; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def bad(detail: str) -> OfferError:
    """A malformed offer (400)."""
    return OfferError(400, f"malformed SDP: {detail}")


@dataclass(frozen=True, slots=True)
class Rtpmap:
    """One `a=rtpmap` line: encoding name, clock rate and (audio) channels."""

    name: str
    clock_rate: int
    channels: int | None


@dataclass(slots=True)
class MediaSection:
    """One `m=` section as aiortc will see it (session-level ICE/DTLS values inherited)."""

    number: int  # 1-based, for messages
    kind: str
    port: int
    proto: str
    formats: list[str]
    mid: str | None = None
    direction: str | None = None
    bundle_only: bool = False
    rtcp_mux: bool = False
    ufrag: str | None = None
    pwd: str | None = None
    setup: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    rtpmaps: dict[int, Rtpmap] = field(default_factory=dict)
    fmtps: dict[int, dict[str, str | None]] = field(default_factory=dict)
    candidates: int = 0
    sctp_port: int | None = None

    @property
    def label(self) -> str:
        return f"the {self.kind} section (m-line {self.number})"


def attr(line: str) -> tuple[str, str | None]:
    """aiortc's parse_attr: `a=name:value` or a flag `a=name`."""
    if ":" in line:
        name, value = line[2:].split(":", 1)
        return name, value
    return line[2:], None


def need(name: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise bad(f"a={name} has no value")
    return value


def uint(text: str, what: str, high: int) -> int:
    if not UINT.fullmatch(text) or int(text) > high:
        raise bad(f"{what} must be a whole number from 0 to {high}, not {text[:20]!r}")
    return int(text)


def connection(value: str, where: str) -> None:
    if not _C_VALUE.match(value):
        raise bad(f"the c= line {where} is not `IN IP4|IP6 <address>`")


def rtpmap(section: MediaSection, value: str) -> None:
    pt_text, _, description = value.partition(" ")
    bits = description.split("/")
    if len(bits) < 2 or not bits[0]:
        raise bad("a=rtpmap must be `<payload type> <encoding>/<clock rate>[/<channels>]`")
    pt = uint(pt_text, "an a=rtpmap payload type", 127)
    if pt in section.rtpmaps:
        raise bad(f"payload type {pt} has two a=rtpmap lines")
    if section.kind in MEDIA_KINDS and pt_text not in section.formats:
        raise bad(f"a=rtpmap:{pt} names a payload type the m-line does not list")
    clock = uint(bits[1], f"the clock rate of payload type {pt}", 10_000_000)
    if clock == 0:
        raise bad(f"payload type {pt} has a clock rate of 0")
    channels = None
    if section.kind == "audio":
        channels = uint(bits[2], f"the channels of payload type {pt}", 255) if len(bits) > 2 else 1
    section.rtpmaps[pt] = Rtpmap(bits[0], clock, channels)


def fmtp(section: MediaSection, value: str) -> None:
    pt_text, sep, parameters = value.partition(" ")
    if not sep:
        raise bad("a=fmtp must be `<payload type> <parameters>`")
    pt = uint(pt_text, "an a=fmtp payload type", 127)
    if pt not in section.rtpmaps:
        raise bad(f"a=fmtp:{pt} names a payload type without an a=rtpmap")
    if pt in section.fmtps:
        raise bad(f"payload type {pt} has two a=fmtp lines")
    parsed: dict[str, str | None] = {}
    for parameter in parameters.split(";"):
        key, eq, text = parameter.partition("=")
        parsed[key] = text if eq else None
        if eq and key in FMTP_INT_PARAMETERS:
            number = uint(text.strip(), f"{key} of payload type {pt}", 2**31 - 1)
            if key == "apt" and (number not in section.rtpmaps or number == pt):
                raise bad(f"apt={number} of payload type {pt} names no other payload type here")
    section.fmtps[pt] = parsed


def candidate(section: MediaSection, value: str) -> None:
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ":
        raise bad("a=candidate must be `<foundation> <component> <transport> <priority> "
                  "<address> <port> typ <type> ...`")  # fmt: skip
    uint(bits[1], "a candidate component", 256)
    uint(bits[3], "a candidate priority", 2**32 - 1)
    uint(bits[5], "a candidate port", 65_535)
    for i in range(8, len(bits) - 1, 2):
        if bits[i] == "rport":
            uint(bits[i + 1], "a candidate rport", 65_535)
    section.candidates += 1
    if section.candidates > MAX_CANDIDATES:
        raise bad(f"more than {MAX_CANDIDATES} candidates in {section.label}")


def extmap(value: str) -> None:
    parts = value.split()
    if len(parts) != 2:
        raise bad("a=extmap must be `<id>[/<direction>] <uri>`")
    ext_id, _, direction = parts[0].partition("/")
    if "/" in direction:
        raise bad("a=extmap must be `<id>[/<direction>] <uri>`")
    if not 1 <= uint(ext_id, "an a=extmap id", 255) <= 255:
        raise bad("a=extmap ids run from 1 to 255")
