"""The `engine.toml` schema: one pydantic model per TOML table, unknown keys forbidden.

Schema (TOML tables; every table forbids unknown keys):

- `[engine]` name, version, description, `model` (path relative to the engine directory) or
  `model_package` (`"package:path/inside"`, a file inside an installed Python package),
  `torch_factory` (`"module:callable"`, called with the engine directory, returning an
  `nn.Module` whose `forward` takes the ONNX input names as keyword arguments), precision,
  batch_sizes, budget_ms, max_queue_delay_ms.
- `[window]` length_s, hop_s, labels_at (`window` or `end`: what the scores describe).
- `[inputs.<onnx input name>]` role (video | audio | state | constant), dtype, shape (ints and
  the batch axis `"B"`), fps (video), sample_rate (audio), initial (state), value (constant).
  A state's batch axis is where `"B"` sits in its shape.
- `[outputs.<onnx output name>]` labels + activation (score outputs) or state_for (the state
  input it feeds on the next call). Graph outputs not declared are ignored. A score output may
  map its labels (the model's class names) to scene labels: `label_map` (a shipped map such as
  `"audioset"`, or a file in the engine directory, see `engines/labelmaps/`) and
  `label_overrides`; a scene label then scores the best of its classes.
- `[outputs.detections]` (optional, detectors): `layout` (`boxes`: graph outputs `boxes`,
  `scores`, optionally `classes`; `end2end`: one `output` of rows (box, score, class); `yolo`:
  one raw head `output` `[4 + C, N]`; `yolo_obj`: one raw head with objectness, rows
  `[N, 5 + C]`; `dfl`: one anchor-free head with distribution-focal boxes, rows
  `[N, C + 4 (reg_max + 1)]`, with `strides`, `reg_max`, `center_offset`, see
  `engines/detect/decode.py`), `class_names`, `box_format` (`xyxy` | `cxcywh`),
  `normalized` (boxes in fractions of the frame, else pixels of the video input),
  `activation`, `score_threshold`, `iou_threshold`, `max_detections`, `nms`, `label_map`,
  `label_overrides`, `keep_unmapped`. The engine's scores then include, per scene label, the
  best detection score of the frame (see `engines/detect/`).
- `[streaming]` (optional, stateful audio): chunk, context, aggregate. The window's audio is run
  as consecutive `chunk`-sample pieces, each with the previous `context` samples prepended.
- `[thresholds.<label>]` (optional) on, off, min_duration_s, hold_s: event defaults (the same
  field names as the service config's per-label thresholds, which override them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

BATCH = "B"

Dtype = Literal["uint8", "int32", "int64", "float16", "float32"]
Dim = int | Literal["B"]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineTable(_Table):
    """`[engine]`: identity, model file and serving defaults."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    version: str = Field(min_length=1)
    description: str = ""
    model: str | None = None
    model_package: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:.+$")
    torch_factory: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    precision: Literal["fp32", "fp16"] = "fp32"
    batch_sizes: tuple[int, ...] = (1,)
    budget_ms: float = Field(200.0, gt=0)
    max_queue_delay_ms: float = Field(25.0, ge=0)

    @field_validator("batch_sizes")
    @classmethod
    def _sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(b < 1 for b in value):
            raise ValueError("must be a non-empty list of positive integers")
        return tuple(sorted(set(value)))


class WindowTable(_Table):
    """`[window]`: window length and hop, seconds, and what the scores describe."""

    length_s: float = Field(gt=0, le=30)
    hop_s: float = Field(gt=0, le=30)
    # "window": the whole window (events dated at its midpoint); "end": the moment it ends, the
    # rest of the window being context (events dated at its end).
    labels_at: Literal["window", "end"] = "window"


class InputTable(_Table):
    """`[inputs.<name>]`: one graph input and where its data comes from."""

    role: Literal["video", "audio", "state", "constant"]
    dtype: Dtype
    shape: tuple[Dim, ...]
    fps: float | None = Field(None, gt=0)
    sample_rate: int | None = Field(None, gt=0)
    initial: Literal["zeros"] = "zeros"
    value: float | list[float] | None = None

    @property
    def batch_axis(self) -> int | None:
        """Position of `"B"` in the shape (None for constants)."""
        return self.shape.index(BATCH) if BATCH in self.shape else None


class OutputTable(_Table):
    """`[outputs.<name>]`: a score output (labels) or a state output (state_for)."""

    labels: tuple[str, ...] = ()
    activation: Literal["sigmoid", "softmax", "none"] = "none"
    state_for: str | None = None
    label_map: str | None = None
    label_overrides: dict[str, str] = Field(default_factory=dict)


DETECTIONS = "detections"  # the reserved key of `[outputs.detections]`


class DetectionsTable(_Table):
    """`[outputs.detections]`: how a detector's graph outputs become boxes (engines/detect)."""

    layout: Literal["boxes", "end2end", "yolo", "yolo_obj", "dfl"]
    output: str | None = None  # end2end, yolo, dfl: the one graph output
    boxes: str | None = None  # boxes layout: graph outputs
    scores: str | None = None
    classes: str | None = None
    class_names: tuple[str, ...] = Field(min_length=1)
    box_format: Literal["xyxy", "cxcywh"] | None = None  # default: cxcywh for yolo, else xyxy
    normalized: bool = False
    activation: Literal["none", "sigmoid"] = "none"
    score_threshold: float = Field(0.25, ge=0, le=1)
    iou_threshold: float = Field(0.45, gt=0, le=1)
    max_detections: int = Field(100, ge=1, le=1000)
    nms: bool | None = None  # default: not for end2end (the graph did it), else yes
    label_map: str | None = None
    label_overrides: dict[str, str] = Field(default_factory=dict)
    keep_unmapped: bool = False
    strides: tuple[int, ...] = ()  # dfl: the head's levels, in row order
    reg_max: int = Field(7, ge=1, le=64)  # dfl: the largest distance bin
    center_offset: float = Field(0.5, ge=0, le=1)  # dfl: grid-cell centre, in cells

    @field_validator("strides")
    @classmethod
    def _strides(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 for s in value):
            raise ValueError("strides must be positive integers")
        return value

    def graph_outputs(self) -> tuple[str, ...]:
        """The graph outputs this table reads, in decoding order."""
        names = (
            (self.output,) if self.layout != "boxes" else (self.boxes, self.scores, self.classes)
        )
        return tuple(n for n in names if n is not None)


class StreamingTable(_Table):
    """`[streaming]`: run the window's audio as consecutive chunks, state carried between them."""

    chunk: int = Field(gt=0)
    context: int = Field(0, ge=0)
    aggregate: Literal["max", "mean"] = "max"


class ThresholdTable(_Table):
    """`[thresholds.<label>]`: event defaults; unset fields use the service's defaults."""

    on: float | None = Field(None, gt=0, lt=1)
    off: float | None = Field(None, gt=0, lt=1)
    min_duration_s: float | None = Field(None, ge=0)
    hold_s: float | None = Field(None, ge=0)


class ManifestDoc(_Table):
    """The whole `engine.toml`."""

    engine: EngineTable
    window: WindowTable
    inputs: dict[str, InputTable] = Field(min_length=1)
    outputs: dict[str, OutputTable] = Field(default_factory=dict)
    streaming: StreamingTable | None = None
    thresholds: dict[str, ThresholdTable] = Field(default_factory=dict)
    detections: DetectionsTable | None = None  # written as `[outputs.detections]`

    @model_validator(mode="before")
    @classmethod
    def _detections_from_outputs(cls, raw: Any) -> Any:
        # `[outputs.detections]` reads naturally in a manifest; it is not a graph output.
        if isinstance(raw, dict) and isinstance(raw.get("outputs"), dict):
            outputs = dict(raw["outputs"])
            if DETECTIONS in outputs and "detections" not in raw:
                raw = {**raw, "outputs": outputs, "detections": outputs.pop(DETECTIONS)}
        return raw
