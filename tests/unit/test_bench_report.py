"""The benchmark's pure parts: statistics, metric deltas, the held verdict, capacity search."""

from __future__ import annotations

import pytest

from stream.benchmark.report import (
    CapacitySearch,
    TrialResult,
    counter_delta,
    gauge,
    histogram_means,
    live_streams,
    markdown_table,
    merge_samples,
    overload_streams,
    overload_table,
    overload_verdict,
    parse_metrics,
    percentiles_ms,
    thirds_trend,
    verdict,
)
from stream.benchmark.trial import LatencyCollector

pytestmark = pytest.mark.unit

BEFORE = """\
# TYPE scenestream_windows_total counter
scenestream_windows_total{engine="avfusion",outcome="published"} 10.0
scenestream_windows_total{engine="avfusion",outcome="stale"} 1.0
scenestream_windows_total{engine="silero-vad",outcome="published"} 50.0
# TYPE scenestream_queue_depth gauge
scenestream_queue_depth{engine="avfusion"} 2.0
scenestream_queue_depth{engine="silero-vad"} 1.0
"""
AFTER = BEFORE.replace("} 10.0", "} 30.0").replace("} 50.0", "} 90.0") + (
    'scenestream_windows_total{engine="avfusion",outcome="superseded"} 3.0\n'
)


def result(**kw: object) -> TrialResult:
    base: dict[str, object] = {
        "server": "service", "streams": 4, "seconds": 10.0,
        "latency_ms": {"p50": 80.0, "p95": 120.0, "p99": 150.0}, "messages": 80,
        "windows_per_s": 8.0, "expected_per_s": 8.0,
    }  # fmt: skip
    base.update(kw)
    return TrialResult(**base)  # type: ignore[arg-type]


def test_percentiles_in_ms() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    p = percentiles_ms(values)
    assert p["p50"] == pytest.approx(50.5)
    assert p["p95"] == pytest.approx(95.05)
    assert p["p99"] == pytest.approx(99.01)
    assert percentiles_ms([]) == {"p50": None, "p95": None, "p99": None}


def test_counter_delta_per_outcome_of_one_engine() -> None:
    before, after = parse_metrics(BEFORE), parse_metrics(AFTER)
    delta = counter_delta(before, after, "scenestream_windows_total", "outcome", engine="avfusion")
    assert delta == {"published": 20.0, "stale": 0.0, "superseded": 3.0}
    assert gauge(after, "scenestream_queue_depth") == 3.0
    assert gauge(after, "scenestream_queue_depth", engine="avfusion") == 2.0


def test_thirds_trend_sees_growth_only() -> None:
    assert thirds_trend([0.1] * 30) == 0.0
    assert thirds_trend([0.1 + 0.01 * i for i in range(30)]) == pytest.approx(0.2)
    assert thirds_trend([5.0, 1.0]) == 0.0  # too few to tell


def test_verdict_names_every_failed_condition() -> None:
    assert verdict(result()) == []
    why = verdict(
        result(
            latency_ms={"p50": 200.0, "p95": 300.0, "p99": 400.0},
            outcomes={"stale": 2.0},
            windows_per_s=4.0,
            rss_growth_mb=100.0,
            latency_trend_ms=80.0,
            queue_trend=3.0,
        )
    )
    assert len(why) == 6, why
    assert "p95 300 ms > 250 ms" in why
    assert verdict(result(latency_ms={"p50": None, "p95": None, "p99": None})) == [
        "no scene messages"
    ]


def test_capacity_search_doubles_then_bisects() -> None:
    search, capacity = CapacitySearch(start=1, limit=64), 11
    while (n := search.next()) is not None:
        search.record(n, n <= capacity)
    assert search.held == capacity
    assert [n for n, _ in search.tried] == [1, 2, 4, 8, 16, 12, 10, 11]


def test_capacity_search_edges() -> None:
    none = CapacitySearch()
    none.record(none.next() or 0, held=False)
    assert none.next() is None
    assert none.held == 0
    capped = CapacitySearch(start=4, limit=8)
    for _ in range(3):
        n = capped.next()
        if n is None:
            break
        capped.record(n, held=True)
    assert capped.held == 8
    assert capped.next() is None


def test_markdown_table_has_a_row_per_trial() -> None:
    rows = [result(outcomes={"published": 80.0}), result(server="naive", streams=2)]
    rows[1].why = ["p95 300 ms > 250 ms"]
    text = markdown_table(rows)
    assert text.count("\n") == 4
    assert "| service | 4 | 80 | 120 | 150 | 8.0 | 0/0/0 |" in text
    assert "| naive | 2 | 80 | 120 | 150 | 8.0 | – |" in text
    assert "no: p95 300 ms > 250 ms" in text


def test_workers_metrics_are_summed_series_by_series() -> None:
    one, two = parse_metrics(BEFORE), parse_metrics(AFTER)
    merged = merge_samples([one, two])
    assert gauge(merged, "scenestream_queue_depth", engine="avfusion") == 4.0
    delta = counter_delta(one, merged, "scenestream_windows_total", "outcome", engine="avfusion")
    assert delta == {"published": 30.0, "stale": 1.0, "superseded": 3.0}  # two's totals
    assert merge_samples([]) == {}


def test_several_workers_are_named_in_the_table() -> None:
    row = result(workers=2, streams_per_worker=[2, 2])
    assert row.label == "service ×2"
    assert row.as_dict()["workers"] == 2
    assert row.as_dict()["streams_per_worker"] == [2, 2]
    assert "| service ×2 | 4 |" in markdown_table([row])
    assert result().label == "service"


def test_live_streams_per_worker_only_where_the_gauge_exists() -> None:
    live = "# TYPE scenestream_active_streams gauge\nscenestream_active_streams 3.0\n"
    assert live_streams([parse_metrics(live), parse_metrics(live.replace("3.0", "2.0"))]) == [3, 2]
    assert live_streams([parse_metrics(BEFORE)]) == []  # the naive baseline has no such gauge
    assert live_streams([]) == []


def test_collector_keeps_one_engine_and_skips_garbage() -> None:
    c = LatencyCollector("avfusion")
    c.add(b'{"engine": "avfusion", "window": {"end": 10.0}, "published_at": 10.08}')
    c.add(b'{"engine": "silero-vad", "window": {"end": 10.0}, "published_at": 10.5}')
    c.add(b"not json")
    c.add(b'{"engine": "avfusion"}')
    c.add(b'{"engine": "avfusion", "window": {"end": 12.0}, "published_at": 12.1}')
    assert c.between(9.0, 11.0) == [pytest.approx(0.08)]
    assert len(c.between(0.0, 20.0)) == 2
    assert c.outside_p50(0.0, 20.0) is None  # no latency breakdown in these messages
    c.add(
        b'{"engine": "avfusion", "window": {"end": 14.0}, "published_at": 14.1,'
        b' "latency_ms": {"queue": 20.0, "infer": 30.0}}'
    )
    assert c.outside_p50(0.0, 20.0) == pytest.approx(0.05)


def test_histogram_means_per_stage() -> None:
    text = """\
# TYPE scenestream_stage_seconds histogram
scenestream_stage_seconds_sum{engine="avfusion",stage="queue"} %s
scenestream_stage_seconds_count{engine="avfusion",stage="queue"} %s
scenestream_stage_seconds_sum{engine="avfusion",stage="infer"} %s
scenestream_stage_seconds_count{engine="avfusion",stage="infer"} %s
"""
    before = parse_metrics(text % (1.0, 10, 2.0, 10))
    after = parse_metrics(text % (1.5, 20, 2.0, 10))
    means = histogram_means(before, after, "scenestream_stage_seconds", "stage", engine="avfusion")
    assert means == {"queue": pytest.approx(0.05)}  # infer saw nothing new: left out


def test_overload_offers_half_again_the_capacity() -> None:
    assert overload_streams(16) == 24
    assert overload_streams(15) == 23
    assert overload_streams(1) == 2


def test_overload_verdict_judges_only_the_admitted_streams() -> None:
    # 24 offered, 14 admitted, 10 refused: the admitted published 27 of 28 expected windows/s.
    fine = result(streams=24, refused_streams=10, windows_per_s=27.0, expected_per_s=28.0,
                  min_stream_delivery=0.93, admission="headroom")  # fmt: skip
    assert fine.admitted == 14
    assert overload_verdict(fine) == []
    collapsed = result(streams=24, refused_streams=0, windows_per_s=0.0, expected_per_s=48.0,
                       latency_ms={"p50": None, "p95": None, "p99": None},
                       min_stream_delivery=0.0)  # fmt: skip
    why = overload_verdict(collapsed)
    assert "no scene messages" in why
    assert "0% of admitted streams' windows published" in why
    slow = result(streams=24, refused_streams=4, windows_per_s=38.0, expected_per_s=40.0,
                  latency_ms={"p50": 200.0, "p95": 400.0, "p99": 500.0},
                  min_stream_delivery=0.5)  # fmt: skip
    assert overload_verdict(slow) == [
        "admitted p95 400 ms > 250 ms",
        "worst admitted stream 50% of its windows",
    ]
    fine.held = True
    table = overload_table([fine])
    assert "| headroom | 24 | 14 | 10 | 80 | 120 | 96% (93%) | 0/0/0 | yes |" in table


def test_latency_collector_counts_messages_per_stream() -> None:
    c = LatencyCollector("avfusion")
    for i, stream in enumerate(["bench0", "bench1", "bench0"]):
        end = 100.0 + i
        c.add(f'{{"engine": "avfusion", "stream": "{stream}", "window": {{"end": {end}}},'
              f' "published_at": {end + 0.1}}}')  # fmt: skip
    assert c.per_stream(100.0, 102.0) == {"bench0": 2, "bench1": 1}
    assert c.per_stream(101.0, 101.5) == {"bench1": 1}
