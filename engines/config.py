"""The engines' configuration: which engines run, where they come from, per-engine overrides
and the event thresholds per label. The service embeds `EnginesConfig` as its `[engines]`
section (`stream.config.Settings`); the lab's commands read it too.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


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
    thresholds: dict[str, LabelThresholds] = Field(default_factory=dict)


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
