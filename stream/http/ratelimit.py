"""Per-client-address token buckets for WHIP POST/PATCH/DELETE (pure: time is passed in)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate_per_minute` requests per address, bursts up to `burst` (default: the rate).

    Addresses are kept in LRU order and capped at `max_addresses` (bounded memory under a
    spray of source addresses); an evicted address simply starts again with a full bucket.
    """

    def __init__(
        self, rate_per_minute: float, *, burst: float | None = None, max_addresses: int = 10_000
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self._rate_per_s = rate_per_minute / 60.0
        self._burst = float(burst if burst is not None else max(1.0, rate_per_minute))
        self._max = max_addresses
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, address: str, now: float) -> bool:
        """Take one token for `address` at monotonic time `now`; False when none is left."""
        bucket = self._buckets.pop(address, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate_per_s)
            bucket.updated = now
        self._buckets[address] = bucket
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def available(self, address: str, now: float) -> float:
        """Tokens `address` holds at `now`, none taken (a full bucket for an unknown address)."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return self._burst
        bucket.tokens = min(
            self._burst, bucket.tokens + max(0.0, now - bucket.updated) * self._rate_per_s
        )
        bucket.updated = max(bucket.updated, now)
        return bucket.tokens

    def retry_after(self, address: str) -> float:
        """Seconds until `address` has a token again (0 when it has one)."""
        bucket = self._buckets.get(address)
        if bucket is None or bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self._rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)
