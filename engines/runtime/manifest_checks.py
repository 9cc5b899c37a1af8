"""A manifest's rules across fields and against its ONNX graph, run once by `load_manifest`.

Each failure is a `ManifestError` naming the manifest file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.detect.decode import dfl_centres
from engines.runtime.interface import ManifestError
from engines.runtime.manifest_schema import (
    BATCH,
    DETECTIONS,
    Dim,
    InputTable,
    ManifestDoc,
)

if TYPE_CHECKING:
    from engines.runtime.manifest import Manifest

# ONNX TensorProto element types for the dtypes a manifest may name.
ONNX_DTYPES: dict[int, str] = {2: "uint8", 6: "int32", 7: "int64", 10: "float16", 1: "float32"}


def fail(manifest_path: Path, field: str, message: str) -> ManifestError:
    """A `ManifestError` naming the file and the field."""
    return ManifestError(f"{manifest_path}: {field}: {message}")


def check_consistency(m: Manifest) -> None:
    """Cross-field rules pydantic cannot express per field."""
    doc, p = m.doc, m.path
    media = {**m.inputs_with_role("video"), **m.inputs_with_role("audio")}
    if not media:
        raise fail(p, "inputs", "at least one input with role video or audio is needed")
    for role in ("video", "audio"):
        if len(m.inputs_with_role(role)) > 1:
            raise fail(p, "inputs", f"at most one input with role {role}")
    for name, spec in doc.inputs.items():
        _check_input(p, f"inputs.{name}", spec, doc)
    _check_detections(m)
    if not m.labels:
        raise fail(p, "outputs", "at least one output needs labels (or [outputs.detections])")
    if len(set(m.labels)) != len(m.labels):
        raise fail(p, "outputs", "labels must be unique across outputs")
    states = set(m.inputs_with_role("state"))
    fed: set[str] = set()
    for name, out in doc.outputs.items():
        if out.state_for is not None:
            if out.labels:
                raise fail(p, f"outputs.{name}", "a state output carries no labels")
            if out.state_for not in states:
                raise fail(p, f"outputs.{name}.state_for", f"{out.state_for!r} is no state input")
            fed.add(out.state_for)
    for name in states - fed:
        raise fail(p, f"inputs.{name}", "state input without an output declaring state_for")
    for label in doc.thresholds:
        if label not in m.labels:
            raise fail(p, f"thresholds.{label}", "not one of the engine's labels")
    _check_streaming(m)


def _check_detections(m: Manifest) -> None:
    det, p = m.doc.detections, m.path
    if det is None:
        return
    field_ = f"outputs.{DETECTIONS}"
    if not m.inputs_with_role("video"):
        raise fail(p, field_, "a detector needs a video input")
    if det.layout == "boxes":
        if det.boxes is None or det.scores is None or det.output is not None:
            raise fail(p, field_, "layout boxes names the graph outputs boxes and scores")
    elif det.output is None or det.boxes or det.scores or det.classes:
        raise fail(p, field_, f"layout {det.layout} names one graph output: output")
    if len(set(det.class_names)) != len(det.class_names):
        raise fail(p, f"{field_}.class_names", "class names must be unique")
    if det.layout == "dfl":
        if not det.strides:
            raise fail(p, f"{field_}.strides", "layout dfl needs the head's strides")
        if det.normalized or det.box_format == "cxcywh":
            raise fail(p, field_, "layout dfl yields xyxy pixel boxes (normalized = false)")
    elif det.strides:
        raise fail(p, f"{field_}.strides", "only layout dfl has strides")
    for name in det.graph_outputs():
        if name in m.doc.outputs:
            raise fail(p, field_, f"{name!r} is also declared as a score output")


def _check_input(p: Path, field: str, spec: InputTable, doc: ManifestDoc) -> None:
    if spec.shape.count(BATCH) > 1:
        raise fail(p, f"{field}.shape", 'at most one "B" axis')
    if spec.role == "constant":
        if spec.value is None or BATCH in spec.shape:
            raise fail(p, field, "a constant needs a value and no batch axis")
        return
    if spec.batch_axis is None:
        raise fail(p, f"{field}.shape", 'needs a batch axis "B"')
    if spec.role in ("video", "audio") and spec.batch_axis != 0:
        raise fail(p, f"{field}.shape", 'the batch axis "B" must come first')
    if spec.role == "video":
        if spec.dtype != "uint8" or len(spec.shape) != 5 or spec.shape[4] != 3:
            raise fail(p, field, 'video is uint8 ["B", T, H, W, 3]')
        if spec.fps is None:
            raise fail(p, f"{field}.fps", "video needs fps")
        frames = round(doc.window.length_s * spec.fps)
        if spec.shape[1] != frames:
            raise fail(p, f"{field}.shape", f"T must be length_s * fps = {frames}")
    if spec.role == "audio":
        if spec.dtype != "float32" or len(spec.shape) != 2:
            raise fail(p, field, 'audio is float32 ["B", S]')
        if spec.sample_rate is None:
            raise fail(p, f"{field}.sample_rate", "audio needs sample_rate")
        samples = round(doc.window.length_s * spec.sample_rate)
        if doc.streaming is None and spec.shape[1] != samples:
            raise fail(p, f"{field}.shape", f"S must be length_s * sample_rate = {samples}")


def _check_streaming(m: Manifest) -> None:
    st, p = m.doc.streaming, m.path
    if st is None:
        return
    audio = m.inputs_with_role("audio")
    if not audio or m.inputs_with_role("video"):
        raise fail(p, "streaming", "streaming engines take audio only")
    spec = next(iter(audio.values()))
    if spec.shape[1] != st.chunk + st.context:
        raise fail(p, "streaming", "the audio input's S must be chunk + context")
    samples = round(m.doc.window.length_s * int(spec.sample_rate or 0))
    if samples % st.chunk:
        raise fail(p, "window.length_s", f"{samples} samples is not a multiple of chunk")
    # Carried state assumes windows tile the stream: an overlap would feed audio twice.
    if abs(m.doc.window.hop_s - m.doc.window.length_s) > 1e-9:
        raise fail(p, "window.hop_s", "streaming engines need hop_s == length_s")


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


def check_against_onnx(m: Manifest, model_path: Path) -> None:
    p = m.path
    try:
        graph_in, graph_out = onnx_io(model_path)
    except Exception as exc:  # any parse failure is the user's file: say which
        raise fail(p, "engine.model", f"cannot read ONNX graph {model_path}: {exc}") from exc
    for name in graph_in:
        if name not in m.doc.inputs:
            raise fail(p, f"inputs.{name}", "graph input not declared in the manifest")
    for name, spec in m.doc.inputs.items():
        if name not in graph_in:
            raise fail(p, f"inputs.{name}", f"no such graph input (has {sorted(graph_in)})")
        dtype, dims = graph_in[name]
        if dtype != spec.dtype:
            raise fail(p, f"inputs.{name}.dtype", f"{spec.dtype} but the graph has {dtype}")
        _check_dims(p, f"inputs.{name}.shape", spec.shape, dims, m.batch_sizes)
    if m.doc.detections is not None:
        _check_detection_graph(m, graph_out)
    for name, out in m.doc.outputs.items():
        if name not in graph_out:
            raise fail(p, f"outputs.{name}", f"no such graph output (has {sorted(graph_out)})")
        dims = graph_out[name][1]
        if out.labels and dims and isinstance(dims[-1], int) and dims[-1] != len(out.labels):
            raise fail(
                p, f"outputs.{name}.labels", f"{len(out.labels)} labels but dim is {dims[-1]}"
            )


def _check_detection_graph(m: Manifest, graph_out: dict[str, Any]) -> None:
    det, p = m.doc.detections, m.path
    assert det is not None
    for name in det.graph_outputs():
        if name not in graph_out:
            have = sorted(graph_out)
            raise fail(p, f"outputs.{DETECTIONS}", f"no graph output {name!r} (has {have})")
    if det.layout == "dfl" and det.output is not None:
        _check_dfl_head(m, graph_out[det.output][1])
    if det.layout.startswith("yolo") and det.output is not None:
        dims = graph_out[det.output][1]
        width = (5 if det.layout == "yolo_obj" else 4) + len(det.class_names)
        known = [d for d in dims[1:] if isinstance(d, int)]
        if len(dims) == 3 and len(known) == 2 and width not in known:
            raise fail(
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
            raise fail(
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
        raise fail(p, field, f"rank {len(want)} but the graph's input has rank {len(have)}")
    for axis, (w, h) in enumerate(zip(want, have, strict=False)):
        if not isinstance(h, int):
            continue  # symbolic or unknown in the graph: anything fits
        if w == BATCH and sizes != (h,) * len(sizes):
            raise fail(p, field, f"the graph fixes axis {axis} to {h}: batch_sizes must be [{h}]")
        if isinstance(w, int) and w != h:
            raise fail(p, field, f"axis {axis} is {w} but the graph has {h}")
