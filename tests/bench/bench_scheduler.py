"""Overhead of the scheduling → interpretation → Redis path, without a model.

N synthetic streams cut a window every hop; a zero-cost engine answers at once; the real
scheduler, pipeline and publisher send everything to an embedded redis-server. Reports
capture-to-publish percentiles (from Redis acknowledgements), outcomes, and the process CPU
spent per window (all of it on the event loop and the inference thread: the service's own cost).

    .venv/bin/python -m tests.bench.bench_scheduler --streams 16 --hop 0.5 --seconds 10
    .venv/bin/python -m tests.bench.bench_scheduler --streams 16 --hop 0.5 --engine-ms 40 \
        --engine-ms-per-window 10          # an engine too slow for the load: sheds, p99 bounded
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from engines.window import Window, WindowSpec
from stream.embedded_redis import EmbeddedRedis
from stream.interpret import Interpreter
from stream.metrics import OUTCOMES, Metrics
from stream.publish.messages import Message
from stream.publish.redis_publisher import RedisPublisher
from stream.scheduler.runner import Scheduler


@dataclass
class InstantEngine:
    """An `EngineRuntime` whose inference costs nothing (measures everything around it), or
    sleeps like a slow backend when given a compute time (overload behaviour)."""

    name: str = "instant"
    labels: tuple[str, ...] = ("siren", "speech")
    spec: WindowSpec = field(default_factory=lambda: WindowSpec(length_s=1.0, hop_s=0.5))
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    budget_s: float = 0.2
    max_queue_delay_s: float = 0.025
    backend_name: str = "none"
    base_s: float = 0.0  # simulated compute: base_s + per_window_s * batch
    per_window_s: float = 0.0

    def infer(self, windows: Sequence[Window]) -> list[dict[str, float]]:
        if self.base_s or self.per_window_s:
            time.sleep(self.base_s + self.per_window_s * len(windows))
        return [{"siren": 0.9 if w.end % 4 < 2 else 0.1, "speech": 0.2} for w in windows]

    def release(self, stream: str) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def bench(
    streams: int, hop: float, seconds: float, base_ms: float = 0.0, per_window_ms: float = 0.0
) -> dict[str, object]:
    engine = InstantEngine(base_s=base_ms / 1000, per_window_s=per_window_ms / 1000)
    metrics = Metrics(process=False)
    latencies: list[float] = []
    with EmbeddedRedis() as redis:
        publisher = RedisPublisher(redis.url, "bench", metrics)
        pipeline = Interpreter([engine], publisher, metrics)

        def sent(msg: Message) -> None:
            pipeline.message_sent(msg)
            if msg["type"] == "scene":
                latencies.append(msg["latency_ms"]["capture_to_publish"])

        publisher.on_sent = sent
        scheduler = Scheduler([engine], metrics, pipeline, publisher)
        await publisher.start()
        await scheduler.start()
        cpu0, t0 = time.process_time(), time.monotonic()
        submitted = 0
        tick = 0
        while time.monotonic() - t0 < seconds:
            for i in range(streams):
                end = time.time()
                scheduler.submit(
                    Window(
                        f"s{i}",
                        engine.name,
                        tick,
                        end - 1.0,
                        end,
                        None,
                        None,
                        None,
                        cut_at=time.monotonic(),
                    )
                )
                submitted += 1
            tick += 1
            await asyncio.sleep(max(0.0, t0 + tick * hop - time.monotonic()))
        for i in range(streams):
            scheduler.stream_ended(f"s{i}")
        await asyncio.sleep(0.3)
        await publisher.flush(5.0)
        cpu = time.process_time() - cpu0
        await scheduler.close()
        await publisher.close()
    outcomes = {
        o: int(metrics.windows.labels(engine=engine.name, outcome=o)._value.get()) for o in OUTCOMES
    }
    return {
        "streams": streams,
        "hop_s": hop,
        "engine_ms": {"base": base_ms, "per_window": per_window_ms},
        "budget_ms": engine.budget_s * 1000,
        "windows": submitted,
        "outcomes": outcomes,
        "capture_to_publish_ms": {
            "p50": round(pct(latencies, 0.5), 2),
            "p95": round(pct(latencies, 0.95), 2),
            "p99": round(pct(latencies, 0.99), 2),
        },
        "cpu_ms_per_window": round(cpu * 1000 / max(1, submitted), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--engine-ms", type=float, default=0.0, help="simulated compute per batch")
    p.add_argument("--engine-ms-per-window", type=float, default=0.0, help="... plus per window")
    args = p.parse_args()
    result = asyncio.run(
        bench(args.streams, args.hop, args.seconds, args.engine_ms, args.engine_ms_per_window)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
