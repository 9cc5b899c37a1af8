"""Per-stream health from window outcomes: when is a stream `degraded`? Pure logic.

A stream is degraded while too many of its recent windows are shed (stale or superseded) instead
of computed. Two thresholds (hysteresis) keep the status from flapping: degraded at or above
`degrade_ratio` of the last `window_count` outcomes, online again at or below `recover_ratio`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Transition = Literal["degraded", "online"]


@dataclass(slots=True)
class _StreamHealth:
    outcomes: deque[bool]  # True = shed
    degraded: bool = False


@dataclass(slots=True)
class HealthTracker:
    """Tracks the shed ratio of each stream's last `window_count` windows (all engines)."""

    window_count: int = 20
    degrade_ratio: float = 0.3
    recover_ratio: float = 0.1
    min_samples: int = 10
    _streams: dict[str, _StreamHealth] = field(default_factory=dict)

    def record(self, stream: str, shed: bool) -> Transition | None:
        """Record one window outcome; return a status change if the stream crossed a threshold."""
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _StreamHealth(deque(maxlen=self.window_count))
        st.outcomes.append(shed)
        if len(st.outcomes) < self.min_samples:
            return None
        ratio = self.shed_ratio(stream)
        if not st.degraded and ratio >= self.degrade_ratio:
            st.degraded = True
            return "degraded"
        if st.degraded and ratio <= self.recover_ratio:
            st.degraded = False
            return "online"
        return None

    def shed_ratio(self, stream: str) -> float:
        """Fraction of the stream's recent windows that were shed (0 when unknown)."""
        st = self._streams.get(stream)
        if st is None or not st.outcomes:
            return 0.0
        return sum(st.outcomes) / len(st.outcomes)

    def is_degraded(self, stream: str) -> bool:
        st = self._streams.get(stream)
        return st is not None and st.degraded

    def forget(self, stream: str) -> None:
        """The stream ended."""
        self._streams.pop(stream, None)
