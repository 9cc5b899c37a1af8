"""Import a torchvision detection model: `scenestream engines import torchvision:ARCH`.

ARCH is one of torchvision's detection builders (`ssdlite320_mobilenet_v3_large`,
`fasterrcnn_mobilenet_v3_large_320_fpn`, `retinanet_resnet50_fpn`, ...: `SUPPORTED`). Weights:

- `--weights default`: torchvision's pretrained COCO weights, downloaded by torchvision (needs
  network access; cached in torch's hub directory);
- `--weights FILE`: a local state dict of the whole detector (`torch.save(model.state_dict())`),
  COCO-trained unless `--num-classes`/`--names` say otherwise;
- `--weights none`: randomly initialised, with batch-norm statistics set on synthetic frames so
  that a random model's scores vary (tests and cost measurements).

The model runs with its own pre- and post-processing (`engines/runtime/nets/tv_detection.py`) and
is exported to ONNX (TorchScript exporter, opset 17: torchvision's NMS and RoIAlign map to ONNX
operators) with outputs `boxes` (corners, fractions of the frame), `scores` and `labels`, batch 1.
The engine directory also holds `weights.pt` and `torchvision.json`, from which the torch backend
rebuilds the model (`engines verify`). Class names: COCO's (torchvision's 91-entry category list,
`N/A` gaps numbered to keep names unique) for COCO weights, else `--names` or `class<i>`.
"""

from __future__ import annotations

import json
import re
import urllib.error
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import UserError
from engines.lab.importers import ImportReport
from engines.lab.importers.detector import class_names_toml, frame_input_toml
from engines.labelmaps import load_label_map
from engines.runtime.manifest import MANIFEST_FILE, Manifest, load_manifest
from engines.runtime.parity import detection_diff

PREFIX = "torchvision:"
ENGINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")  # the manifest's engine.name
OUTPUTS = ("boxes", "scores", "labels")
COCO_CLASSES = 91  # torchvision's COCO category list, background and gaps included
# Builders exported and checked here; other torchvision detection builders may work too.
SUPPORTED = (
    "ssdlite320_mobilenet_v3_large",
    "ssd300_vgg16",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
)
SQUARE = {"ssdlite320_mobilenet_v3_large": 320, "ssd300_vgg16": 300,
          "fasterrcnn_mobilenet_v3_large_320_fpn": 320}  # fmt: skip
DEFAULT_SIZE = (640, 480)  # width, height of the frame the service delivers otherwise


def is_torchvision_source(source: str) -> bool:
    """Whether `source` names a torchvision model (`torchvision:ARCH`)."""
    return source.startswith(PREFIX)


def import_torchvision_detector(
    source: str,
    out: Path,
    *,
    weights: str = "default",
    num_classes: int | None = None,
    names_file: Path | None = None,
    size: tuple[int, int] | None = None,
    name: str | None = None,
    fps: float = 5.0,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
) -> ImportReport:
    """Write an engine directory for `torchvision:ARCH` (see the module docstring)."""
    arch = source.removeprefix(PREFIX)
    engine = name or arch.replace("_", "-")
    if not ENGINE_NAME.fullmatch(engine):
        raise UserError(f"engine name {engine!r}: lowercase letters, digits and '-' only")
    if arch not in SUPPORTED:
        raise UserError(
            f"{source}: unsupported torchvision detector {arch!r} (supported: "
            f"{', '.join(SUPPORTED)})"
        )
    try:
        import torch

        from engines.runtime.nets import tv_detection as tvd

        tv = tvd.load_torchvision()
    except ImportError as exc:
        raise UserError(f"{source}: {exc}") from exc
    state, coco = _weights(tv, arch, weights)
    names = _names(tv, arch, names_file, num_classes, coco)
    if size is None:
        size = (SQUARE[arch], SQUARE[arch]) if arch in SQUARE else DEFAULT_SIZE
    width, height = size
    model = tvd.build_model(arch, len(names))
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise UserError(
                f"{source}: the weights do not fit {arch} with {len(names)} classes "
                f"(--num-classes/--names?): {first}"
            ) from exc
    else:
        _calibrate(torch, model, height, width)
    wrapper = tvd.TorchvisionDetector(model).eval()
    out.mkdir(parents=True, exist_ok=True)
    _export(torch, wrapper, out / "model.onnx", height, width)
    torch.save(model.state_dict(), out / tvd.WEIGHTS_FILE)
    spec = {"arch": arch, "categories": names, "weights": weights}
    (out / tvd.SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in names))
    coco_map = load_label_map("coco")
    uses_coco = sum(n in coco_map for n in names) >= min(len(names) - 1, 5)
    text = _manifest(
        engine, arch, weights, names, height, width, fps, score_threshold, iou_threshold, uses_coco
    )
    (out / MANIFEST_FILE).write_text(text)
    manifest = load_manifest(out)  # the written engine must load like any other
    diff, detections = _parity(torch, wrapper, manifest, height, width)
    return ImportReport(
        engine_dir=out,
        kind="detector",
        labels=manifest.labels,
        classes=len(names),
        parity_max_abs_diff=diff,
        details={
            "architecture": arch,
            "weights": weights,
            "input": [height, width],
            "label_map": "coco" if uses_coco else None,
            "parity_detections": detections,
        },
    )


def _weights(tv: Any, arch: str, weights: str) -> tuple[dict[str, Any] | None, bool]:
    """The state dict to load (None: random) and whether it is COCO-trained."""
    import torch

    if weights == "none":
        return None, False
    if weights == "default":
        enum = tv.models.get_model_weights(arch)
        try:
            state = enum.DEFAULT.get_state_dict(progress=False, check_hash=True)
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(
                f"torchvision:{arch}: cannot download its weights from {enum.DEFAULT.url} (no "
                f"network? give a local state dict with --weights FILE): {exc}"
            ) from exc
        except RuntimeError as exc:  # a truncated or corrupted download (hash check)
            first = str(exc).splitlines()[0]
            raise UserError(f"torchvision:{arch}: bad download of its weights: {first}") from exc
        return state, True
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file (a state dict saved with torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: the user's file is not a state dict
        raise UserError(f"{path}: not a torch state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state dict (got {type(state).__name__})")
    return state, True


def _names(
    tv: Any, arch: str, names_file: Path | None, num_classes: int | None, coco: bool
) -> list[str]:
    """Category names, index = the model's label (0: background)."""
    if names_file is not None:
        if not names_file.is_file():
            raise UserError(f"{names_file}: no such class-names file")
        text = names_file.read_text()
        if text.lstrip().startswith("["):
            names = [str(n) for n in json.loads(text)]
        else:
            names = [line.strip() for line in text.splitlines() if line.strip()]
    elif num_classes is None or (coco and num_classes == COCO_CLASSES):
        enum = tv.models.get_model_weights(arch)
        names = [str(n) for n in enum.DEFAULT.meta["categories"]]
    else:
        names = ["__background__", *(f"class{i}" for i in range(1, num_classes))]
    if num_classes is not None and len(names) != num_classes:
        raise UserError(f"{len(names)} class names for --num-classes {num_classes}")
    if len(names) < 2:
        raise UserError("a detector needs the background and at least one class")
    seen: dict[str, int] = {}
    unique = []
    for i, n in enumerate(names):  # COCO's list repeats "N/A" for its unused ids
        unique.append(n if n not in seen else f"{n} {i}")
        seen[n] = i
    if len(set(unique)) != len(unique):
        raise UserError("class names must be unique")
    return unique


def _calibrate(torch: Any, model: Any, height: int, width: int) -> None:
    """Batch-norm statistics of a random model from synthetic frames (fixed seed), so that its
    activations, and so its scores, vary from anchor to anchor instead of collapsing."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, height, width, generator=generator)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the calibration batch
        m.train()
    with torch.no_grad():
        model.backbone(images)
    for m in norms:
        m.eval()


def _export(torch: Any, wrapper: Any, path: Path, height: int, width: int) -> None:
    frame = torch.zeros(1, 1, height, width, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (frame,), str(path), input_names=["video"], output_names=list(OUTPUTS),
            opset_version=17, dynamo=False,
        )  # fmt: skip


def test_frame(height: int, width: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A fixed synthetic street-like frame (gradients and two blocks) for the parity check."""
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    img = np.stack([xx, yy, np.sin(xx * 7) * 0.5 + 0.5], axis=-1)
    img[height // 4 : height // 2, width // 4 : width // 2] = (1.0, 0.2, 0.1)
    img[height // 2 : 3 * height // 4, width // 2 : 7 * width // 8] = (0.1, 0.3, 0.9)
    return (img * 255).astype(np.uint8)[None, None]


def _parity(
    torch: Any, wrapper: Any, manifest: Manifest, height: int, width: int
) -> tuple[float, int]:
    """Largest difference between torch and ONNX Runtime on a test frame over matched
    detections (`engines.runtime.parity.detection_diff`: inf when they keep different
    numbers of detections), and how many detections ONNX Runtime kept."""
    import onnxruntime as ort

    frame = test_frame(height, width)
    with torch.no_grad():
        expected = dict(
            zip(OUTPUTS, (t.numpy() for t in wrapper(torch.from_numpy(frame))), strict=True)
        )
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    model = str(manifest.dir / "model.onnx")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"video": frame}), strict=True))
    diff = detection_diff(expected, got, manifest)
    assert diff is not None  # a boxes layout with one score per box
    return diff, int(np.asarray(got["scores"]).shape[-1])


def _manifest(
    engine: str, arch: str, weights: str, names: list[str], height: int, width: int, fps: float,
    score: float, iou: float, coco: bool,
) -> str:  # fmt: skip
    trained = {"default": "torchvision's COCO weights", "none": "random weights (untrained)"}
    return f"""# Imported by `scenestream engines import torchvision:{arch}`.
# The graph takes the window's last frame (uint8, resized by the service to {width}x{height});
# the model's own transform resizes and normalises it, and its NMS runs in the graph.
[engine]
name = "{engine}"
version = "1.0.0"
description = "torchvision {arch}, {trained.get(weights, "weights from " + Path(weights).name)}"
model = "model.onnx"
torch_factory = "engines.runtime.nets.tv_detection:load_for_engine"
batch_sizes = [1]
budget_ms = 500
max_queue_delay_ms = 20

{frame_input_toml(height, width, fps)}
[outputs.detections]
layout = "boxes"
boxes = "boxes"
scores = "scores"
classes = "labels"
box_format = "xyxy"
normalized = true
nms = false
score_threshold = {score!r}
iou_threshold = {iou!r}
max_detections = 100
{class_names_toml(names, coco)}"""
