"""Admission by measured headroom: may this worker take one more stream without hurting the
streams it carries? The policy is pure; `LoadMonitor` is the thin task that feeds it.

A stream count alone (`server.max_streams`) cannot say when a worker is full: the cost of a
stream depends on its resolution, the engines, and whatever else shares the cores. Past the
real limit the event loop falls behind, every window reaches its engine late, and every stream
suffers at once. So a newcomer is refused while any of these, measured over the last few
seconds, is past its threshold:

- `loop_busy`: the event-loop thread's CPU time over wall time (`time.thread_time`) over the
  last second, projected: plus the cost of one stream for the newcomer and for each stream
  still settling. A stream's cost is the busy fraction per *settled* stream (the settling ones
  add to the busy fraction only partly yet: this overestimates, the safe side), and at least
  what it was last seen to be while no stream was settling. The loop is where aiortc receives
  every packet; near 1.0 it cannot keep up.
- `process_cpu`: the whole process's CPU time over wall time (`time.process_time`, all threads:
  the loop, aiortc's decoder threads, the engines' threads), in cores, projected the same way.
  Decoding threads that fall behind while waiting for the GIL do not show in `loop_busy`; a
  Python worker is held near one core by the GIL, and its receive path falls behind before
  it reaches it (measured: 10 streams held at ~1.0 core, 9 admitted at 0.75 met every target).
- `loop_lag`: p90 of how late the loop wakes a timer. Catches a loop starved of CPU by other
  threads or processes, which `loop_busy` does not see.
- `window_lateness`: p90 of a window's age (capture clock) when its engine takes it or sheds it.
  Catches a backlog anywhere before the engine.

A worker that carries no stream always admits (there is nothing to protect, and an idle worker's
signals are noise: engine warm-up, garbage collection).

Streams admitted in the last `settle_s` have not shown their cost yet (their windows start to
flow a second or more after the offer, and part of their cost is not on the loop at all: decoding
threads, the engines). So a burst of offers cannot pass on the strength of one quiet sample:

- the settling streams are counted again, at a settled stream's cost, in the busy projection;
- beyond its first `FIRST_WAVE` streams, at most half as many streams as are settled may settle
  at once (one while any signal is past half of its threshold): the worker grows by
  waves, each judged by the signals of the last, like a slow start. A refusal for this reason is
  `settling`.

Refusals for want of headroom carry a short `Retry-After` (`RETRY_AFTER_S`): room may open as
soon as the newcomers settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from stream.metrics import Metrics

logger = logging.getLogger(__name__)

Refusal = Literal["capacity", "loop_busy", "process_cpu", "loop_lag", "window_lateness", "settling"]
CAUTION = 0.5  # past this share of any threshold, one newcomer settles at a time
FIRST_WAVE = 4  # streams a worker takes at once whatever it has measured (a few cameras at once)
MIN_LATENESS_SAMPLES = 5  # fewer windows than this say nothing about a backlog
RETRY_AFTER_S = 2  # a refusal for want of headroom: the signals move within seconds


class Recent:
    """The last samples of one signal (bounded: `size`), read over the last `horizon_s`."""

    def __init__(self, size: int = 512, horizon_s: float = 5.0) -> None:
        self.horizon_s = horizon_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, at: float, value: float) -> None:
        """Record `value` measured at monotonic time `at`."""
        self._samples.append((at, value))

    def count(self, now: float) -> int:
        """Samples within the horizon."""
        return sum(1 for t, _ in self._samples if now - t <= self.horizon_s)

    def mean(self, now: float) -> float | None:
        """The mean of the samples within the horizon; None if none."""
        values = [v for t, v in self._samples if now - t <= self.horizon_s]
        return sum(values) / len(values) if values else None

    def quantile(self, q: float, now: float) -> float | None:
        """The `q` quantile (nearest rank) of the samples within the horizon; None if none."""
        values = sorted(v for t, v in self._samples if now - t <= self.horizon_s)
        if not values:
            return None
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


@dataclass(frozen=True, slots=True)
class Signals:
    """The load of a worker now; None where nothing was measured recently."""

    loop_busy: float | None = None  # fraction of wall time the loop thread was on a CPU
    loop_lag_s: float | None = None  # p90 timer lateness
    window_lateness_s: float | None = None  # p90 window age when its engine takes it
    process_cpu: float | None = None  # cores the whole process used (CPU time over wall time)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where headroom ends (`server.headroom_*`)."""

    loop_busy: float = 0.85
    loop_lag_s: float = 0.100
    window_lateness_s: float = 0.150
    process_cpu: float = 0.75


class HeadroomPolicy:
    """Decides whether a newcomer may be admitted (see the module docstring). Pure."""

    def __init__(self, thresholds: Thresholds, *, settle_s: float = 4.0) -> None:
        self.thresholds = thresholds
        self.settle_s = settle_s
        self._admitted: deque[float] = deque(maxlen=1024)
        self.stream_cost = 0.0  # busy per stream, learnt while no stream settles
        self.stream_cpu = 0.0  # process cores per stream, likewise

    def observe(self, signals: Signals, streams: int, now: float) -> None:
        """Learn a stream's cost from a steady moment (streams carried, none settling)."""
        if streams <= 0 or self.settling(now):
            return
        if signals.loop_busy is not None:
            cost = signals.loop_busy / streams
            self.stream_cost = cost if not self.stream_cost else 0.8 * self.stream_cost + 0.2 * cost
        if signals.process_cpu is not None:
            cpu = signals.process_cpu / streams
            self.stream_cpu = cpu if not self.stream_cpu else 0.8 * self.stream_cpu + 0.2 * cpu

    def refusal(self, signals: Signals, streams: int, now: float) -> Refusal | None:
        """Why a newcomer must be refused now, or None to admit it. `streams` is how many the
        worker carries (settling ones included); `now` is monotonic."""
        if streams <= 0:
            return None
        t = self.thresholds
        settling = self.settling(now)
        settled = max(0, streams - settling)  # (settling ones may have ended meanwhile)
        busy = signals.loop_busy
        if busy is not None:  # nothing settled: the first wave, capped by FIRST_WAVE
            cost = max(busy / (settled or streams), self.stream_cost)
            if busy + cost * (settling + 1) > t.loop_busy:
                return "loop_busy"
        cpu = signals.process_cpu
        if cpu is not None:
            per_stream = max(cpu / (settled or streams), self.stream_cpu)
            if cpu + per_stream * (settling + 1) > t.process_cpu:
                return "process_cpu"
        if signals.loop_lag_s is not None and signals.loop_lag_s > t.loop_lag_s:
            return "loop_lag"
        lateness = signals.window_lateness_s
        if lateness is not None and lateness > t.window_lateness_s:
            return "window_lateness"
        if settling >= self._wave(signals, settled):
            return "settling"
        return None

    def _wave(self, signals: Signals, settled: int) -> int:
        """How many streams may settle at once (see the module docstring)."""
        t = self.thresholds
        near = (
            (signals.loop_busy or 0.0) > CAUTION * t.loop_busy
            or (signals.process_cpu or 0.0) > CAUTION * t.process_cpu
            or (signals.loop_lag_s or 0.0) > CAUTION * t.loop_lag_s
            or (signals.window_lateness_s or 0.0) > CAUTION * t.window_lateness_s
        )
        if near:
            return max(1, FIRST_WAVE - settled)
        return max(FIRST_WAVE - settled, settled // 2, 1)

    def admitted(self, now: float) -> None:
        """A stream was admitted at monotonic time `now`."""
        self._admitted.append(now)

    def settling(self, now: float) -> int:
        """Streams admitted within the last `settle_s`."""
        while self._admitted and now - self._admitted[0] > self.settle_s:
            self._admitted.popleft()
        return len(self._admitted)


class LoadMonitor:
    """Samples the event loop every `tick_s` and keeps the window-lateness reports; `signals()`
    summarises the last `horizon_s` (the busy fraction over a shorter span, so that it judges
    the last wave of newcomers). The composition root starts and stops it.

    `on_change(has_room)` is called (on the loop) when the answer for a newcomer flips, so that
    the scale-out advert stops (or resumes) sending peers' streams here.
    """

    def __init__(
        self,
        policy: HeadroomPolicy,
        streams: Callable[[], int],
        *,
        tick_s: float = 0.1,
        horizon_s: float = 5.0,
        busy_horizon_s: float = 1.0,
        lateness_horizon_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.policy = policy
        self.streams = streams
        self.tick_s = tick_s
        self.on_change = on_change
        self.busy = Recent(size=int(busy_horizon_s / tick_s) + 1, horizon_s=busy_horizon_s)
        self.cpu = Recent(size=int(busy_horizon_s / tick_s) + 1, horizon_s=busy_horizon_s)
        self.lag = Recent(size=int(horizon_s / tick_s) + 1, horizon_s=horizon_s)
        self.lateness = Recent(size=4096, horizon_s=lateness_horizon_s)
        self.has_room = True
        self._task: asyncio.Task[None] | None = None

    def window_lateness(self, age_s: float) -> None:
        """A window's age when its engine took or shed it (the scheduler's hook)."""
        self.lateness.add(time.monotonic(), age_s)

    def signals(self, now: float | None = None) -> Signals:
        """The signals over the horizon (busy: the mean of the ticks)."""
        now = time.monotonic() if now is None else now
        return Signals(
            loop_busy=self.busy.mean(now),
            process_cpu=self.cpu.mean(now),
            loop_lag_s=self.lag.quantile(0.9, now),
            window_lateness_s=(
                self.lateness.quantile(0.9, now)
                if self.lateness.count(now) >= MIN_LATENESS_SAMPLES
                else None
            ),
        )

    def refusal(self, carried: int | None = None) -> Refusal | None:
        """Why a newcomer must be refused now (None: admit); `carried` overrides the count."""
        streams = self.streams() if carried is None else carried
        return self.policy.refusal(self.signals(), streams, time.monotonic())

    def admitted(self) -> None:
        """A newcomer was admitted."""
        self.policy.admitted(time.monotonic())

    def start(self) -> None:
        """Start sampling (on the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="load-monitor")

    async def close(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        wall, cpu, process = time.monotonic(), time.thread_time(), time.process_time()
        while True:
            await asyncio.sleep(self.tick_s)
            now, used, process_used = time.monotonic(), time.thread_time(), time.process_time()
            elapsed = now - wall
            if elapsed > 0:
                # The loop thread ran this task, so thread_time is the loop's own CPU time.
                self.busy.add(now, min(1.0, (used - cpu) / elapsed))
                self.cpu.add(now, (process_used - process) / elapsed)
                self.lag.add(now, max(0.0, elapsed - self.tick_s))
            wall, cpu, process = now, used, process_used
            self._report_room()

    def _report_room(self) -> None:
        now, streams = time.monotonic(), self.streams()
        signals = self.signals(now)
        self.policy.observe(signals, streams, now)
        has_room = self.policy.refusal(signals, streams, now) is None
        if has_room != self.has_room:
            self.has_room = has_room
            logger.info("admission headroom changed", extra={"has_room": has_room})
            if self.on_change is not None:
                try:
                    self.on_change(has_room)
                except Exception:
                    logger.exception("headroom change hook failed")


class AdmissionGate:
    """What the WHIP endpoint asks before it takes a newcomer, and where refusals are counted
    (`scenestream_streams_refused_total{reason}`). Without a monitor (`server.admission =
    "count"`) only `server.max_streams` limits admission."""

    def __init__(self, metrics: Metrics, monitor: LoadMonitor | None = None) -> None:
        self.metrics = metrics
        self.monitor = monitor

    def refusal(self, carried: int | None = None) -> Refusal | None:
        """Why a newcomer must be refused now for lack of headroom (None: go on). `carried`:
        the streams carried besides the newcomer, when it is already counted (reserved)."""
        return None if self.monitor is None else self.monitor.refusal(carried)

    def admitted(self) -> None:
        """A newcomer's session was opened."""
        if self.monitor is not None:
            self.monitor.admitted()

    def refused(self, reason: Refusal) -> None:
        """A newcomer was refused (503) or sent to a peer (307)."""
        self.metrics.streams_refused.labels(reason=reason).inc()
