"""Bearer-token authentication for every WHIP endpoint (RFC 9725 section 4.5)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_allowed(authorization: str | None, tokens: Sequence[str]) -> bool:
    """Whether the header carries one of `tokens`; with no tokens configured, everything is.

    Every configured token is compared, in constant time, so that timing tells nothing about
    which (or how much of one) matched.
    """
    if not tokens:
        return True
    given = bearer_token(authorization)
    if given is None:
        return False
    given_b = given.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given_b, token.encode())
    return matched
