"""Seeded mutations of real WHIP offers: what a broken or hostile publisher might send.

Each mutation applies one to three operators to the lines of a captured offer
(`tests/fixtures/offers/`): drop, duplicate, swap or truncate lines, replace a value or a number
with an awkward one, remove or rename what aiortc relies on (fingerprints, ICE credentials, setup,
rtcp-mux, mids, the BUNDLE group, payload types named by fmtp/apt), change line endings, flip a
character. Deterministic for a given `random.Random`.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "offers"
AWKWARD = [
    "", " ", "x", "-1", "0", "1", "127", "128", "255", "256", "65536", "4294967296",
    "99999999999999999999", "1_0", "\u0663", "+5", " 7", "7 ", "a:b", "a b c", "\x00", "\t",
    "sha-1 AB", "sha-256", "holdconn", "BUNDLE", "BUNDLE 9", "*", "nan", "1e3", "0x10",
    "\u00e9", "\ufeff", "..", "a..local", "x.local",
]  # fmt: skip
ENDINGS = ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\u2028", "\x85"]
REMOVABLE = re.compile(
    r"^(a=(fingerprint|setup|ice-ufrag|ice-pwd|rtcp-mux|mid|group|rtpmap|fmtp|bundle-only|"
    r"sendonly|candidate|extmap|ssrc)|c=|m=|o=|v=)"
)


@functools.cache
def load_offers() -> dict[str, str]:
    """The captured offers by file name."""
    return {p.name: p.read_bytes().decode() for p in sorted(FIXTURES.glob("*.sdp"))}  # CRLF kept


Operator = Callable[[random.Random, list[str]], None]


def _index(rng: random.Random, lines: list[str]) -> int:
    return rng.randrange(len(lines)) if lines else 0


def _drop(rng: random.Random, lines: list[str]) -> None:
    wanted = [i for i, line in enumerate(lines) if REMOVABLE.match(line)]
    if lines:
        del lines[rng.choice(wanted) if wanted and rng.random() < 0.8 else _index(rng, lines)]


def _duplicate(rng: random.Random, lines: list[str]) -> None:
    if lines:
        i = _index(rng, lines)
        lines.insert(_index(rng, lines), lines[i])


def _swap(rng: random.Random, lines: list[str]) -> None:
    if len(lines) > 1:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]


def _truncate(rng: random.Random, lines: list[str]) -> None:
    if lines:
        i = _index(rng, lines)
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]


def _value(rng: random.Random, lines: list[str]) -> None:
    """Replace what follows the first ':' (or '=') of a line with an awkward value."""
    if lines:
        i = _index(rng, lines)
        head, sep, _ = lines[i].partition(":")
        if not sep:
            head, sep, _ = lines[i].partition("=")
        lines[i] = head + sep + rng.choice(AWKWARD)


def _token(rng: random.Random, lines: list[str]) -> None:
    """Replace, drop or add one space-separated token of a line."""
    if not lines:
        return
    i = _index(rng, lines)
    tokens = lines[i].split(" ")
    j = rng.randrange(len(tokens))
    choice = rng.random()
    if choice < 0.4:
        tokens[j] = rng.choice(AWKWARD)
    elif choice < 0.7 and len(tokens) > 1:
        del tokens[j]
    else:
        tokens.insert(j, rng.choice(AWKWARD))
    lines[i] = " ".join(tokens)


def _number(rng: random.Random, lines: list[str]) -> None:
    """Change one number somewhere (a payload type, port, apt, id, ...)."""
    spots = [(i, m) for i, line in enumerate(lines) for m in re.finditer(r"[0-9]+", line)]
    if spots:
        i, match = rng.choice(spots)
        new = rng.choice(["0", "1", "72", "96", "97", "111", "127", "128", "255", "65536", "", "x"])
        lines[i] = lines[i][: match.start()] + new + lines[i][match.end() :]


def _codec(rng: random.Random, lines: list[str]) -> None:
    """Rename a codec (to one we do not decode) or change its H.264 profile."""
    spots = [i for i, line in enumerate(lines) if line.startswith(("a=rtpmap:", "a=fmtp:"))]
    if spots:
        i = rng.choice(spots)
        names = ["PCMU/8000", "G722/8000", "PCMA/8000", "H264/90000", "VP9/90000", "opus/8000"]
        line = re.sub(r" [A-Za-z0-9-]+/[0-9]+(/[0-9]+)?$", " " + rng.choice(names), lines[i])
        lines[i] = re.sub(r"profile-level-id=[0-9a-fA-F]+", "profile-level-id=640032", line)


def _port_zero(rng: random.Random, lines: list[str]) -> None:
    spots = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if spots:
        i = rng.choice(spots)
        lines[i] = re.sub(r"^(m=\S+) [0-9]+", r"\1 0", lines[i])
        if rng.random() < 0.5:
            lines.insert(i + 1, "a=bundle-only")


def _bundle(rng: random.Random, lines: list[str]) -> None:
    spots = [i for i, line in enumerate(lines) if line.startswith("a=group:BUNDLE")]
    extra = rng.choice(["9", "missing", "0 0", "", "video0", "audio1 video0"])
    if spots:
        i = rng.choice(spots)
        lines[i] = lines[i] + " " + extra if rng.random() < 0.5 else "a=group:BUNDLE " + extra
    else:
        lines.insert(min(4, len(lines)), "a=group:BUNDLE " + extra)


def _flip(rng: random.Random, lines: list[str]) -> None:
    if lines:
        i = _index(rng, lines)
        if lines[i]:
            j = rng.randrange(len(lines[i]))
            ch = rng.choice([":", " ", "=", "/", ";", "\x00", "\u00ff", "9", "a", "-"])
            lines[i] = lines[i][:j] + ch + lines[i][j + 1 :]


def _graft(rng: random.Random, lines: list[str]) -> None:
    """Insert a line from another real offer (a foreign attribute in a plausible place)."""
    donor = rng.choice(list(load_offers().values())).splitlines()
    lines.insert(_index(rng, lines), rng.choice(donor))


OPERATORS: list[Operator] = [
    _drop, _drop, _duplicate, _swap, _truncate, _value, _value, _token, _number, _number,
    _codec, _port_zero, _bundle, _flip, _graft,
]  # fmt: skip


def mutate(offer: str, rng: random.Random) -> str:
    """One to three operators applied to `offer`, joined with a (usually CRLF) line ending."""
    lines = offer.splitlines()
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        rng.choice(OPERATORS)(rng, lines)
    ending = "\r\n" if rng.random() < 0.9 else rng.choice(ENDINGS)
    return ending.join(lines) + ending


def mutations(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (fixture name, mutated offer) pairs, the same for the same seed."""
    rng = random.Random(seed)
    offers = sorted(load_offers().items())
    out = []
    for _ in range(count):
        name, offer = rng.choice(offers)
        out.append((name, mutate(offer, rng)))
    return out
