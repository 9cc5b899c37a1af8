"""The deadline batcher: which windows an engine runs next, and when. Pure (no asyncio, no I/O).

One `DeadlineBatcher` per engine holds at most one window per stream (latest wins: a newer window
of a stream *supersedes* its queued one, because a consumer wants the present, not a backlog).
`poll(now)` decides, with `now` on the capture clock (Unix seconds):

1. windows that cannot meet their deadline even if run alone right now are dropped before
   compute (*stale*) instead of being computed late;
2. a batch is flushed when it is full (the engine's largest batch size), when waiting any longer
   would miss the earliest deadline (using the measured compute time of the next batch size), or
   when the oldest window has waited the engine's max queue delay;
3. otherwise it says how long to wait before asking again.

When more windows wait than one batch holds (overload), the batch takes the streams served
least recently first, earliest deadline breaking ties: plain earliest-deadline-first would serve
the same streams every hop (their windows are cut a few microseconds earlier) and starve the
rest, whereas this spreads the shedding evenly. Compute time per batch size is an estimate kept up
to date from measurements (`ComputeEstimate`): an EWMA of the time plus a multiple of an EWMA of
its absolute deviation, a cheap streaming stand-in for a high percentile.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from engines.window import Window


class ComputeEstimate:
    """Expected compute time per batch size, learnt from measurements (EWMA mean + k·deviation).

    Sizes never measured are extrapolated from the nearest measured size, linearly in the
    number of windows (pessimistic for engines that batch well, which is the safe side).
    """

    def __init__(
        self,
        batch_sizes: Sequence[int],
        initial_s: float = 0.05,
        *,
        alpha: float = 0.2,
        k: float = 2.0,
    ) -> None:
        if not batch_sizes or min(batch_sizes) < 1:
            raise ValueError("batch sizes must be positive")
        self.sizes = tuple(sorted(set(batch_sizes)))
        self.initial_s = initial_s
        self.alpha = alpha
        self.k = k
        self._mean: dict[int, float] = {}
        self._dev: dict[int, float] = {}

    def padded(self, n: int) -> int:
        """The built batch size a batch of `n` windows runs at (the next size up)."""
        i = bisect.bisect_left(self.sizes, n)
        return self.sizes[min(i, len(self.sizes) - 1)]

    def observe(self, n: int, seconds: float) -> None:
        """Record that a batch of `n` windows took `seconds` to compute."""
        size = self.padded(n)
        mean = self._mean.get(size)
        if mean is None:
            self._mean[size], self._dev[size] = seconds, seconds * 0.25
            return
        err = seconds - mean
        self._mean[size] = mean + self.alpha * err
        self._dev[size] += self.alpha * (abs(err) - self._dev[size])

    def estimate(self, n: int) -> float:
        """Expected (high-percentile) compute time of a batch of `n` windows, in seconds."""
        size = self.padded(max(1, n))
        if size in self._mean:
            return self._mean[size] + self.k * self._dev[size]
        if not self._mean:
            return self.initial_s * size / self.sizes[0]
        near = min(self._mean, key=lambda s: abs(s - size))
        base = self._mean[near] + self.k * self._dev[near]
        return base * max(1.0, size / near) if size > near else base


@dataclass(slots=True)
class _Queued:
    window: Window
    deadline: float
    queued_at: float  # capture clock when offered (max queue delay starts here)
    ticket: int  # arrival order (tie-break)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now: run `batch` (may be empty), and windows dropped as `stale`.

    `wait_s` is how long until the policy wants to be asked again (None: nothing queued).
    """

    batch: list[Window] = field(default_factory=list)
    stale: list[Window] = field(default_factory=list)
    wait_s: float | None = None


class DeadlineBatcher:
    """Batches one engine's windows across streams by deadline (see the module docstring).

    The queue holds at most one window per stream, and at most `capacity` windows (beyond the
    live-stream limit only by misconfiguration); a window offered to a full queue evicts the
    queued window with the earliest deadline, reported as stale (it was the closest to being so).
    """

    def __init__(
        self,
        batch_sizes: Sequence[int],
        budget_s: float,
        max_queue_delay_s: float,
        *,
        estimate: ComputeEstimate | None = None,
        margin_s: float = 0.005,
        capacity: int = 256,
    ) -> None:
        self.estimate = estimate or ComputeEstimate(batch_sizes)
        self.max_batch = max(batch_sizes)
        self.budget_s = budget_s
        self.max_queue_delay_s = max_queue_delay_s
        self.margin_s = margin_s  # scheduling jitter allowance, seconds
        self.capacity = capacity
        self._queue: dict[str, _Queued] = {}
        self._served: dict[str, float] = {}  # stream -> when its last window was batched
        self._tickets = 0

    def __len__(self) -> int:
        return len(self._queue)

    def deadline(self, window: Window) -> float:
        """Capture-clock time by which the window's result must be published."""
        return window.end + self.budget_s

    def offer(self, window: Window, now: float) -> tuple[Window | None, Window | None]:
        """Queue a window. Returns `(superseded, evicted)`: the stream's older queued window it
        replaced, and a window evicted because the queue was full (either may be None)."""
        self._tickets += 1
        item = _Queued(window, self.deadline(window), now, self._tickets)
        old = self._queue.pop(window.stream, None)
        evicted: Window | None = None
        if old is None and len(self._queue) >= self.capacity:
            victim = min(self._queue.values(), key=lambda q: (q.deadline, q.ticket))
            evicted = self._queue.pop(victim.window.stream).window
        self._queue[window.stream] = item
        return (old.window if old else None), evicted

    def remove_stream(self, stream: str) -> Window | None:
        """Take a stream's queued window out (the stream ended); returns it, if any."""
        item = self._queue.pop(stream, None)
        self._served.pop(stream, None)
        return item.window if item else None

    def poll(self, now: float) -> Decision:
        """Decide at capture-clock time `now` (see the module docstring)."""
        stale = self._drop_stale(now)
        if not self._queue:
            return Decision(stale=stale)
        ordered = sorted(self._queue.values(), key=lambda q: (q.deadline, q.ticket))
        n = min(len(ordered), self.max_batch)
        # Waiting for one more window makes the batch (at most) one size bigger.
        latest_start = ordered[0].deadline - self.estimate.estimate(min(n + 1, self.max_batch))
        latest_start -= self.margin_s
        oldest = min(q.queued_at for q in ordered)
        flush_by_delay = oldest + self.max_queue_delay_s
        if n >= self.max_batch or now >= latest_start or now >= flush_by_delay:
            batch = self._pick(n, now)
            return Decision(batch=batch, stale=stale, wait_s=0.0 if self._queue else None)
        return Decision(stale=stale, wait_s=max(0.0, min(latest_start, flush_by_delay) - now))

    def _pick(self, n: int, now: float) -> list[Window]:
        """Take up to `n` windows: least recently served streams first, then by deadline."""
        ranked = sorted(
            self._queue.values(),
            key=lambda q: (self._served.get(q.window.stream, 0.0), q.deadline, q.ticket),
        )[:n]
        # Never let the batch size itself make one of its windows late: shrink it.
        while n > 1 and now + self.estimate.estimate(n) + self.margin_s > min(
            q.deadline for q in ranked[:n]
        ):
            n -= 1
        batch = [q.window for q in ranked[:n]]
        for w in batch:
            del self._queue[w.stream]
            self._served[w.stream] = now
        return batch

    def _drop_stale(self, now: float) -> list[Window]:
        alone = self.estimate.estimate(1) + self.margin_s
        stale = [q for q in self._queue.values() if now + alone > q.deadline]
        for q in stale:
            del self._queue[q.window.stream]
        return [q.window for q in stale]
