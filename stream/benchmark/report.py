"""Pure benchmark logic: latency statistics, metric deltas, the "held" verdict, the capacity
search policy and the markdown table. No I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

P95_BUDGET_S = 0.25  # the target: p95 capture-to-publish within 250 ms
RSS_GROWTH_LIMIT_MB = 32.0  # over one measured interval, after the warm-up
LATENCY_TREND_LIMIT_S = 0.05  # median of the last third over the first third: a growing queue
MIN_DELIVERY = 0.8  # share of the expected scene messages that must arrive
OVERLOAD_FACTOR = 1.5  # the overload trial offers this many times the capacity found
OVERLOAD_MIN_DELIVERY = 0.9  # under overload, each admitted stream keeps this share of windows
OUTCOMES = ("published", "late", "stale", "superseded", "error")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def percentiles_ms(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 of latencies in seconds, in milliseconds (None when there are none)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return {"p50": float(p50) * 1e3, "p95": float(p95) * 1e3, "p99": float(p99) * 1e3}


def parse_metrics(text: str) -> Samples:
    """Prometheus text format to {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return samples


def merge_samples(scrapes: Iterable[Samples]) -> Samples:
    """Several processes' scrapes as one: each series summed over the processes."""
    merged: Samples = {}
    for samples in scrapes:
        for key, value in samples.items():
            merged[key] = merged.get(key, 0.0) + value
    return merged


def counter_delta(
    before: Samples, after: Samples, name: str, by: str, **where: str
) -> dict[str, float]:
    """Increase of counter `name` between two scrapes, summed by label `by`, filtered by `where`."""
    out: dict[str, float] = {}
    for (sample, labels), value in after.items():
        tags = dict(labels)
        if sample != name or any(tags.get(k) != v for k, v in where.items()):
            continue
        key = tags.get(by, "")
        out[key] = out.get(key, 0.0) + value - before.get((sample, labels), 0.0)
    return out


def histogram_means(
    before: Samples, after: Samples, name: str, by: str, **where: str
) -> dict[str, float]:
    """Mean observation of histogram `name` between two scrapes, by label `by` (seconds)."""
    sums = counter_delta(before, after, f"{name}_sum", by, **where)
    counts = counter_delta(before, after, f"{name}_count", by, **where)
    return {k: sums.get(k, 0.0) / n for k, n in counts.items() if n > 0}


def gauge(samples: Samples, name: str, **where: str) -> float:
    """Sum of gauge `name` over the series matching `where` (0 when absent)."""
    return sum(
        v
        for (sample, labels), v in samples.items()
        if sample == name and all(dict(labels).get(k) == w for k, w in where.items())
    )


def live_streams(per_worker: list[Samples]) -> list[int]:
    """Live streams per worker; empty for servers without the gauge (the naive baseline)."""
    name = "scenestream_active_streams"
    if not all(any(sample == name for sample, _ in m) for m in per_worker):
        return []
    return [int(gauge(m, name)) for m in per_worker]


def thirds_trend(values: Sequence[float]) -> float:
    """Median of the last third minus median of the first third (0 with too few values)."""
    if len(values) < 6:
        return 0.0
    third = len(values) // 3
    return float(np.median(values[-third:]) - np.median(values[:third]))


@dataclass
class TrialResult:
    """One measured run of one server at N streams."""

    server: str  # "service", "naive" or "ingest"
    streams: int
    seconds: float
    latency_ms: dict[str, float | None]
    messages: int
    windows_per_s: float
    expected_per_s: float
    outcomes: dict[str, float] = field(default_factory=dict)
    shed: dict[str, float] = field(default_factory=dict)  # windows shed before compute, by reason
    frames_dropped: dict[str, float] = field(default_factory=dict)
    stages_ms: dict[str, float] = field(default_factory=dict)  # mean per service stage
    cpu_cores: float = 0.0
    sender_cpu_cores: float = 0.0  # the load generator's, on the same machine
    rss_mb: float = 0.0
    rss_growth_mb: float = 0.0
    latency_trend_ms: float = 0.0
    outside_ms: float | None = None  # p50 of capture-to-publish outside queue + infer
    queue_trend: float = 0.0
    refused: bool = False
    held: bool = False
    why: list[str] = field(default_factory=list)
    workers: int = 1  # server processes (service workers sharing one Redis)
    streams_per_worker: list[int] = field(default_factory=list)  # live streams at the end
    admission: str = "count"  # server.admission of the service
    refused_streams: int | None = None  # overload trials: offers answered 503
    min_stream_delivery: float | None = None  # overload trials: worst admitted stream's share

    @property
    def admitted(self) -> int:
        """Streams the server took (all of them, except in an overload trial)."""
        return self.streams - (self.refused_streams or 0)

    @property
    def delivery(self) -> float | None:
        """Share of the admitted streams' expected scene messages that arrived."""
        return self.windows_per_s / self.expected_per_s if self.expected_per_s else None

    @property
    def label(self) -> str:
        """The server as the table names it: `service ×2` for two workers."""
        return self.server if self.workers == 1 else f"{self.server} ×{self.workers}"

    @property
    def cpu_per_stream(self) -> float:
        """Server CPU in cores per stream."""
        return self.cpu_cores / self.streams if self.streams else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (rounded)."""
        latency = {k: None if v is None else round(v, 1) for k, v in self.latency_ms.items()}
        return {
            "server": self.server,
            "streams": self.streams,
            "seconds": round(self.seconds, 2),
            "latency_ms": latency,
            "messages": self.messages,
            "windows_per_s": round(self.windows_per_s, 2),
            "expected_per_s": round(self.expected_per_s, 2),
            "outcomes": {k: int(v) for k, v in self.outcomes.items()},
            "shed": {k: int(v) for k, v in self.shed.items() if v},
            "frames_dropped": {k: int(v) for k, v in self.frames_dropped.items()},
            "stages_ms": {k: round(v, 2) for k, v in self.stages_ms.items()},
            "cpu_cores": round(self.cpu_cores, 3),
            "cpu_per_stream": round(self.cpu_per_stream, 3),
            "sender_cpu_cores": round(self.sender_cpu_cores, 3),
            "rss_mb": round(self.rss_mb, 1),
            "rss_growth_mb": round(self.rss_growth_mb, 1),
            "latency_trend_ms": round(self.latency_trend_ms, 1),
            "outside_queue_infer_ms_p50": _round(self.outside_ms),
            "queue_trend": round(self.queue_trend, 2),
            "workers": self.workers,
            "streams_per_worker": self.streams_per_worker,
            "admission": self.admission,
            "refused_streams": self.refused_streams,
            "admitted_streams": self.admitted,
            "delivery": _round3(self.delivery),
            "min_stream_delivery": _round3(self.min_stream_delivery),
            "refused": self.refused,
            "held": self.held,
            "why": self.why,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _round3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def overload_streams(capacity: int) -> int:
    """Streams the overload trial offers: `OVERLOAD_FACTOR` times the capacity, at least one
    more than it."""
    return max(capacity + 1, -(-capacity * 3 // 2))


def overload_verdict(r: TrialResult, budget_s: float = P95_BUDGET_S) -> list[str]:
    """Why an overload trial failed its targets (empty when met): the admitted streams keep p95
    within budget and each at least `OVERLOAD_MIN_DELIVERY` of its windows; every offer was
    either admitted or refused (none lost)."""
    why: list[str] = []
    p95 = r.latency_ms.get("p95")
    if r.refused:
        why.append("the sender gave up")
    if p95 is None:
        why.append("no scene messages")
    elif p95 > budget_s * 1e3:
        why.append(f"admitted p95 {p95:.0f} ms > {budget_s * 1e3:.0f} ms")
    if r.delivery is not None and r.delivery < OVERLOAD_MIN_DELIVERY:
        why.append(f"{r.delivery:.0%} of admitted streams' windows published")
    worst = r.min_stream_delivery
    if worst is not None and worst < OVERLOAD_MIN_DELIVERY:
        why.append(f"worst admitted stream {worst:.0%} of its windows")
    return why


def overload_table(rows: Iterable[TrialResult]) -> str:
    """Overload trials as a markdown table: admitted vs refused, and what the admitted got."""
    lines = [
        "| admission | offered | admitted | refused | p50 ms | p95 ms | windows published"
        " (worst stream) | stale/superseded/late | targets met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in rows:
        o = r.outcomes
        drops = f"{int(o.get('stale', 0))}/{int(o.get('superseded', 0))}/{int(o.get('late', 0))}"
        share = "–" if r.delivery is None else f"{r.delivery:.0%}"
        worst = "–" if r.min_stream_delivery is None else f"{r.min_stream_delivery:.0%}"
        met = "yes" if r.held else "no: " + "; ".join(r.why)
        lines.append(
            f"| {r.admission} | {r.streams} | {r.admitted} | {r.refused_streams or 0}"
            f" | {_ms(r.latency_ms['p50'])} | {_ms(r.latency_ms['p95'])} | {share} ({worst})"
            f" | {drops} | {met} |"
        )
    return "\n".join(lines) + "\n"


def verdict(r: TrialResult, budget_s: float = P95_BUDGET_S) -> list[str]:
    """Why `r` did not hold its load (empty when it held): p95 within budget, no stale drops,
    the expected scene messages delivered, no RSS, latency or queue growth."""
    why: list[str] = []
    p95 = r.latency_ms.get("p95")
    if r.refused:
        why.append("streams refused")
    if p95 is None:
        why.append("no scene messages")
    elif p95 > budget_s * 1e3:
        why.append(f"p95 {p95:.0f} ms > {budget_s * 1e3:.0f} ms")
    if r.outcomes.get("stale", 0) > 0:
        why.append(f"{int(r.outcomes['stale'])} stale drops")
    if r.expected_per_s and r.windows_per_s < MIN_DELIVERY * r.expected_per_s:
        why.append(f"{r.windows_per_s:.1f} windows/s of {r.expected_per_s:.1f} expected")
    if r.rss_growth_mb > RSS_GROWTH_LIMIT_MB:
        why.append(f"RSS grew {r.rss_growth_mb:.0f} MB")
    if r.latency_trend_ms > LATENCY_TREND_LIMIT_S * 1e3:
        why.append(f"latency grew {r.latency_trend_ms:.0f} ms")
    if r.queue_trend > max(1.0, r.streams / 4):
        why.append(f"queue grew by {r.queue_trend:.1f}")
    return why


@dataclass
class CapacitySearch:
    """Largest N that holds: doubling from `start` until one fails, then bisection.

    `held` is the largest N seen holding, `failed` the smallest seen failing; the search is
    over when they are adjacent, when doubling passes `limit`, or when the caller runs out of
    time (then `held` is a lower bound).
    """

    start: int = 1
    limit: int = 64
    held: int = 0
    failed: int | None = None
    tried: list[tuple[int, bool]] = field(default_factory=list)

    def next(self) -> int | None:
        """The next N to try, or None when the answer is known."""
        if self.failed is None:
            n = self.start if self.held == 0 and not self.tried else self.held * 2
            return n if 0 < n <= self.limit else None
        if self.failed - self.held <= 1:
            return None
        return (self.held + self.failed) // 2

    def record(self, streams: int, held: bool) -> None:
        """The outcome of a trial at `streams`."""
        self.tried.append((streams, held))
        if held:
            self.held = max(self.held, streams)
        else:
            self.failed = streams if self.failed is None else min(self.failed, streams)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def markdown_table(rows: Iterable[TrialResult]) -> str:
    """The results as a markdown table, one row per trial."""
    lines = [
        "| server | N | p50 ms | p95 ms | p99 ms | windows/s | stale/superseded/late "
        "| CPU/stream (cores) | RSS MB (growth) | held |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        o = r.outcomes
        drops = (
            "–"
            if not o
            else f"{int(o.get('stale', 0))}/{int(o.get('superseded', 0))}/{int(o.get('late', 0))}"
        )
        held = "yes" if r.held else "no: " + "; ".join(r.why) if r.why else "n/a"
        lines.append(
            f"| {r.label} | {r.streams} | {_ms(r.latency_ms['p50'])} | {_ms(r.latency_ms['p95'])}"
            f" | {_ms(r.latency_ms['p99'])} | {r.windows_per_s:.1f} | {drops}"
            f" | {r.cpu_per_stream:.3f} | {r.rss_mb:.0f} ({r.rss_growth_mb:+.0f}) | {held} |"
        )
    return "\n".join(lines) + "\n"


def ratio(service: int, baseline: int) -> float | None:
    """Streams held by the service per stream held by the baseline (None if it held none)."""
    return service / baseline if baseline else None


def summary_counts(outcomes: Mapping[str, float]) -> dict[str, int]:
    """Every known outcome with a count (0 when absent)."""
    return {k: int(outcomes.get(k, 0)) for k in OUTCOMES}
