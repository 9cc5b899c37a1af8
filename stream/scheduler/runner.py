"""The async side of scheduling: one task and one inference thread per engine.

`Scheduler` is the `WindowSink` the window cutter feeds. Each window goes to its engine's
`DeadlineBatcher` (pure policy, `policy.py`); the engine's task asks the batcher what to run
and when, runs batches in the engine's own executor thread (one thread per engine keeps a CUDA
context on one thread and the event loop free), and hands each window's scores to a
`ResultSink` (the pipeline: interpretation and publishing). Outcomes are counted in
`scenestream_windows_total`: `stale`, `superseded` and `error` here, `published`/`late` by the
pipeline once Redis has the scene message; every window shed before compute is also counted by
its reason in `scenestream_windows_shed_total` (`stale`, `expired`, `evicted`, `superseded`,
`ended`). Each window's age when its engine takes it (or sheds it) goes to `observe_lateness`,
one of the signals of admission by headroom. A stream whose windows are shed too often is
reported `degraded` through the `StatusSink`, and `online` again once it recovers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from engines.detect.decode import Detection
from engines.runtime.interface import EngineError, EngineRuntime, detections_of
from engines.window import Window
from stream.metrics import Metrics
from stream.publish.status import StatusSink
from stream.scheduler.health import HealthTracker
from stream.scheduler.policy import ComputeEstimate, DeadlineBatcher

logger = logging.getLogger(__name__)

Shed = Literal["stale", "expired", "evicted", "superseded", "ended"]
# The `scenestream_windows_total` outcome each shed reason is counted under (a fixed contract).
_OUTCOME: dict[Shed, Literal["stale", "superseded"]] = {
    "stale": "stale", "expired": "stale", "evicted": "stale",
    "superseded": "superseded", "ended": "superseded",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window's scores from its engine, with the time it queued and the batch's compute;
    a detector's result also holds the detections of the window's last frame."""

    window: Window
    engine: str
    scores: dict[str, float]
    queue_s: float
    infer_s: float
    batch_size: int
    detections: tuple[Detection, ...] | None = None


class ResultSink(Protocol):
    """Receives results on the event loop (must not block)."""

    def window_result(self, result: WindowResult) -> None: ...

    def stream_closed(self, stream: str, engine: str) -> None:
        """Every window of the stream on this engine has been delivered; it is gone."""
        ...


@dataclass(slots=True)
class _Lane:
    """One engine: its batcher, its inference thread, its task."""

    engine: EngineRuntime
    batcher: DeadlineBatcher
    executor: ThreadPoolExecutor
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ends: list[str] = field(default_factory=list)  # streams to release, in order
    ends_done: asyncio.Event = field(default_factory=asyncio.Event)  # set when `ends` is empty
    task: asyncio.Task[None] | None = None
    batches: int = 0


class Scheduler:
    """Deadline scheduling of windows onto engines (see the module docstring)."""

    def __init__(
        self,
        engines: Sequence[EngineRuntime],
        metrics: Metrics,
        sink: ResultSink,
        status: StatusSink,
        *,
        health: HealthTracker | None = None,
        queue_capacity: int = 256,
        observe_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.observe_lateness = observe_lateness
        self.sink = sink
        self.status = status
        self.health = health or HealthTracker()
        self._lanes: dict[str, _Lane] = {}
        for engine in engines:
            estimate = ComputeEstimate(engine.batch_sizes, initial_s=min(0.05, engine.budget_s / 4))
            batcher = DeadlineBatcher(
                engine.batch_sizes,
                engine.budget_s,
                engine.max_queue_delay_s,
                estimate=estimate,
                capacity=queue_capacity,
            )
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{engine.name}")
            self._lanes[engine.name] = _Lane(engine, batcher, executor)

    async def start(self) -> None:
        """Start one task per engine."""
        for name, lane in self._lanes.items():
            if lane.task is None:
                lane.task = asyncio.create_task(self._run_lane(lane), name=f"scheduler-{name}")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Finish what ended streams still owe (state release, `end` events: end the streams
        first), stop the engine tasks, then wait (bounded) for in-flight inference threads."""
        owing = [lane.ends_done.wait() for lane in self._lanes.values() if lane.task and lane.ends]
        try:
            async with asyncio.timeout(timeout_s / 2):
                await asyncio.gather(*owing)
        except TimeoutError:
            logger.warning("ended streams not all released at shutdown")
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes.values():
            lane.task = None
            lane.executor.shutdown(wait=False, cancel_futures=True)
        # A batch already running in a thread cannot be interrupted: give it a moment.
        waits = [asyncio.to_thread(lane.executor.shutdown, True) for lane in self._lanes.values()]
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*waits)
        except TimeoutError:
            logger.warning("inference still running at shutdown")

    # -- WindowSink -------------------------------------------------------------------------
    def submit(self, window: Window) -> None:
        """Queue a window for its engine (latest wins per stream). Never blocks."""
        lane = self._lanes.get(window.engine)
        if lane is None:
            logger.warning("window for an engine not running",
                           extra={"engine": window.engine, "stream": window.stream})  # fmt: skip
            self.metrics.windows.labels(engine=window.engine, outcome="error").inc()
            return
        superseded, evicted = lane.batcher.offer(window, time.time())
        if superseded is not None:
            self._shed(lane, superseded, "superseded")
        if evicted is not None:
            self._shed(lane, evicted, "evicted")
        self.metrics.queue_depth.labels(engine=lane.engine.name).set(len(lane.batcher))
        lane.wake.set()

    def stream_ended(self, stream: str) -> None:
        """The stream is gone: its queued windows are dropped (counted `superseded`: nothing
        newer will come), and once its in-flight windows are delivered the engines release
        its state and the sink closes its open events."""
        for lane in self._lanes.values():
            queued = lane.batcher.remove_stream(stream)
            if queued is not None:
                self._count(lane, "ended")
            lane.ends.append(stream)
            lane.ends_done.clear()
            lane.wake.set()
        self.health.forget(stream)

    # -- read API ---------------------------------------------------------------------------
    def engines(self) -> dict[str, dict[str, Any]]:
        """Per engine: backend, queue length, batches run and the compute-time estimates."""
        return {
            name: {
                "backend": lane.engine.backend_name,
                "queued": len(lane.batcher),
                "batches": lane.batches,
                "budget_ms": lane.engine.budget_s * 1000,
                "compute_ms": {
                    str(n): round(lane.batcher.estimate.estimate(n) * 1000, 2)
                    for n in lane.batcher.estimate.sizes
                },
            }
            for name, lane in self._lanes.items()
        }

    def shed_ratio(self, stream: str) -> float:
        """Fraction of the stream's recent windows shed (stale or superseded)."""
        return self.health.shed_ratio(stream)

    # -- the engine task --------------------------------------------------------------------
    async def _run_lane(self, lane: _Lane) -> None:
        while True:
            try:
                await self._lane_step(lane)
            except Exception:
                # A bug must not stop the engine for every stream: log it and carry on.
                logger.exception("scheduler step failed", extra={"engine": lane.engine.name})
                await asyncio.sleep(0.1)

    async def _lane_step(self, lane: _Lane) -> None:
        """One turn: release ended streams, drop stale windows, run a batch or wait."""
        lane.wake.clear()
        await self._release_ended(lane)
        decision = lane.batcher.poll(time.time())
        for window in decision.stale:
            self._shed(lane, window, "stale")
        for window in decision.expired:
            self._shed(lane, window, "expired")
        self.metrics.queue_depth.labels(engine=lane.engine.name).set(len(lane.batcher))
        if decision.batch:
            await self._run_batch(lane, decision.batch)
            return
        if lane.ends:
            return
        try:
            async with asyncio.timeout(decision.wait_s):
                await lane.wake.wait()
        except TimeoutError:
            pass

    async def _run_batch(self, lane: _Lane, batch: list[Window]) -> None:
        name = lane.engine.name
        mono = time.monotonic()
        queue_s = [max(0.0, mono - w.cut_at) if w.cut_at else 0.0 for w in batch]
        for q in queue_s:
            self.metrics.stage_seconds.labels(stage="queue", engine=name).observe(q)
        self.metrics.batch_size.labels(engine=name).observe(len(batch))
        lane.batches += 1
        self._lateness(batch)
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            scores = await loop.run_in_executor(lane.executor, lane.engine.infer, batch)
            if len(scores) != len(batch):
                raise EngineError(f"{name}: {len(scores)} results for {len(batch)} windows")
        except Exception:
            # One bad batch fails its windows, not the streams or the engine.
            streams = ",".join(sorted({w.stream for w in batch}))
            context = {"engine": name, "n": len(batch), "stream": streams}
            logger.exception("engine failed on a batch", extra=context)
            self.metrics.windows.labels(engine=name, outcome="error").inc(len(batch))
            return
        infer_s = time.perf_counter() - t0
        lane.batcher.estimate.observe(len(batch), infer_s)
        self.metrics.stage_seconds.labels(stage="infer", engine=name).observe(infer_s)
        for window, s, q in zip(batch, scores, queue_s, strict=True):
            self._record_health(window.stream, shed=False)
            try:
                result = WindowResult(
                    window, name, dict(s), q, infer_s, len(batch), detections_of(s)
                )
                self.sink.window_result(result)
            except Exception:
                logger.exception("result sink failed",
                                 extra={"engine": name, "stream": window.stream})  # fmt: skip

    async def _release_ended(self, lane: _Lane) -> None:
        while lane.ends:
            stream = lane.ends.pop(0)
            loop = asyncio.get_running_loop()
            try:
                # Same thread as inference: runs after any batch holding this stream.
                await loop.run_in_executor(lane.executor, lane.engine.release, stream)
            except Exception:
                logger.exception("engine release failed",
                                 extra={"engine": lane.engine.name, "stream": stream})  # fmt: skip
            self.health.forget(stream)  # again: in-flight results may have recorded since
            try:
                self.sink.stream_closed(stream, lane.engine.name)
            except Exception:
                logger.exception("result sink failed",
                                 extra={"engine": lane.engine.name, "stream": stream})  # fmt: skip
        lane.ends_done.set()

    def _shed(self, lane: _Lane, window: Window, reason: Shed) -> None:
        self._count(lane, reason)
        if reason != "superseded":  # a newer window of the stream came: not a sign of delay
            self._lateness([window])
        self._record_health(window.stream, shed=True)

    def _count(self, lane: _Lane, reason: Shed) -> None:
        name = lane.engine.name
        self.metrics.windows.labels(engine=name, outcome=_OUTCOME[reason]).inc()
        self.metrics.windows_shed.labels(engine=name, reason=reason).inc()

    def _lateness(self, windows: Sequence[Window]) -> None:
        """Report each window's age (capture clock) now that its engine takes or sheds it."""
        if self.observe_lateness is None:
            return
        now = time.time()
        for w in windows:
            self.observe_lateness(now - w.end)

    def _record_health(self, stream: str, *, shed: bool) -> None:
        change = self.health.record(stream, shed)
        if change == "degraded":
            ratio = self.health.shed_ratio(stream)
            reason = f"overloaded: {ratio:.0%} of recent windows stale or superseded"
            self.status.stream_status(stream, "degraded", reason)
        elif change == "online":
            self.status.stream_status(stream, "online", "recovered")
