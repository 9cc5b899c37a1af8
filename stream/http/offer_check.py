"""Our own reading of a WHIP offer, line by line, before any WebRTC object exists.

aiortc's SDP parser trusts its input: it asserts on an `m=` or `c=` line it cannot match, calls
`int()` on whatever stands where a number belongs, unpacks `split()` results of any length and
looks payload types up with `next()`; its peer connection then asserts on a missing fingerprint in
a background task. So every line aiortc reads is read here first, with the same line splitting
(`str.splitlines`) and the same session/media grouping, and every value it converts or looks up is
checked, together with what a WebRTC publisher must carry (ICE credentials, a DTLS fingerprint
and setup role, rtcp-mux, unique mids, a BUNDLE group naming only sections that exist). An offer
this module accepts parses in aiortc and negotiates; one it refuses gets a reason in our words.

Pure: text in, `ParsedOffer` out or `OfferError` raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stream.http.sdp_lines import (
    MEDIA_KINDS,
    UINT,
    MediaSection,
    OfferError,
    attr,
    bad,
    candidate,
    connection,
    extmap,
    fmtp,
    need,
    rtpmap,
    uint,
)

# aiortc: `re.match("^m=([^ ]+) ([0-9]+) ([A-Z/]+) (.+)$", line)`, asserted
_M_LINE = re.compile(r"^m=([^ ]+) ([0-9]+) ([A-Z/]+) (.+)$")
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]{1,16}")  # a mid (RFC 5888 token), ≤ 16
_FINGERPRINT = re.compile(r"([0-9A-Fa-f]{2})(:[0-9A-Fa-f]{2})+")
FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}  # what aiortc verifies
SETUP_ROLES = ("actpass", "active", "passive")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
FORBIDDEN_PAYLOAD_TYPES = range(72, 77)  # they collide with RTCP packet types


@dataclass(frozen=True, slots=True)
class ParsedOffer:
    """A structurally valid offer: its sections and the mids of its BUNDLE group."""

    media: tuple[MediaSection, ...]
    bundle: tuple[str, ...]


def parse_offer(text: str) -> ParsedOffer:
    """Read and check every line of `text`; raises `OfferError` (400/422) on the first fault."""
    lines = text.splitlines()  # exactly how aiortc splits (\r, \n, \x0b, \x1c, \u2028, ...)
    present = [line for line in lines if line]
    if not present:
        raise OfferError(400, "empty SDP offer")
    if present[0].strip() != "v=0":
        raise bad("the first line must be v=0")
    for number, line in enumerate(lines, start=1):
        if line and (len(line) < 2 or line[1] != "=" or not line[0].isalpha()):
            raise bad(f"line {number} is not `<type>=<value>`")
    session, groups = _group(lines)
    if not any(line.startswith("o=") for line in session):
        raise bad("no o= line")
    defaults = MediaSection(0, "", 0, "", [])
    bundles = _session(session, defaults)
    media = tuple(_section(n, group, defaults) for n, group in enumerate(groups, start=1))
    bundle = _check_bundle(media, bundles)
    for section in media:
        _check_section(section, bundle)
    return ParsedOffer(media, bundle)


def check_transport(offer: ParsedOffer) -> None:
    """ICE credentials, a DTLS role and fingerprint and rtcp-mux in every section (checked after
    the codecs, so that an offer with nothing usable hears that first)."""
    for section in offer.media:
        _check_ice(section)
        _check_dtls(section)
        if section.kind in MEDIA_KINDS and not section.rtcp_mux:
            raise bad(f"{section.label} lacks a=rtcp-mux (RTP and RTCP must share a port)")


def _group(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    session: list[str] = []
    media: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _session(lines: list[str], defaults: MediaSection) -> list[list[str]]:
    """Session-level lines; ICE/DTLS values go into `defaults`; returns the BUNDLE groups."""
    bundles: list[list[str]] = []
    for line in lines:
        if line.startswith("v=") and line.strip() != "v=0":
            raise bad("only SDP version 0 (v=0) exists")
        if line.startswith("c="):
            connection(line[2:], "of the session")
        if not line.startswith("a="):
            continue
        name, value = attr(line)
        if name == "group":
            items = need(name, value).split()
            if items[0] == "BUNDLE":
                bundles.append(items[1:])
        elif name == "msid-semantic":
            need(name, value)
        else:
            _transport_attr(defaults, name, value)
    return bundles


def _transport_attr(section: MediaSection, name: str, value: str | None) -> bool:
    """ICE and DTLS attributes (allowed at session and media level); False if not one."""
    if name == "fingerprint":
        parts = need(name, value).split()
        if len(parts) != 2:
            raise bad("a=fingerprint must be `<hash> <hex:hex:...>`")
        section.fingerprints.append((parts[0].lower(), parts[1]))
    elif name == "setup":
        if value not in SETUP_ROLES:
            raise bad(f"a=setup must be one of {', '.join(SETUP_ROLES)}")
        section.setup = value
    elif name == "ice-ufrag":
        section.ufrag = value
    elif name == "ice-pwd":
        section.pwd = value
    else:
        return name == "ice-options" or name == "ice-lite"
    return True


def _section(number: int, lines: list[str], defaults: MediaSection) -> MediaSection:
    match = _M_LINE.match(lines[0])
    if not match:
        raise bad(f"m-line {number} is not `m=<kind> <port> <protocol> <formats>`")
    kind, port, proto, formats = match.group(1), match.group(2), match.group(3), match.group(4)
    section = MediaSection(
        number, kind, uint(port, f"the port of m-line {number}", 65_535), proto, formats.split(),
        ufrag=defaults.ufrag, pwd=defaults.pwd, setup=defaults.setup,
        fingerprints=list(defaults.fingerprints),
    )  # fmt: skip
    if kind in MEDIA_KINDS:
        for fmt in section.formats:
            pt = uint(fmt, f"a payload type of {section.label}", 127)
            if pt in FORBIDDEN_PAYLOAD_TYPES:
                raise bad(f"payload type {pt} collides with RTCP (72-76 are reserved)")
    later: list[tuple[str, str]] = []  # fmtp and rtcp-fb name payload types: read after rtpmaps
    for line in lines[1:]:
        if line.startswith("c="):
            connection(line[2:], f"of {section.label}")
        elif line.startswith("a="):
            name, value = attr(line)
            if name in ("fmtp", "rtcp-fb"):
                later.append((name, need(name, value)))
            else:
                _media_attr(section, name, value)
    for name, value in later:
        if name == "fmtp":
            fmtp(section, value)
        elif len(value.split(" ", 2)) < 2:
            raise bad("a=rtcp-fb must be `<payload type> <feedback>`")
    return section


def _media_attr(section: MediaSection, name: str, value: str | None) -> None:
    if _transport_attr(section, name, value):
        return
    if name == "mid":
        if section.mid is not None:
            raise bad(f"{section.label} has two a=mid lines")
        section.mid = need(name, value)
    elif name in DIRECTIONS:
        section.direction = name
    elif name == "bundle-only":
        section.bundle_only = True
    elif name == "rtcp-mux":
        section.rtcp_mux = True
    elif name == "rtpmap":
        rtpmap(section, need(name, value))
    elif name == "candidate":
        candidate(section, need(name, value))
    elif name == "extmap":
        extmap(need(name, value))
    elif name == "rtcp":
        parts = need(name, value).split(" ", 1)
        uint(parts[0], "the a=rtcp port", 65_535)
        if len(parts) > 1:
            connection(parts[1], "in a=rtcp")
    elif name == "sctp-port":
        section.sctp_port = uint(need(name, value), "a=sctp-port", 65_535)
    elif name == "max-message-size":
        uint(need(name, value), "a=max-message-size", 2**32 - 1)
    elif name == "sctpmap":
        port, sep, _ = need(name, value).partition(" ")
        if not sep:
            raise bad("a=sctpmap must be `<port> <protocol> ...`")
        uint(port, "the a=sctpmap port", 65_535)
    elif name == "ssrc":
        ssrc, _, rest = need(name, value).partition(" ")
        uint(ssrc, "an SSRC", 2**32 - 1)
        if ":" not in rest:
            raise bad("a=ssrc must be `<ssrc> <attribute>:<value>`")
    elif name == "ssrc-group":
        for ssrc in need(name, value).split()[1:]:
            uint(ssrc, "an SSRC in a=ssrc-group", 2**32 - 1)
    elif name == "msid" and (value is None or (" " in value and len(value.split()) < 2)):
        raise bad("a=msid must be `<stream id> <track id>`")  # aiortc reads the second word


def _check_bundle(media: tuple[MediaSection, ...], bundles: list[list[str]]) -> tuple[str, ...]:
    if len(bundles) > 1:
        raise bad("more than one BUNDLE group")
    mids = [m.mid for m in media if m.mid is not None]
    if len(set(mids)) != len(mids):
        raise bad("two sections share one a=mid")
    bundle = tuple(bundles[0]) if bundles else ()
    if len(set(bundle)) != len(bundle):
        raise bad("the BUNDLE group names one mid twice")
    for mid in bundle:
        if mid not in mids:
            raise bad(f"the BUNDLE group names mid {mid[:16]!r}, which no section has")
    if bundle:
        tagged = next(m for m in media if m.mid == bundle[0])
        if tagged.port == 0:
            raise bad("the first mid of the BUNDLE group is a section with port 0")
    return bundle


def _check_section(section: MediaSection, bundle: tuple[str, ...]) -> None:
    """The kind, mid, port and (data channels) SCTP port of a section."""
    if section.kind not in (*MEDIA_KINDS, "application"):
        raise OfferError(422, f"m-line {section.number} is `{section.kind[:16]}`: only audio "
                              "and video (and data channels) can be published")  # fmt: skip
    if section.mid is None or not _TOKEN.fullmatch(section.mid):
        raise bad(f"{section.label} needs an a=mid of at most 16 token characters")
    if section.port == 0 and not (section.bundle_only and section.mid in bundle):
        raise OfferError(422, f"{section.label} is disabled (port 0) and not bundle-only in the "
                              "BUNDLE group; offer only the tracks you publish")  # fmt: skip
    if section.bundle_only and section.mid not in bundle:
        raise bad(f"{section.label} is bundle-only but not in the BUNDLE group")
    if section.kind in MEDIA_KINDS:
        return
    if section.proto.endswith("UDP/DTLS/SCTP") and section.sctp_port is None:
        raise bad(f"{section.label} lacks a=sctp-port")
    elif section.proto == "DTLS/SCTP":
        if not section.formats or not UINT.fullmatch(section.formats[0]):
            raise bad(f"{section.label} must name its SCTP port on the m-line")
    elif not section.proto.endswith("DTLS/SCTP"):
        raise bad(f"{section.label} has an unknown protocol {section.proto[:24]!r}")


def _check_ice(section: MediaSection) -> None:
    ufrag, pwd = section.ufrag, section.pwd
    if ufrag is None or pwd is None:
        raise bad(f"{section.label} lacks ICE credentials (a=ice-ufrag and a=ice-pwd)")
    if not (4 <= len(ufrag) <= 256 and _ICE_CHARS.fullmatch(ufrag)):
        raise bad("a=ice-ufrag must be 4 to 256 characters of A-Z a-z 0-9 + /")
    if not (22 <= len(pwd) <= 256 and _ICE_CHARS.fullmatch(pwd)):
        raise bad("a=ice-pwd must be 22 to 256 characters of A-Z a-z 0-9 + /")


def _check_dtls(section: MediaSection) -> None:
    if section.setup is None:
        raise bad(f"{section.label} lacks a=setup (the DTLS role)")
    usable = 0
    for algorithm, value in section.fingerprints:
        size = FINGERPRINT_BYTES.get(algorithm)
        if size is None:
            continue  # another hash may sit beside a usable one; aiortc skips it too
        if not _FINGERPRINT.fullmatch(value) or len(value) != 3 * size - 1:
            raise bad(f"the {algorithm} fingerprint is not {size} hex bytes separated by ':'")
        usable += 1
    if not usable:
        raise bad(f"{section.label} has no DTLS fingerprint (a=fingerprint with sha-256, "
                  "sha-384 or sha-512)")  # fmt: skip
