"""Import an object detector from an ONNX file.

Accepted graphs take one float image `[B, 3, H, W]` (RGB, 0..1, a fixed H and W) and emit one of:

- a raw YOLO head `[B, 4 + C, N]` (YOLOv8/v9/v11 and YOLOv5u exports): centre/size boxes in
  pixels, then per-class scores (sigmoid already applied); NMS runs in scenestream;
- a raw head with objectness `[B, N, 5 + C]` (YOLOv5/v7 exports): box, objectness, classes;
- end-to-end rows `[B, N, 6]` (YOLOv10, YOLO26, exports with `nms=True`): corner boxes in
  pixels, score, class.

Class names come from the file's `names` metadata (Ultralytics writes it) or `--names FILE`
(one name per line, or a JSON list). The imported graph is the original with a small prefix:
it takes the engine's video input (uint8 `[B, 1, H, W, 3]`, the last frame of the window, which
the service has already resized to H × W), converts it to float `[B, 3, H, W]` in 0..1 and feeds
the original input. Boxes therefore come back relative to the frame the service saw. The
prefix is checked against the original graph on the same image (`parity_max_abs_diff`).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import UserError
from engines.lab.importers import ImportReport
from engines.labelmaps import load_label_map
from engines.runtime.manifest import MANIFEST_FILE, load_manifest

VIDEO = "video"


def import_detector(
    source: Path,
    out: Path,
    *,
    names_file: Path | None = None,
    name: str | None = None,
    fps: float = 5.0,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
) -> ImportReport:
    """Write an engine directory for the detector at `source` (see the module docstring)."""
    import onnx

    if not source.is_file():
        raise UserError(f"{source}: no such ONNX file")
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # protobuf errors: the user's file is not an ONNX model
        raise UserError(f"{source}: not an ONNX model ({exc})") from exc
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in inits]
    if len(inputs) != 1 or len(graph.output) < 1:
        raise UserError(
            f"{source}: unsupported detector: expected one image input, got {len(inputs)}"
        )
    image = inputs[0]
    dims = _dims(image)
    if (
        len(dims) != 4
        or dims[1] != 3
        or not isinstance(dims[2], int)
        or not isinstance(dims[3], int)
    ):
        raise UserError(
            f"{source}: unsupported detector: the input must be [B, 3, H, W] with a fixed H "
            f"and W; got {dims}"
        )
    height, width = int(dims[2]), int(dims[3])
    names = _names(source, model, names_file)
    layout = _layout(source, graph.output[0], len(names))
    wrapped = _wrap(model, image.name, height, width)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(wrapped, str(out / "model.onnx"))
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in names))
    engine = name or _slug(source.stem)
    batch = [int(dims[0])] if isinstance(dims[0], int) else [1, 2, 4, 8]
    coco = load_label_map("coco")
    uses_coco = sum(n in coco for n in names) >= min(len(names), 5)
    (out / MANIFEST_FILE).write_text(
        _manifest(engine, source.name, layout, graph.output[0].name, names, height, width,
                  batch, fps, score_threshold, iou_threshold, uses_coco)
    )  # fmt: skip
    manifest = load_manifest(out)  # the written engine must load like any other
    diff = _parity(source, out / "model.onnx", image.name, height, width)
    return ImportReport(
        engine_dir=out,
        kind="detector",
        labels=manifest.labels,
        classes=len(names),
        parity_max_abs_diff=diff,
        details={
            "layout": layout,
            "input": [height, width],
            "label_map": "coco" if uses_coco else None,
        },
    )


def _dims(value: Any) -> list[Any]:
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
        for d in value.type.tensor_type.shape.dim
    ]


def _layout(source: Path, output: Any, classes: int) -> str:
    """Which head the output is, from its shape and the number of class names."""
    dims = _dims(output)
    if len(dims) == 3:
        if dims[1] == 4 + classes or dims[2] == 4 + classes:
            return "yolo"  # [B, 4 + C, anchors] (or transposed)
        if dims[2] == 5 + classes:
            return "yolo_obj"  # [B, anchors, 5 + C]
        if dims[2] == 6:
            return "end2end"  # [B, N, (box, score, class)]
    raise UserError(
        f"{source}: unsupported detector output {output.name} {dims} for {classes} classes "
        "(do the class names match the model?): expected a raw YOLO head [B, 4 + C, N] or "
        "[B, N, 5 + C], or end-to-end rows [B, N, 6]"
    )


def _names(source: Path, model: Any, names_file: Path | None) -> list[str]:
    if names_file is not None:
        if not names_file.is_file():
            raise UserError(f"{names_file}: no such class-names file")
        text = names_file.read_text()
        if text.lstrip().startswith("["):
            names = [str(n) for n in json.loads(text)]
        else:
            names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        meta = {p.key: p.value for p in model.metadata_props}
        if "names" not in meta:
            raise UserError(f"{source}: the model has no 'names' metadata: give --names FILE")
        try:
            parsed = ast.literal_eval(meta["names"])
        except (ValueError, SyntaxError) as exc:
            raise UserError(f"{source}: cannot read its 'names' metadata: {exc}") from exc
        names = (
            [str(parsed[k]) for k in sorted(parsed)]
            if isinstance(parsed, dict)
            else [str(n) for n in parsed]
        )
    if not names or len(set(names)) != len(names):
        raise UserError("class names must be a non-empty list of unique names")
    return names


def _wrap(model: Any, image: str, height: int, width: int) -> Any:
    """The model with a prefix: uint8 video [B, 1, H, W, 3] → float [B, 3, H, W] in 0..1."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    video = helper.make_tensor_value_info(VIDEO, TensorProto.UINT8, ["batch", 1, height, width, 3])
    pre = "scenestream_pre_"
    consts = [
        helper.make_tensor(f"{pre}last", TensorProto.INT64, [], [-1]),
        helper.make_tensor(f"{pre}scale", TensorProto.FLOAT, [], [1.0 / 255.0]),
    ]
    nodes = [
        helper.make_node("Gather", [VIDEO, f"{pre}last"], [f"{pre}frame"], axis=1),
        helper.make_node("Cast", [f"{pre}frame"], [f"{pre}float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", [f"{pre}float", f"{pre}scale"], [f"{pre}unit"]),
        helper.make_node("Transpose", [f"{pre}unit"], [image], perm=[0, 3, 1, 2]),
    ]
    kept_inputs = [v for v in graph.input if v.name != image]
    new_graph = helper.make_graph(
        [*nodes, *graph.node],
        graph.name,
        [video, *kept_inputs],
        list(graph.output),
        initializer=[*consts, *graph.initializer],
        value_info=list(graph.value_info),
    )
    wrapped = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    wrapped.ir_version = model.ir_version
    for prop in model.metadata_props:
        wrapped.metadata_props.add(key=prop.key, value=prop.value)
    onnx.checker.check_model(wrapped)
    return wrapped


def frame_input_toml(height: int, width: int, fps: float) -> str:
    """`[window]` and `[inputs.video]` of a detector that looks at each window's last frame."""
    return f"""[window]
length_s = {1.0 / fps!r}
hop_s = {1.0 / fps!r}
labels_at = "end"

[inputs.video]
role = "video"
dtype = "uint8"
shape = ["B", 1, {height}, {width}, 3]
fps = {fps!r}
"""


def class_names_toml(names: list[str], coco: bool) -> str:
    """The detections' class names, mapped by the shipped `coco` map when they are COCO's."""
    label_map = 'label_map = "coco"\n' if coco else "keep_unmapped = true\n"
    return label_map + "class_names = [" + ", ".join(json.dumps(n) for n in names) + "]\n"


def _manifest(
    engine: str, source: str, layout: str, output: str, names: list[str], height: int,
    width: int, batch: list[int], fps: float, score: float, iou: float, coco: bool,
) -> str:  # fmt: skip
    box = "cxcywh" if layout.startswith("yolo") else "xyxy"
    return f"""# Imported by `scenestream engines import` from {source}.
# The graph takes the window's last frame (uint8, resized by the service to {width}x{height}).
[engine]
name = "{engine}"
version = "1.0.0"
description = "object detector imported from {source}"
model = "model.onnx"
batch_sizes = {batch}
budget_ms = 300
max_queue_delay_ms = 20

{frame_input_toml(height, width, fps)}
[outputs.detections]
layout = "{layout}"
output = "{output}"
box_format = "{box}"
normalized = false
score_threshold = {score!r}
iou_threshold = {iou!r}
max_detections = 100
{class_names_toml(names, coco)}"""


def _parity(source: Path, wrapped: Path, image: str, height: int, width: int) -> float:
    """Largest difference between the original graph on a preprocessed frame and the imported
    graph on the raw frame."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, 1, height, width, 3), dtype=np.uint8)
    chw = (frame[:, 0].astype(np.float32) * np.float32(1.0 / 255.0)).transpose(0, 3, 1, 2)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    a = ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(wrapped), opts, providers=["CPUExecutionProvider"])
    x = a.run(None, {image: np.ascontiguousarray(chw)})[0]
    y = b.run(None, {VIDEO: frame})[0]
    return float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return slug[:64] or "detector"
