"""Engine benchmark: latency and throughput through the engine runtime, per batch size.

Timed through `Engine.infer` on `Window`s (the path the scheduler uses: stacking, padding,
state, activation included), not through the bare backend, so the figures are what the service
gets. For streaming engines, chunks/s is windows/s times the chunks per window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.runtime.backends.base import realistic_inputs
from engines.runtime.engine import Engine
from engines.window import Window


@dataclass(frozen=True, slots=True)
class BenchResult:
    """Timings of one engine on one backend at one batch size."""

    engine: str
    backend: str
    batch: int
    iterations: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    windows_per_s: float
    chunks_per_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {k: getattr(self, k) for k in self.__slots__}


def bench_windows(engine: Engine, batch: int, seed: int = 0) -> list[Window]:
    """`batch` windows of distinct streams with realistic media of the engine's shapes."""
    spec = engine.spec
    arrays = realistic_inputs(engine.manifest, batch, seed)
    video = next(iter(arrays[k] for k in engine.manifest.inputs_with_role("video")), None)
    audio = None
    if spec.audio is not None:
        rng = np.random.default_rng(seed)
        t = np.arange(spec.audio.samples) / spec.audio.sample_rate
        freqs = rng.uniform(200, 2000, size=(batch, 1))
        audio = (0.3 * np.sin(2 * np.pi * freqs * t)).astype(np.float32)
    return [
        Window(
            stream=f"bench-{i}",
            engine=engine.name,
            seq=0,
            start=0.0,
            end=spec.length_s,
            video=video[i] if video is not None else None,
            frame_times=None,
            audio=audio[i] if audio is not None else None,
        )
        for i in range(batch)
    ]


def bench_engine(
    engine: Engine, batch: int, iterations: int, warmup: int = 3, label: str | None = None
) -> BenchResult:
    """Time `iterations` calls of `batch` windows after `warmup` untimed ones.

    `label` names the backend in the result (e.g. "torch-compiled"); default its registry name.
    """
    windows = bench_windows(engine, batch)
    for _ in range(warmup):
        engine.infer(windows)
    times = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        engine.infer(windows)
        times[i] = time.perf_counter() - start
    for w in windows:
        engine.release(w.stream)
    mean = float(times.mean())
    streaming = engine.manifest.doc.streaming
    per_window = (
        engine.spec.audio.samples // streaming.chunk if streaming and engine.spec.audio else 0
    )
    wps = batch / mean
    return BenchResult(
        engine=engine.name,
        backend=label or engine.backend_name,
        batch=batch,
        iterations=iterations,
        p50_ms=round(float(np.percentile(times, 50)) * 1e3, 3),
        p99_ms=round(float(np.percentile(times, 99)) * 1e3, 3),
        mean_ms=round(mean * 1e3, 3),
        windows_per_s=round(wps, 1),
        chunks_per_s=round(wps * per_window, 1) if per_window else None,
    )
