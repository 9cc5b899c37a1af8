"""Reconnect delays for a pulled camera: exponential backoff with jitter. Pure logic.

The first retry comes quickly (a camera that restarts is back within a second or two); each
failure doubles the wait up to a ceiling, so a camera that is gone for good costs one attempt
every `max_s`. Jitter spreads the retries of many cameras behind one failed switch. A
connection that delivered media resets the sequence.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """`next_delay()` after each failure; `reset()` once a connection delivers media."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial_s <= max_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial_s <= max_s, factor >= 1, 0 <= jitter < 1")
        self.initial_s, self.max_s = initial_s, max_s
        self.factor, self.jitter = factor, jitter
        self._rng = rng
        self.failures = 0  # consecutive, since the last reset

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        base = min(self.max_s, self.initial_s * self.factor**self.failures)
        self.failures += 1
        spread = base * self.jitter * (2 * self._rng() - 1)  # +-jitter, never past the ceiling
        return min(self.max_s, max(0.0, base + spread))

    def reset(self) -> None:
        """The connection works: the next failure waits `initial_s` again."""
        self.failures = 0
