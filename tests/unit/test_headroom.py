"""Admission by measured headroom: the pure policy, the sample ring and the refusal gate."""

from __future__ import annotations

import asyncio

import pytest

from stream.http.headroom import (
    AdmissionGate,
    HeadroomPolicy,
    LoadMonitor,
    Recent,
    Signals,
    Thresholds,
)
from stream.metrics import Metrics

pytestmark = pytest.mark.unit

QUIET = Signals(loop_busy=0.2, loop_lag_s=0.002, window_lateness_s=0.08)


def policy(settle_s: float = 1.5) -> HeadroomPolicy:
    return HeadroomPolicy(Thresholds(0.85, 0.100, 0.150), settle_s=settle_s)


def test_quiet_worker_admits() -> None:
    assert policy().refusal(QUIET, streams=4, now=100.0) is None


def test_idle_worker_always_admits_whatever_the_signals() -> None:
    noisy = Signals(loop_busy=1.0, loop_lag_s=1.0, window_lateness_s=1.0)
    assert policy().refusal(noisy, streams=0, now=100.0) is None


def test_unmeasured_signals_admit() -> None:
    assert policy().refusal(Signals(), streams=3, now=100.0) is None


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        (Signals(loop_busy=0.9), "loop_busy"),
        (Signals(loop_lag_s=0.2), "loop_lag"),
        (Signals(window_lateness_s=0.3), "window_lateness"),
    ],
)
def test_each_signal_past_its_threshold_refuses_with_its_reason(
    signals: Signals, reason: str
) -> None:
    assert policy().refusal(signals, streams=10, now=100.0) == reason


def test_busy_is_projected_to_one_more_stream() -> None:
    p = policy()
    # 10 streams at 0.8: one more costs 0.08 -> 0.88 > 0.85.
    assert p.refusal(Signals(loop_busy=0.8), streams=10, now=100.0) == "loop_busy"
    # 20 streams at 0.8: one more costs 0.04 -> 0.84.
    assert p.refusal(Signals(loop_busy=0.8), streams=20, now=100.0) is None


def test_a_burst_of_newcomers_is_admitted_in_waves() -> None:
    p = policy(settle_s=2.0)
    signals = Signals(loop_busy=0.3, window_lateness_s=0.05)  # the burst's cost not shown yet
    carried, now = 4, 100.0
    waves: list[int] = []
    for _ in range(4):
        wave = 0
        while (why := p.refusal(signals, streams=carried, now=now)) is None:
            p.admitted(now)
            carried, wave = carried + 1, wave + 1
            now += 0.05
        assert why == "settling"
        waves.append(wave)
        now += 2.1  # the wave settles
    # Half as many as are settled may settle at once: 4 -> 6 -> 9 -> 13 -> 19.
    assert waves == [2, 3, 4, 6]


def test_a_fresh_worker_takes_its_first_four_streams_at_once() -> None:
    p = policy(settle_s=2.0)
    idle = Signals(loop_busy=0.05, loop_lag_s=0.001)
    carried = 0
    while p.refusal(idle, streams=carried, now=100.0) is None:
        p.admitted(100.0)
        carried += 1
    assert carried == 4
    assert p.refusal(idle, streams=4, now=100.1) == "settling"


def test_one_newcomer_at_a_time_near_a_threshold() -> None:
    p = policy(settle_s=2.0)
    near = Signals(loop_busy=0.3, window_lateness_s=0.09)  # past half of 150 ms
    assert p.refusal(near, streams=10, now=100.0) is None  # 10 settled: half would be 5
    p.admitted(100.0)
    assert p.refusal(near, streams=11, now=100.1) == "settling"
    assert p.refusal(near, streams=11, now=102.2) is None


def test_settling_streams_count_at_a_settled_streams_cost() -> None:
    p = policy(settle_s=2.0)
    p.observe(Signals(loop_busy=0.5), streams=10, now=99.0)  # 0.05 per stream
    for i in range(4):
        p.admitted(100.0 + i * 0.01)
    # 0.6 with 4 of 14 settling: 0.06 per settled stream, 5 more of them -> 0.9 > 0.85.
    assert p.refusal(Signals(loop_busy=0.6), streams=14, now=100.1) == "loop_busy"


def test_recent_ring_is_bounded_and_reads_only_its_horizon() -> None:
    r = Recent(size=10, horizon_s=5.0)
    for i in range(100):
        r.add(float(i), float(i))
    assert len(r) == 10
    assert r.quantile(0.9, now=99.0) == 99.0  # samples 94..99 are within 5 s
    assert r.quantile(0.0, now=99.0) == 94.0
    assert r.mean(now=99.0) == pytest.approx(96.5)
    assert r.quantile(0.9, now=1000.0) is None
    assert r.mean(now=1000.0) is None


def test_gate_counts_refusals_by_reason() -> None:
    metrics = Metrics(process=False)
    gate = AdmissionGate(metrics)
    assert gate.refusal() is None  # count mode: headroom is not consulted
    gate.refused("capacity")
    gate.refused("loop_lag")
    gate.refused("loop_lag")
    text = metrics.render().decode()
    assert 'scenestream_streams_refused_total{reason="loop_lag"} 2.0' in text
    assert 'scenestream_streams_refused_total{reason="capacity"} 1.0' in text


def test_monitor_sees_a_blocked_loop_and_reports_the_change() -> None:
    """A loop blocked by CPU work shows as busy and lagging; the change is reported."""
    changes: list[bool] = []

    async def scenario() -> None:
        monitor = LoadMonitor(policy(), lambda: 2, tick_s=0.05, on_change=changes.append)
        monitor.start()
        try:
            for _ in range(6):
                await asyncio.sleep(0)
                _spin(0.25)  # the loop thread computes: busy, and every timer fires late
            await asyncio.sleep(0.06)
            signals = monitor.signals()
            assert signals.loop_lag_s is not None
            assert signals.loop_lag_s > 0.1
            assert monitor.refusal() in ("loop_busy", "loop_lag")
        finally:
            await monitor.close()

    asyncio.run(scenario())
    assert changes[:1] == [False]


def test_monitor_window_lateness_feeds_the_refusal() -> None:
    monitor = LoadMonitor(policy(), lambda: 3)
    assert monitor.refusal() is None
    for _ in range(20):
        monitor.window_lateness(0.4)
    assert monitor.refusal() == "window_lateness"


def _spin(seconds: float) -> None:
    import time

    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_process_cpu_refuses_when_the_threads_fill_the_core_while_the_loop_looks_quiet() -> None:
    """Decoding threads waiting for the GIL do not show in the loop's busy fraction: the whole
    process at 0.85 cores for 8 settled streams has no room for a ninth (0.106 cores each)."""
    p = policy()
    quiet_loop = {"loop_busy": 0.3, "loop_lag_s": 0.002, "window_lateness_s": 0.05}
    assert p.refusal(Signals(**quiet_loop, process_cpu=0.85), streams=8, now=100.0) == "process_cpu"
    assert p.refusal(Signals(**quiet_loop, process_cpu=0.5), streams=8, now=100.0) is None
