"""Per-address token buckets and bearer-token checks (pure)."""

from __future__ import annotations

import pytest

from stream.http.auth import bearer_token, token_allowed
from stream.http.ratelimit import RateLimiter

pytestmark = pytest.mark.unit


def test_burst_then_refill_at_the_rate() -> None:
    limiter = RateLimiter(60)  # one a second, bursts of 60
    assert all(limiter.allow("a", 0.0) for _ in range(60))
    assert not limiter.allow("a", 0.0)
    assert limiter.retry_after("a") == pytest.approx(1.0)
    assert not limiter.allow("a", 0.5)
    assert limiter.allow("a", 1.6)
    assert not limiter.allow("a", 1.6)


def test_addresses_are_independent() -> None:
    limiter = RateLimiter(1)
    assert limiter.allow("a", 0.0)
    assert not limiter.allow("a", 1.0)
    assert limiter.allow("b", 1.0)


def test_memory_is_bounded_by_evicting_the_least_recent_address() -> None:
    limiter = RateLimiter(1, max_addresses=3)
    for address in "abcd":
        assert limiter.allow(address, 0.0)
    assert len(limiter) == 3
    assert limiter.allow("a", 0.0)  # evicted, so it starts again with a full bucket
    assert not limiter.allow("d", 0.0)


def test_clock_going_backwards_grants_nothing() -> None:
    limiter = RateLimiter(1)
    assert limiter.allow("a", 10.0)
    assert not limiter.allow("a", 5.0)


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_tokens() -> None:
    assert token_allowed(None, [])  # none configured: open
    assert token_allowed("Bearer two", ["one", "two"])
    assert not token_allowed("Bearer three", ["one", "two"])
    assert not token_allowed("Bearer tw", ["one", "two"])
    assert not token_allowed(None, ["one"])
