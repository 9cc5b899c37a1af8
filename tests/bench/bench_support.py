"""Benchmark-only instrumentation: records each frame's recv()-to-ring time in the service."""

from __future__ import annotations

from typing import Any


def record_ingest_times(cls: Any) -> dict[str, list[float]]:
    """Wrap `StreamIngest._ingested` so that every frame's ingest time is also kept in a list."""
    times: dict[str, list[float]] = {"video": [], "audio": []}
    original = cls._ingested

    def ingested(self: Any, kind: str, seconds: float) -> None:
        times[kind].append(seconds)
        original(self, kind, seconds)

    cls._ingested = ingested
    return times
