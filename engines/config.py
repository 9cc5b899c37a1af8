"""The engines' configuration: which engines run, where they come from, per-engine overrides
and the event thresholds per label. The service embeds `EnginesConfig` as its `[engines]`
section (`stream.config.Settings`); the lab's commands read it too.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ONNXRUNTIME_THREADS = 256


def _not_a_boolean(value: object) -> object:
    """Before parsing: TOML's true/false would otherwise pass as 1/0 threads."""
    if isinstance(value, bool):
        raise ValueError("must be a thread count (an integer), not true/false")
    return value


def _thread_count(value: int | None) -> int | None:
    """After parsing: 0 (auto) to MAX_ONNXRUNTIME_THREADS."""
    if value is not None and not 0 <= value <= MAX_ONNXRUNTIME_THREADS:
        raise ValueError(
            f"must be 0 (auto: 1 thread on machines with at most 4 cores, else up to 4) or a "
            f"thread count from 1 to {MAX_ONNXRUNTIME_THREADS}, not {value}"
        )
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelThresholds(_Section):
    """Event hysteresis for one label."""

    on: float = Field(0.6, gt=0, lt=1, description="score that (after min_duration) starts")
    off: float = Field(0.4, gt=0, lt=1, description="score under which (after hold) it ends")
    min_duration_s: float = Field(0.0, ge=0, description="time above `on` before start")
    hold_s: float = Field(1.0, ge=0, description="time under `off` before end")


class EngineOverride(_Section):
    """Per-engine settings that override the engine manifest."""

    backend: str | None = Field(None, description="force a backend (tensorrt/onnxruntime/torch)")
    budget_ms: float | None = Field(None, gt=0, description="latency budget after window end")
    max_queue_delay_ms: float | None = Field(None, ge=0, description="longest batch collection")
    hop_s: float | None = Field(None, gt=0, description="window hop")
    onnxruntime_threads: int | None = Field(
        None, description="ONNX Runtime intra-op threads of this engine (0 = auto)"
    )
    thresholds: dict[str, LabelThresholds] = Field(default_factory=dict)

    _threads_type = field_validator("onnxruntime_threads", mode="before")(_not_a_boolean)
    _threads_range = field_validator("onnxruntime_threads")(_thread_count)


class EnginesConfig(_Section):
    """Which engines run and where they come from."""

    enabled: list[str] = Field(
        default_factory=lambda: ["avfusion", "silero-vad"], description="engine names to run"
    )
    user_dir: Path | None = Field(None, description="directory of user engine directories")
    backends: list[str] = Field(
        default_factory=lambda: ["tensorrt", "onnxruntime", "torch"],
        description="backend preference order",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "scenestream", description="ONNX/TensorRT build cache"
    )
    overrides: dict[str, EngineOverride] = Field(default_factory=dict)
    onnxruntime_threads: int = Field(
        0,
        description="ONNX Runtime intra-op threads of each engine's session; 0 = auto (1 on "
        "machines with at most 4 cores, else up to 4)",
    )

    onnxruntime_spinning: bool = Field(
        True,
        description="with more than one ONNX Runtime thread, the threads spin-wait for work "
        "between operators (fastest on idle cores); false lets them sleep, for cores shared "
        "with other work",
    )

    _threads_type = field_validator("onnxruntime_threads", mode="before")(_not_a_boolean)
    _threads_range = field_validator("onnxruntime_threads")(_thread_count)

    def onnxruntime_threads_for(self, engine: str) -> int:
        """Intra-op threads for `engine`'s ONNX Runtime session (0 = the backend's auto)."""
        override = self.overrides.get(engine)
        if override is not None and override.onnxruntime_threads is not None:
            return override.onnxruntime_threads
        return self.onnxruntime_threads
