"""The deadline batcher, compute-time estimate and stream health: pure, synchronous."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.window import Window
from stream.scheduler.health import HealthTracker
from stream.scheduler.policy import ComputeEstimate, DeadlineBatcher

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0


def win(stream: str, end: float, seq: int = 0) -> Window:
    return Window(stream, "e", seq, end - 1.0, end, None, None, None)


def batcher(
    compute_s: float = 0.02,
    budget_s: float = 0.2,
    delay_s: float = 0.05,
    sizes: tuple[int, ...] = (1, 2, 4),
) -> DeadlineBatcher:
    est = ComputeEstimate(sizes, initial_s=compute_s, k=0.0)
    for n in sizes:
        est.observe(n, compute_s)
    return DeadlineBatcher(sizes, budget_s, delay_s, estimate=est, margin_s=0.0)


def test_flushes_when_full_with_earliest_deadlines_first() -> None:
    b = batcher(sizes=(1, 2, 4))
    for i, s in enumerate(["a", "b", "c", "d", "e"]):
        b.offer(win(s, T0 + 0.01 * (5 - i)), T0)
    d = b.poll(T0)
    assert [w.stream for w in d.batch] == ["e", "d", "c", "b"]
    assert d.wait_s == 0.0  # one left: ask again at once
    assert len(b) == 1


def test_overload_spreads_service_evenly_across_streams() -> None:
    b = batcher(compute_s=0.02, budget_s=0.2, delay_s=0.0, sizes=(1, 2, 4))
    served: dict[str, int] = {}
    now = T0
    for hop in range(40):  # 8 streams, one batch of 4 per hop: half must be shed
        for i in range(8):
            b.offer(win(f"s{i}", now + i * 1e-6, hop), now)  # s0 always cut first
        for w in b.poll(now).batch:
            served[w.stream] = served.get(w.stream, 0) + 1
        now += 0.1
    assert len(served) == 8
    assert max(served.values()) - min(served.values()) <= 2


def test_waits_then_flushes_after_max_queue_delay() -> None:
    b = batcher(compute_s=0.01, budget_s=1.0, delay_s=0.05)
    b.offer(win("a", T0), T0)
    d = b.poll(T0)
    assert d.batch == []
    assert d.wait_s == pytest.approx(0.05)
    assert b.poll(T0 + 0.049).batch == []
    assert [w.stream for w in b.poll(T0 + 0.05).batch] == ["a"]


def test_flushes_early_when_waiting_would_miss_the_earliest_deadline() -> None:
    b = batcher(compute_s=0.05, budget_s=0.1, delay_s=1.0)
    b.offer(win("a", T0), T0)
    d = b.poll(T0)
    # deadline T0+0.1, a 2-batch needs 0.05 s: latest start T0+0.05.
    assert d.batch == []
    assert d.wait_s == pytest.approx(0.05)
    assert [w.stream for w in b.poll(T0 + 0.05).batch] == ["a"]


def test_newer_window_supersedes_queued_one_of_same_stream() -> None:
    b = batcher(budget_s=1.0, delay_s=1.0)
    first, second = win("a", T0, 1), win("a", T0 + 0.5, 2)
    assert b.offer(first, T0) == (None, None)
    superseded, evicted = b.offer(second, T0 + 0.5)
    assert superseded is first
    assert evicted is None
    assert len(b) == 1


def test_window_that_became_unable_to_meet_its_deadline_while_queued_is_stale() -> None:
    b = batcher(compute_s=0.05, budget_s=0.2, delay_s=0.5)
    queued, fine = win("a", T0 - 0.1), win("b", T0 + 0.05)
    b.offer(queued, T0)  # deadline T0+0.1, fits alone until T0+0.05
    b.offer(fine, T0)
    d = b.poll(T0 + 0.06)
    assert d.stale == [queued]
    assert d.expired == []
    assert d.batch == []


def test_window_arriving_late_runs_when_no_on_time_work_and_counts_nothing_shed() -> None:
    b = batcher(compute_s=0.05, budget_s=0.2, delay_s=0.01)
    late = win("a", T0 - 0.19)  # ingest fell behind: past saving on arrival
    b.offer(late, T0)
    d = b.poll(T0)
    assert d.stale == []
    assert d.expired == []
    assert d.batch == [late]


def test_late_arrival_waits_for_due_on_time_work_then_uses_the_idle_gap() -> None:
    b = batcher(compute_s=0.02, budget_s=0.2, delay_s=0.05)
    late, fine = win("a", T0 - 0.19), win("b", T0)
    b.offer(fine, T0)
    b.offer(late, T0)
    # On-time work is due only at T0+0.05 (max queue delay): the late one runs in the gap.
    d = b.poll(T0)
    assert d.batch == [late]
    assert [w.stream for w in b.poll(T0 + 0.05).batch] == ["b"]
    # When on-time work is due now, it goes first.
    b.offer(win("a", T0 - 0.1), T0 + 0.1)
    b.offer(win("b", T0 + 0.1), T0 + 0.05)
    assert [w.stream for w in b.poll(T0 + 0.1).batch] == ["b"]


def test_late_arrival_expires_after_the_grace() -> None:
    b = batcher(compute_s=0.02, budget_s=0.2, delay_s=0.01)
    b.late_grace_s = 0.1
    late = win("a", T0 - 0.19)  # deadline T0+0.01: expires once it cannot finish by T0+0.11
    b.offer(late, T0)
    b.offer(win("b", T0 + 0.08), T0)
    d = b.poll(T0 + 0.085)  # the engine was busy elsewhere until now; on-time work first
    assert d.expired == []
    assert [w.stream for w in d.batch] == ["b"]
    d = b.poll(T0 + 0.1)
    assert d.expired == [late]
    assert late not in d.batch


def test_late_grace_defaults_to_the_budget() -> None:
    assert DeadlineBatcher((1,), 0.3, 0.01).late_grace_s == pytest.approx(0.3)


def test_everything_arriving_late_is_still_published_fairly() -> None:
    """A lagging ingest (every window 0.25 s old on arrival): the engine keeps publishing each
    stream's freshest window instead of shedding them all as stale."""
    b = batcher(compute_s=0.02, budget_s=0.2, delay_s=0.025, sizes=(1, 2, 4))
    served: dict[str, int] = {}
    shed = 0
    now = T0
    for hop in range(40):  # 8 streams every 0.5 s, one 4-batch per poll, two polls per hop
        for i in range(8):
            superseded, _ = b.offer(win(f"s{i}", now - 0.25 + i * 1e-6, hop), now)
            shed += superseded is not None
        for step in (0.0, 0.02):
            d = b.poll(now + step)
            shed += len(d.stale) + len(d.expired)
            for w in d.batch:
                served[w.stream] = served.get(w.stream, 0) + 1
        now += 0.5
    assert shed == 0
    assert served == {f"s{i}": 40 for i in range(8)}


def test_overloaded_late_arrivals_are_shed_evenly() -> None:
    b = batcher(compute_s=0.02, budget_s=0.2, delay_s=0.0, sizes=(1, 2, 4))
    served: dict[str, int] = {}
    now = T0
    for hop in range(40):  # 8 late streams, one 4-batch per hop: half are superseded
        for i in range(8):
            b.offer(win(f"s{i}", now - 0.25 + i * 1e-6, hop), now)
        for w in b.poll(now).batch:
            served[w.stream] = served.get(w.stream, 0) + 1
        now += 0.1
    assert len(served) == 8
    assert max(served.values()) - min(served.values()) <= 2


def test_full_queue_evicts_a_late_arrival_first() -> None:
    b = DeadlineBatcher((1,), 0.2, 1.0, capacity=2)
    b.offer(win("a", T0 - 0.5), T0)  # late
    b.offer(win("b", T0), T0)
    _, evicted = b.offer(win("c", T0 + 0.1), T0)
    assert evicted is not None
    assert evicted.stream == "a"


def test_batch_shrinks_rather_than_making_its_first_window_late() -> None:
    est = ComputeEstimate((1, 2, 4), k=0.0)
    est.observe(1, 0.02)
    est.observe(4, 0.08)
    b = DeadlineBatcher((1, 2, 4), 0.2, 0.0, estimate=est, margin_s=0.0)
    b.offer(win("a", T0 - 0.15), T0)  # 0.05 s left: fits alone (0.02), not as a 4-batch
    for s in "bcd":
        b.offer(win(s, T0), T0)
    d = b.poll(T0)
    assert d.stale == []
    assert d.batch[0].stream == "a"
    assert len(d.batch) < 4


def test_full_queue_evicts_earliest_deadline() -> None:
    b = DeadlineBatcher((1,), 1.0, 1.0, capacity=2)
    b.offer(win("a", T0 + 0.1), T0)
    b.offer(win("b", T0), T0)
    superseded, evicted = b.offer(win("c", T0 + 0.2), T0)
    assert superseded is None
    assert evicted is not None
    assert evicted.stream == "b"
    assert len(b) == 2


def test_remove_stream_returns_its_window() -> None:
    b = batcher(budget_s=1.0, delay_s=1.0)
    w = win("a", T0)
    b.offer(w, T0)
    assert b.remove_stream("a") is w
    assert b.remove_stream("a") is None
    assert b.poll(T0).wait_s is None


def test_compute_estimate_tracks_measurements_and_pads_sizes() -> None:
    est = ComputeEstimate((1, 2, 4, 8), initial_s=0.01)
    assert est.padded(3) == 4
    assert est.padded(20) == 8
    assert est.estimate(1) == pytest.approx(0.01)
    assert est.estimate(8) == pytest.approx(0.08)  # unmeasured: linear from the initial guess
    for _ in range(50):
        est.observe(2, 0.030)
    assert est.estimate(2) == pytest.approx(0.030, abs=0.002)
    assert est.estimate(8) >= est.estimate(2)  # extrapolated upwards from the nearest size
    for _ in range(50):
        est.observe(2, 0.060)  # the engine slowed down: the estimate follows
    assert est.estimate(2) == pytest.approx(0.060, abs=0.003)


def test_compute_estimate_deviation_raises_the_estimate_for_jittery_engines() -> None:
    steady, jittery = ComputeEstimate((1,)), ComputeEstimate((1,))
    for i in range(100):
        steady.observe(1, 0.02)
        jittery.observe(1, 0.01 if i % 2 else 0.03)
    assert jittery.estimate(1) > steady.estimate(1) + 0.01


@settings(max_examples=200, deadline=None)
@given(
    ends=st.lists(st.floats(min_value=-0.3, max_value=0.0), min_size=1, max_size=12),
    polls=st.lists(st.floats(min_value=0.0, max_value=0.02), min_size=1, max_size=30),
)
def test_every_window_is_batched_or_shed_and_on_time_batches_meet_estimates(
    ends: list[float], polls: list[float]
) -> None:
    b = batcher(compute_s=0.02, budget_s=0.2, delay_s=0.03)
    offered = [win(f"s{i % 5}", T0 + e, i) for i, e in enumerate(ends)]
    seen: list[Window] = []
    for w in offered:
        superseded, evicted = b.offer(w, T0)
        seen += [x for x in (superseded, evicted) if x is not None]
    now = T0
    for step in [*polls, 1.0]:
        now += step
        d = b.poll(now)
        seen += d.stale + d.expired + d.batch
        assert len(d.batch) <= 4
        if d.batch:
            # An on-time batch still meets its deadlines at the estimated cost; a batch of late
            # arrivals runs within the grace.
            first = min(b.deadline(w) for w in d.batch)
            grace = b.late_grace_s if first < T0 + b.estimate.estimate(1) else 0.0
            assert now + b.estimate.estimate(len(d.batch)) <= first + grace
    assert sorted(id(w) for w in seen) == sorted(id(w) for w in offered)


def test_health_degrades_and_recovers_with_hysteresis() -> None:
    h = HealthTracker(window_count=10, degrade_ratio=0.3, recover_ratio=0.1, min_samples=10)
    changes = [h.record("a", shed=False) for _ in range(10)]
    assert set(changes) == {None}
    changes = [h.record("a", shed=True) for _ in range(3)]
    assert changes == [None, None, "degraded"]
    assert h.is_degraded("a")
    # 20% shed: between the thresholds, stays degraded.
    changes = [h.record("a", shed=i % 5 == 0) for i in range(5)]
    assert "online" not in changes
    changes = [h.record("a", shed=False) for _ in range(10)]
    assert "online" in changes
    assert not h.is_degraded("a")
    h.forget("a")
    assert h.shed_ratio("a") == 0.0
