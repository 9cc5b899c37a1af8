"""Engine manifests (`engine.toml`): what an engine is, validated once, at load.

An engine is a directory holding `engine.toml` and its model file(s). Everything a user can get
wrong in a manifest (unknown keys, missing files, wrong dtypes, shapes that disagree with the
ONNX graph, label counts that disagree with an output) is a `ManifestError` naming the file and
the field here, never a surprise at first inference.

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

import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engines.detect.decode import DecodeSpec, dfl_centres
from engines.labelmaps import LabelMapError, apply_overrides, load_label_map, mapped_labels
from engines.runtime.interface import ManifestError
from engines.window import AudioSpec, VideoSpec, WindowSpec

MANIFEST_FILE = "engine.toml"
BATCH = "B"

Dtype = Literal["uint8", "int32", "int64", "float16", "float32"]
Dim = int | Literal["B"]

# ONNX TensorProto element types for the dtypes a manifest may name.
ONNX_DTYPES: dict[int, str] = {2: "uint8", 6: "int32", 7: "int64", 10: "float16", 1: "float32"}


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


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest with its files resolved."""

    path: Path  # the engine.toml
    doc: ManifestDoc
    model_path: Path | None  # the ONNX file, when there is one
    # Per output (and `detections`), class name -> scene label, where a label map is declared.
    label_maps: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """The engine directory."""
        return self.path.parent

    @property
    def name(self) -> str:
        """Engine name."""
        return self.doc.engine.name

    @property
    def labels(self) -> tuple[str, ...]:
        """All scene labels, in output declaration order (mapped where a label map applies),
        then the detections' labels."""
        out: list[str] = []
        for name, table in self.doc.outputs.items():
            out.extend(self.output_labels(name, table))
        return tuple(out) + self.detection_labels

    def output_labels(self, name: str, table: OutputTable) -> tuple[str, ...]:
        """The scene labels one score output yields."""
        mapping = self.label_maps.get(name)
        return table.labels if mapping is None else mapped_labels(table.labels, mapping)

    @property
    def detection_labels(self) -> tuple[str, ...]:
        """The scene labels of a detector's detections (mapped classes, or all class names)."""
        det = self.doc.detections
        if det is None:
            return ()
        mapping = self.label_maps.get(DETECTIONS)
        if mapping is None:
            return det.class_names
        labels = mapped_labels(det.class_names, mapping)
        if det.keep_unmapped:
            labels += tuple(c for c in det.class_names if c not in mapping)
        return labels

    def decode_spec(self) -> DecodeSpec | None:
        """How to decode the detections, for detectors."""
        det = self.doc.detections
        if det is None:
            return None
        video = self.window_spec().video
        mapping = self.label_maps.get(DETECTIONS)
        labels: dict[str, str | None] = {}
        if mapping is not None:
            labels = {c: mapping.get(c, c if det.keep_unmapped else None) for c in det.class_names}
        return DecodeSpec(
            layout=det.layout,
            class_names=det.class_names,
            box_format=det.box_format or ("cxcywh" if det.layout.startswith("yolo") else "xyxy"),
            normalized=det.normalized,
            width=float(video.width) if video else 1.0,
            height=float(video.height) if video else 1.0,
            score_threshold=det.score_threshold,
            iou_threshold=det.iou_threshold,
            max_detections=det.max_detections,
            nms=det.nms if det.nms is not None else det.layout != "end2end",
            activation=det.activation,
            labels=labels,
            keep_unmapped=True,
            strides=det.strides,
            reg_max=det.reg_max,
            center_offset=det.center_offset,
        )

    @property
    def graph_outputs(self) -> tuple[str, ...]:
        """Every graph output a backend must return: declared outputs, then the detections'."""
        det = self.doc.detections.graph_outputs() if self.doc.detections else ()
        return tuple(dict.fromkeys((*self.doc.outputs, *det)))

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes to build and warm, ascending."""
        return self.doc.engine.batch_sizes

    @property
    def stateful(self) -> bool:
        """Whether per-stream state is carried between calls."""
        return self.doc.streaming is not None or any(
            i.role == "state" for i in self.doc.inputs.values()
        )

    def inputs_with_role(self, role: str) -> dict[str, InputTable]:
        """Declared inputs of one role, by graph name."""
        return {k: v for k, v in self.doc.inputs.items() if v.role == role}

    def window_spec(self) -> WindowSpec:
        """The windows this engine consumes."""
        win = self.doc.window
        video = audio = None
        for spec in self.inputs_with_role("video").values():
            t, h, w = (int(d) for d in spec.shape[1:4])
            video = VideoSpec(frames=t, fps=float(spec.fps or 0), height=h, width=w)
        for spec in self.inputs_with_role("audio").values():
            rate = int(spec.sample_rate or 0)
            samples = round(win.length_s * rate) if self.doc.streaming else int(spec.shape[1])
            audio = AudioSpec(sample_rate=rate, samples=samples)
        return WindowSpec(
            length_s=win.length_s,
            hop_s=win.hop_s,
            video=video,
            audio=audio,
            labels_at=win.labels_at,
        )


def load_manifest(path: Path) -> Manifest:
    """Read, validate and resolve `path` (an `engine.toml` or the directory holding one)."""
    path = path / MANIFEST_FILE if path.is_dir() else path
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: manifest not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from exc
    try:
        doc = ManifestDoc.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{path}: {where}: {first['msg']}") from exc
    model_path = _resolve_model(path, doc.engine)
    manifest = Manifest(
        path=path, doc=doc, model_path=model_path, label_maps=_label_maps(path, doc)
    )
    _check_consistency(manifest)
    if model_path is not None and model_path.suffix == ".onnx":
        _check_against_onnx(manifest, model_path)
    return manifest


def _fail(manifest_path: Path, field: str, message: str) -> ManifestError:
    return ManifestError(f"{manifest_path}: {field}: {message}")


def _label_maps(path: Path, doc: ManifestDoc) -> dict[str, dict[str, str]]:
    tables: dict[str, OutputTable | DetectionsTable] = dict(doc.outputs)
    if doc.detections is not None:
        tables[DETECTIONS] = doc.detections
    out: dict[str, dict[str, str]] = {}
    for name, table in tables.items():
        if table.label_map is None and not table.label_overrides:
            continue
        try:
            base = load_label_map(table.label_map, path.parent) if table.label_map else {}
            out[name] = apply_overrides(base, table.label_overrides)
        except LabelMapError as exc:
            raise _fail(path, f"outputs.{name}.label_map", str(exc)) from exc
    return out


def _resolve_model(path: Path, engine: EngineTable) -> Path | None:
    if engine.model and engine.model_package:
        raise _fail(path, "engine.model", "give either model or model_package, not both")
    if engine.model:
        model = (path.parent / engine.model).resolve()
        if not model.is_file():
            raise _fail(path, "engine.model", f"file not found: {model}")
        return model
    if engine.model_package:
        package, _, inner = engine.model_package.partition(":")
        spec = importlib.util.find_spec(package.split(".")[0])
        found = importlib.util.find_spec(package) if spec else None
        if found is None or not found.submodule_search_locations:
            raise _fail(path, "engine.model_package", f"package {package!r} is not installed")
        model = Path(next(iter(found.submodule_search_locations))) / inner
        if not model.is_file():
            raise _fail(path, "engine.model_package", f"file not found: {model}")
        return model
    if not engine.torch_factory:
        raise _fail(path, "engine.model", "give model, model_package or torch_factory")
    return None


def _check_consistency(m: Manifest) -> None:
    """Cross-field rules pydantic cannot express per field."""
    doc, p = m.doc, m.path
    media = {**m.inputs_with_role("video"), **m.inputs_with_role("audio")}
    if not media:
        raise _fail(p, "inputs", "at least one input with role video or audio is needed")
    for role in ("video", "audio"):
        if len(m.inputs_with_role(role)) > 1:
            raise _fail(p, "inputs", f"at most one input with role {role}")
    for name, spec in doc.inputs.items():
        _check_input(p, f"inputs.{name}", spec, doc)
    _check_detections(m)
    if not m.labels:
        raise _fail(p, "outputs", "at least one output needs labels (or [outputs.detections])")
    if len(set(m.labels)) != len(m.labels):
        raise _fail(p, "outputs", "labels must be unique across outputs")
    states = set(m.inputs_with_role("state"))
    fed: set[str] = set()
    for name, out in doc.outputs.items():
        if out.state_for is not None:
            if out.labels:
                raise _fail(p, f"outputs.{name}", "a state output carries no labels")
            if out.state_for not in states:
                raise _fail(p, f"outputs.{name}.state_for", f"{out.state_for!r} is no state input")
            fed.add(out.state_for)
    for name in states - fed:
        raise _fail(p, f"inputs.{name}", "state input without an output declaring state_for")
    for label in doc.thresholds:
        if label not in m.labels:
            raise _fail(p, f"thresholds.{label}", "not one of the engine's labels")
    _check_streaming(m)


def _check_detections(m: Manifest) -> None:
    det, p = m.doc.detections, m.path
    if det is None:
        return
    field_ = f"outputs.{DETECTIONS}"
    if not m.inputs_with_role("video"):
        raise _fail(p, field_, "a detector needs a video input")
    if det.layout == "boxes":
        if det.boxes is None or det.scores is None or det.output is not None:
            raise _fail(p, field_, "layout boxes names the graph outputs boxes and scores")
    elif det.output is None or det.boxes or det.scores or det.classes:
        raise _fail(p, field_, f"layout {det.layout} names one graph output: output")
    if len(set(det.class_names)) != len(det.class_names):
        raise _fail(p, f"{field_}.class_names", "class names must be unique")
    if det.layout == "dfl":
        if not det.strides:
            raise _fail(p, f"{field_}.strides", "layout dfl needs the head's strides")
        if det.normalized or det.box_format == "cxcywh":
            raise _fail(p, field_, "layout dfl yields xyxy pixel boxes (normalized = false)")
    elif det.strides:
        raise _fail(p, f"{field_}.strides", "only layout dfl has strides")
    for name in det.graph_outputs():
        if name in m.doc.outputs:
            raise _fail(p, field_, f"{name!r} is also declared as a score output")


def _check_input(p: Path, field: str, spec: InputTable, doc: ManifestDoc) -> None:
    if spec.shape.count(BATCH) > 1:
        raise _fail(p, f"{field}.shape", 'at most one "B" axis')
    if spec.role == "constant":
        if spec.value is None or BATCH in spec.shape:
            raise _fail(p, field, "a constant needs a value and no batch axis")
        return
    if spec.batch_axis is None:
        raise _fail(p, f"{field}.shape", 'needs a batch axis "B"')
    if spec.role in ("video", "audio") and spec.batch_axis != 0:
        raise _fail(p, f"{field}.shape", 'the batch axis "B" must come first')
    if spec.role == "video":
        if spec.dtype != "uint8" or len(spec.shape) != 5 or spec.shape[4] != 3:
            raise _fail(p, field, 'video is uint8 ["B", T, H, W, 3]')
        if spec.fps is None:
            raise _fail(p, f"{field}.fps", "video needs fps")
        frames = round(doc.window.length_s * spec.fps)
        if spec.shape[1] != frames:
            raise _fail(p, f"{field}.shape", f"T must be length_s * fps = {frames}")
    if spec.role == "audio":
        if spec.dtype != "float32" or len(spec.shape) != 2:
            raise _fail(p, field, 'audio is float32 ["B", S]')
        if spec.sample_rate is None:
            raise _fail(p, f"{field}.sample_rate", "audio needs sample_rate")
        samples = round(doc.window.length_s * spec.sample_rate)
        if doc.streaming is None and spec.shape[1] != samples:
            raise _fail(p, f"{field}.shape", f"S must be length_s * sample_rate = {samples}")


def _check_streaming(m: Manifest) -> None:
    st, p = m.doc.streaming, m.path
    if st is None:
        return
    audio = m.inputs_with_role("audio")
    if not audio or m.inputs_with_role("video"):
        raise _fail(p, "streaming", "streaming engines take audio only")
    spec = next(iter(audio.values()))
    if spec.shape[1] != st.chunk + st.context:
        raise _fail(p, "streaming", "the audio input's S must be chunk + context")
    samples = round(m.doc.window.length_s * int(spec.sample_rate or 0))
    if samples % st.chunk:
        raise _fail(p, "window.length_s", f"{samples} samples is not a multiple of chunk")
    # Carried state assumes windows tile the stream: an overlap would feed audio twice.
    if abs(m.doc.window.hop_s - m.doc.window.length_s) > 1e-9:
        raise _fail(p, "window.hop_s", "streaming engines need hop_s == length_s")


def onnx_io(model_path: Path) -> tuple[dict[str, tuple[str, tuple[Any, ...]]], dict[str, Any]]:
    """Graph inputs and outputs: name -> (dtype name, dims); a dim is int, str or None."""
    import onnx  # imported here: only manifests with an ONNX model need it

    graph = onnx.load(str(model_path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}

    def describe(value: Any) -> tuple[str, tuple[Any, ...]]:
        tt = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
            for d in tt.shape.dim
        )
        return ONNX_DTYPES.get(tt.elem_type, f"onnx-type-{tt.elem_type}"), dims

    inputs = {v.name: describe(v) for v in graph.input if v.name not in inits}
    outputs = {v.name: describe(v) for v in graph.output}
    return inputs, outputs


def _check_against_onnx(m: Manifest, model_path: Path) -> None:
    p = m.path
    try:
        graph_in, graph_out = onnx_io(model_path)
    except Exception as exc:  # any parse failure is the user's file: say which
        raise _fail(p, "engine.model", f"cannot read ONNX graph {model_path}: {exc}") from exc
    for name in graph_in:
        if name not in m.doc.inputs:
            raise _fail(p, f"inputs.{name}", "graph input not declared in the manifest")
    for name, spec in m.doc.inputs.items():
        if name not in graph_in:
            raise _fail(p, f"inputs.{name}", f"no such graph input (has {sorted(graph_in)})")
        dtype, dims = graph_in[name]
        if dtype != spec.dtype:
            raise _fail(p, f"inputs.{name}.dtype", f"{spec.dtype} but the graph has {dtype}")
        _check_dims(p, f"inputs.{name}.shape", spec.shape, dims, m.batch_sizes)
    if m.doc.detections is not None:
        _check_detection_graph(m, graph_out)
    for name, out in m.doc.outputs.items():
        if name not in graph_out:
            raise _fail(p, f"outputs.{name}", f"no such graph output (has {sorted(graph_out)})")
        dims = graph_out[name][1]
        if out.labels and dims and isinstance(dims[-1], int) and dims[-1] != len(out.labels):
            raise _fail(
                p, f"outputs.{name}.labels", f"{len(out.labels)} labels but dim is {dims[-1]}"
            )


def _check_detection_graph(m: Manifest, graph_out: dict[str, Any]) -> None:
    det, p = m.doc.detections, m.path
    assert det is not None
    for name in det.graph_outputs():
        if name not in graph_out:
            have = sorted(graph_out)
            raise _fail(p, f"outputs.{DETECTIONS}", f"no graph output {name!r} (has {have})")
    if det.layout == "dfl" and det.output is not None:
        _check_dfl_head(m, graph_out[det.output][1])
    if det.layout.startswith("yolo") and det.output is not None:
        dims = graph_out[det.output][1]
        width = (5 if det.layout == "yolo_obj" else 4) + len(det.class_names)
        known = [d for d in dims[1:] if isinstance(d, int)]
        if len(dims) == 3 and len(known) == 2 and width not in known:
            raise _fail(
                p,
                f"outputs.{DETECTIONS}.class_names",
                f"{len(det.class_names)} classes but the head {det.output} is {tuple(known)}",
            )


def _check_dfl_head(m: Manifest, dims: tuple[Any, ...]) -> None:
    """A dfl head `[B, N, C + 4 (R + 1)]` must match the classes, reg_max, strides and input."""
    det, p = m.doc.detections, m.path
    assert det is not None
    video = m.window_spec().video
    assert video is not None  # _check_detections ran first
    rows = len(dfl_centres(video.width, video.height, det.strides, det.center_offset)[0])
    want = (rows, len(det.class_names) + 4 * (det.reg_max + 1))
    for axis, (w, h) in enumerate(zip(want, dims[1:], strict=False), start=1):
        if len(dims) == 3 and isinstance(h, int) and h != w:
            raise _fail(
                p,
                f"outputs.{DETECTIONS}",
                f"a dfl head for {len(det.class_names)} classes, reg_max {det.reg_max} and "
                f"strides {list(det.strides)} on {video.width}x{video.height} is "
                f"[B, {want[0]}, {want[1]}]; {det.output} has {dims[axis]} on axis {axis}",
            )


def _check_dims(
    p: Path, field: str, want: tuple[Dim, ...], have: tuple[Any, ...], sizes: tuple[int, ...]
) -> None:
    if have and len(have) != len(want):
        raise _fail(p, field, f"rank {len(want)} but the graph's input has rank {len(have)}")
    for axis, (w, h) in enumerate(zip(want, have, strict=False)):
        if not isinstance(h, int):
            continue  # symbolic or unknown in the graph: anything fits
        if w == BATCH and sizes != (h,) * len(sizes):
            raise _fail(p, field, f"the graph fixes axis {axis} to {h}: batch_sizes must be [{h}]")
        if isinstance(w, int) and w != h:
            raise _fail(p, field, f"axis {axis} is {w} but the graph has {h}")
