"""The deadline batcher: which windows an engine runs next, and when. Pure (no asyncio, no I/O).

One `DeadlineBatcher` per engine holds at most one window per stream (latest wins: a newer window
of a stream *supersedes* its queued one, because a consumer wants the present, not a backlog).
`poll(now)` decides, with `now` on the capture clock (Unix seconds):

1. a window that could meet its deadline when it arrived but no longer can, even run alone right
   now, is dropped before compute (*stale*): it lost its turn to on-time work, and computing it
   late would only delay the windows behind it;
2. a window that arrives *already* unable to meet its deadline (ingest fell behind: a stalled
   event loop, a slow network) is not dropped on sight: it runs, counted late by the pipeline,
   whenever the engine has no on-time work due, and is dropped (*expired*) only once it is more
   than `late_grace_s` past its deadline. Dropping such windows on arrival turned an ingest
   backlog into a total outage (every window stale, nothing published) although the engine sat
   idle;
3. on-time windows are flushed as a batch when it is full (the engine's largest batch size),
   when waiting any longer would miss the earliest deadline (using the measured compute time of
   the next batch size), or when the oldest window has waited the engine's max queue delay;
4. otherwise it says how long to wait before asking again.

When more windows wait than one batch holds (overload), the batch takes the streams served
least recently first, earliest deadline breaking ties (freshest first among late arrivals, the
ones closest to being useful): plain earliest-deadline-first would serve
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
    late: bool  # arrived already unable to meet its deadline


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now: run `batch` (may be empty); windows dropped as `stale` (could no longer
    meet the deadline they could meet on arrival) or `expired` (arrived late and found no idle
    engine within the late grace).

    `wait_s` is how long until the policy wants to be asked again (None: nothing queued).
    """

    batch: list[Window] = field(default_factory=list)
    stale: list[Window] = field(default_factory=list)
    expired: list[Window] = field(default_factory=list)
    wait_s: float | None = None


class DeadlineBatcher:
    """Batches one engine's windows across streams by deadline (see the module docstring).

    The queue holds at most one window per stream, and at most `capacity` windows (beyond the
    live-stream limit only by misconfiguration); a window offered to a full queue evicts a late
    arrival if there is one, else the queued window with the earliest deadline (the closest to
    being stale). `late_grace_s` defaults to the budget.
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
        late_grace_s: float | None = None,
    ) -> None:
        self.estimate = estimate or ComputeEstimate(batch_sizes)
        self.max_batch = max(batch_sizes)
        self.budget_s = budget_s
        self.max_queue_delay_s = max_queue_delay_s
        self.margin_s = margin_s  # scheduling jitter allowance, seconds
        self.capacity = capacity
        self.late_grace_s = budget_s if late_grace_s is None else late_grace_s
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
        deadline = self.deadline(window)
        late = now + self._alone() > deadline
        item = _Queued(window, deadline, now, self._tickets, late)
        old = self._queue.pop(window.stream, None)
        evicted: Window | None = None
        if old is None and len(self._queue) >= self.capacity:
            victim = min(self._queue.values(), key=lambda q: (not q.late, q.deadline, q.ticket))
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
        stale, expired = self._drop(now)
        if not self._queue:
            return Decision(stale=stale, expired=expired)
        on_time = sorted(
            (q for q in self._queue.values() if not q.late), key=lambda q: (q.deadline, q.ticket)
        )
        late = [q for q in self._queue.values() if q.late]
        if not on_time:
            batch = self._pick(late, min(len(late), self.max_batch), now, shrink=False)
            return self._decided(batch, stale, expired)
        n = min(len(on_time), self.max_batch)
        # Waiting for one more window makes the batch (at most) one size bigger.
        latest_start = on_time[0].deadline - self.estimate.estimate(min(n + 1, self.max_batch))
        latest_start -= self.margin_s
        flush_by_delay = min(q.queued_at for q in on_time) + self.max_queue_delay_s
        if n >= self.max_batch or now >= latest_start or now >= flush_by_delay:
            return self._decided(self._pick(on_time, n, now, shrink=True), stale, expired)
        due = min(latest_start, flush_by_delay)
        if late:
            # The engine is idle until `due`: late arrivals that fit in the gap run now.
            k = min(len(late), self.max_batch)
            while k > 0 and now + self.estimate.estimate(k) + self.margin_s > due:
                k -= 1
            if k:
                return self._decided(self._pick(late, k, now, shrink=False), stale, expired)
        return Decision(stale=stale, expired=expired, wait_s=max(0.0, due - now))

    def _decided(self, batch: list[Window], stale: list[Window], expired: list[Window]) -> Decision:
        return Decision(batch, stale, expired, wait_s=0.0 if self._queue else None)

    def _pick(self, items: list[_Queued], n: int, now: float, *, shrink: bool) -> list[Window]:
        """Take up to `n` of `items`: least recently served streams first, then by deadline
        (on time: earliest first; late arrivals: freshest first)."""
        sign = 1.0 if shrink else -1.0
        ranked = sorted(
            items,
            key=lambda q: (self._served.get(q.window.stream, 0.0), sign * q.deadline, q.ticket),
        )[:n]
        # Never let the batch size itself make one of its on-time windows late: shrink it.
        while (
            shrink
            and n > 1
            and now + self.estimate.estimate(n) + self.margin_s
            > min(q.deadline for q in ranked[:n])
        ):
            n -= 1
        batch = [q.window for q in ranked[:n]]
        for w in batch:
            del self._queue[w.stream]
            self._served[w.stream] = now
        return batch

    def _alone(self) -> float:
        return self.estimate.estimate(1) + self.margin_s

    def _drop(self, now: float) -> tuple[list[Window], list[Window]]:
        """(stale, expired) windows, taken out of the queue."""
        alone = self._alone()
        stale: list[Window] = []
        expired: list[Window] = []
        for q in list(self._queue.values()):
            if q.late and now + alone > q.deadline + self.late_grace_s:
                expired.append(q.window)
            elif not q.late and now + alone > q.deadline:
                stale.append(q.window)
            else:
                continue
            del self._queue[q.window.stream]
        return stale, expired
