"""Which decoded video frames the windows will use, decided before any pixel work (pure)."""

from __future__ import annotations


class FrameSampler:
    """Keep frames at about `fps`, by capture time; the rest are dropped as `sampled`.

    A frame is kept when it reaches the next due time, less a tolerance of half the smaller of
    the target period and the source's own frame interval (an EMA), so capture-time jitter
    neither doubles nor skips frames when source and target rates are equal. A jump (pause,
    clock step) re-anchors the schedule on the frame instead of catching up in a burst.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.period = 1.0 / fps
        self._next: float | None = None
        self._last: float | None = None
        self._source_period: float | None = None

    def keep(self, t: float) -> bool:
        """Whether the frame captured at `t` (seconds) is kept."""
        interval = None if self._last is None else t - self._last
        if interval is not None and 0 < interval < 1.0:
            if self._source_period is None:
                self._source_period = interval
            else:
                self._source_period += 0.1 * (interval - self._source_period)
        self._last = t
        source = self._source_period if self._source_period is not None else 0.5 * self.period
        tolerance = 0.5 * min(self.period, source)
        if self._next is not None and t < self._next - tolerance:
            return False
        if self._next is None or abs(t - self._next) >= self.period:
            self._next = t + self.period
        else:
            self._next += self.period
        return True
