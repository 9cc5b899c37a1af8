"""The offer validator against real publishers' offers, the faults from issue 14, and properties:
whatever it accepts parses in aiortc; whatever it refuses is a 4xx with a reason, never a crash."""

from __future__ import annotations

import random

import pytest
from aiortc import sdp as aiortc_sdp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.http.offer_check import parse_offer
from stream.http.sdp import validate_offer
from stream.http.sdp_lines import OfferError
from tests.support.sdp_mutations import OPERATORS, load_offers, mutate

pytestmark = pytest.mark.unit

OFFERS = load_offers()
MAX = 128_000


def verdict(text: str) -> int:
    """201 when accepted (and then aiortc must parse it), else the refusal's status."""
    refusal: OfferError | None = None
    try:
        validate_offer(text.encode("utf-8", "surrogatepass"), MAX)
    except OfferError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.status in (400, 413, 422)
        assert refusal.detail
        return refusal.status
    aiortc_sdp.SessionDescription.parse(text)  # must not raise
    return 201


@pytest.mark.parametrize("name", sorted(OFFERS))
def test_every_captured_publisher_offer_is_accepted(name: str) -> None:
    _, summary = validate_offer(OFFERS[name].encode(), MAX)
    assert summary.has_audio
    assert summary.has_video
    assert summary.audio_codecs == ("opus",)


def test_gstreamer_bundle_only_section_is_valid_media() -> None:
    offer = parse_offer(OFFERS["gstreamer-webrtcbin.sdp"])
    audio = next(m for m in offer.media if m.kind == "audio")
    assert (audio.port, audio.bundle_only, audio.mid in offer.bundle) == (0, True, True)
    _, summary = validate_offer(OFFERS["gstreamer-webrtcbin.sdp"].encode(), MAX)
    assert summary.kinds == ("video", "audio")


def edit(name: str, old: str, new: str, count: int = -1) -> str:
    text = OFFERS[name]
    assert old in text
    return text.replace(old, new, count)


def without(name: str, prefix: str) -> str:
    return "".join(line for line in OFFERS[name].splitlines(True) if not line.startswith(prefix))


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [
        ("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 x 96\r\n", 400, "m-line 1"),
        (without("chromium.sdp", "a=fingerprint"), 400, "fingerprint"),
        (without("firefox.sdp", "a=fingerprint"), 400, "fingerprint"),  # session-level one
        (without("aiortc.sdp", "a=ice-pwd"), 400, "ICE credentials"),
        (without("chromium.sdp", "a=setup"), 400, "a=setup"),
        (without("chromium.sdp", "a=rtcp-mux"), 400, "rtcp-mux"),
        (edit("chromium.sdp", "a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 7"), 400, "BUNDLE"),
        (edit("chromium.sdp", "a=setup:actpass", "a=setup:holdconn"), 400, "a=setup"),
        (edit("chromium.sdp", "a=fmtp:97 apt=96", "a=fmtp:97 apt=95"), 400, "apt=95"),
        (edit("chromium.sdp", "a=fmtp:97 apt=96", "a=fmtp:93 apt=96"), 400, "a=fmtp:93"),
        (edit("chromium.sdp", "c=IN IP4 127.0.0.1", "c=IN IP4"), 400, "c= line"),
        (edit("chromium.sdp", "a=fingerprint:sha-256 ", "a=fingerprint:sha-1 "), 400, "sha-256"),
        (edit("chromium.sdp", "a=fingerprint:sha-256", "a=fingerprint"), 400, "fingerprint"),
        (edit("gstreamer-webrtcbin.sdp", "a=bundle-only\r\n", ""), 422, "port 0"),
        (edit("gstreamer-webrtcbin.sdp", "BUNDLE video0 audio1", "BUNDLE audio1 video0"), 400,
         "first mid"),
        (edit("chromium.sdp", "a=sendonly", "a=recvonly"), 422, "WHIP only receives"),
        (edit("firefox.sdp", "a=sendonly\r\n", "", 1), 422, "no direction"),
        (edit("chromium.sdp", "m=audio", "m=text"), 422, "only audio and video"),
    ],
)  # fmt: skip
def test_faults_aiortc_would_trip_on_get_a_reason_in_our_words(
    text: str, status: int, words: str
) -> None:
    with pytest.raises(OfferError) as info:
        validate_offer(text.encode(), MAX)
    assert info.value.status == status, info.value.detail
    assert words in info.value.detail
    assert "NoneType" not in info.value.detail


AUDIO_ONLY_CODEC = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
    "a=fingerprint:sha-256 9A:AC:69:53:94:51:B6:02:41:FD:49:54:F7:AD:63:6F:56:F2:F6:F3:B8:B5:79:"
    "2E:8F:20:0C:E4:65:0A:31:B9\r\na=setup:actpass\r\n"
)


@pytest.mark.parametrize(("pt", "codec"), [(0, "PCMU/8000"), (9, "G722/8000"), (8, "PCMA/8000")])
def test_audio_other_than_opus_is_422_naming_what_was_offered(pt: int, codec: str) -> None:
    with pytest.raises(OfferError) as info:
        validate_offer(AUDIO_ONLY_CODEC.format(pt=pt, codec=codec).encode(), MAX)
    assert info.value.status == 422
    assert codec.split("/")[0] in info.value.detail
    assert "Opus" in info.value.detail
    _, summary = validate_offer(AUDIO_ONLY_CODEC.format(pt=111, codec="opus/48000/2").encode(), MAX)
    assert summary.audio_codecs == ("opus",)


SDP_LINE = st.one_of(
    st.sampled_from([line for offer in OFFERS.values() for line in offer.splitlines()]),
    st.builds(
        lambda kind, value: f"{kind}={value}",
        st.sampled_from("vosctmab"),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    ),
    st.builds(
        lambda name, value: f"a={name}:{value}",
        st.sampled_from(
            [
                "fingerprint",
                "setup",
                "ice-ufrag",
                "ice-pwd",
                "group",
                "mid",
                "rtpmap",
                "fmtp",
                "rtcp-fb",
                "candidate",
                "extmap",
                "ssrc",
                "ssrc-group",
                "rtcp",
                "msid",
                "sctp-port",
                "max-message-size",
                "sctpmap",
                "msid-semantic",
            ]
        ),
        st.text(alphabet=st.sampled_from("0123456789 :/;=abcxyzABC-.*\t"), max_size=40),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SDP_LINE, max_size=40), st.sampled_from(["\r\n", "\n", "\r", "\x0c"]))
def test_any_line_soup_is_refused_with_4xx_or_parses_in_aiortc(
    lines: list[str], ending: str
) -> None:
    verdict("v=0" + ending + ending.join(lines) + ending)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(OFFERS)), st.integers(0, 2**32 - 1))
def test_mutated_real_offers_are_refused_with_4xx_or_parse_in_aiortc(name: str, seed: int) -> None:
    verdict(mutate(OFFERS[name], random.Random(seed)))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(OFFERS)),
    st.lists(st.sampled_from(range(len(OPERATORS))), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_stacked_operators_never_crash_the_validator(
    name: str, operators: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    lines = OFFERS[name].splitlines()
    for index in operators:
        OPERATORS[index](rng, lines)
    verdict("\r\n".join(lines) + "\r\n")
