"""torchvision detection models as engines: the module the ONNX export and the torch backend run.

`TorchvisionDetector` takes the engine's video input (uint8 `[1, 1, H, W, 3]`, the window's last
frame, already resized by the service to H × W) and returns `boxes` `[1, N, 4]` (corners in
fractions of the frame), `scores` `[1, N]` and `labels` `[1, N]` (indices into the model's
category list, 0 being the background), after the model's own pre-processing (resize,
normalisation) and post-processing (score threshold, per-class NMS, best `detections_per_img`).

`load_torchvision()` makes `import torchvision` work with this project's CPU build of torch.
torchvision's Linux wheels on PyPI are CUDA builds: their compiled operators link against torch's
CUDA libraries and do not load here, and without them `import torchvision` fails. Where they do
not load, the two operators the detection models use are registered from Python first:
`torchvision::nms` (greedy NMS, the same order and ties as the compiled one) and
`torchvision::roi_align` (average RoIAlign, transcribed from the compiled CPU kernel). Tracing
records them as operators, so the ONNX export maps them to `NonMaxSuppression` and `RoiAlign`
with torchvision's own symbolic functions. Where torchvision is not installed in the
environment, it is looked for in `$SCENESTREAM_TORCHVISION_PATH` or the checkout's
`.cache/torchvision` (`make venv` puts the wheel there with `pip install --target`, outside the
environment, so that packages probing for torchvision, such as transformers, never import the
CUDA build).

`load_for_engine` is the `torch_factory` of imported torchvision engines: it rebuilds the model
from `torchvision.json` (architecture, classes, thresholds) and `weights.pt` in the engine
directory, so that `engines verify` compares torch with ONNX Runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SPEC_FILE = "torchvision.json"
WEIGHTS_FILE = "weights.pt"
CACHE_DIR = Path(__file__).resolve().parents[3] / ".cache" / "torchvision"
PATH_VARIABLE = "SCENESTREAM_TORCHVISION_PATH"

_OPS: Any = None  # the Python operator library, while registered


def torchvision_available() -> bool:
    """Whether `load_torchvision` can find torchvision (without importing it)."""
    if importlib.util.find_spec("torchvision") is not None:
        return True
    places = (os.environ.get(PATH_VARIABLE), str(CACHE_DIR))
    return any(p and (Path(p) / "torchvision" / "__init__.py").is_file() for p in places)


def load_torchvision() -> Any:
    """`import torchvision`, with its operators from Python where the compiled ones do not load
    (see the module docstring). Raises ImportError when torchvision is nowhere to be found."""
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "models"):
        return sys.modules["torchvision"]
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        for place in (os.environ.get(PATH_VARIABLE), str(CACHE_DIR)):
            if place and (Path(place) / "torchvision" / "__init__.py").is_file():
                sys.path.append(place)
                spec = importlib.util.find_spec("torchvision")
                break
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"torchvision is not installed (pip install torchvision matching torch "
            f"{torch.__version__.split('+')[0]}, or `make venv`, which puts it in {CACHE_DIR})"
        )
    compiled = _load_compiled(Path(next(iter(spec.submodule_search_locations))))
    if not compiled:
        _define_ops()
    import torchvision

    if not compiled:
        _use_python_ops(torchvision)
    return torchvision


def _load_compiled(package: Path) -> bool:
    """Whether torchvision's compiled operators load against this torch."""
    found = sorted(package.glob("_C.*so")) + sorted(package.glob("_C.*pyd"))
    if not found:
        return False
    try:
        ops: Any = torch.ops  # untyped in torch's stubs
        ops.load_library(str(found[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _define_ops() -> None:
    global _OPS
    if _OPS is not None:
        return
    library: Any = torch.library  # untyped in torch's stubs
    lib = library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define(
        "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
    )
    lib.impl("nms", nms_reference, "CPU")
    _OPS = lib


def _use_python_ops(torchvision: Any) -> None:
    """After the import: the ops reported present (the models check before calling them), so
    that `roi_align` calls the operator (`roi_align_reference`) rather than torchvision's own
    pure-torch fallback, which differs from its compiled kernel (and from ONNX `RoiAlign`) on
    samples past the feature map's far edge."""
    roi: Any = importlib.import_module("torchvision.ops.roi_align")
    _OPS.impl("roi_align", roi_align_reference, "CPU")
    torchvision.extension._has_ops = _has_ops
    roi._has_ops = _has_ops


def _has_ops() -> bool:  # a named function: TorchScript compiles callers of it while tracing
    return True


def nms_reference(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: indices of the kept boxes (`xyxy`), best score first; a box goes when its IoU
    with a kept, better one exceeds `iou_threshold` (torchvision's semantics). Memory linear in
    the number of boxes (a random model hands tens of thousands to one call)."""
    n = int(dets.shape[0])
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    order = torch.argsort(scores.detach(), descending=True, stable=True)
    b = dets.detach()[order].double().cpu().numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    alive = np.ones(n, dtype=bool)
    keep: list[int] = []
    for i in range(n):
        if not alive[i]:
            continue
        keep.append(i)
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        if rest.size == 0:
            break
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        alive[rest[iou > iou_threshold]] = False
    return order[torch.tensor(keep, dtype=torch.long)].to(dets.device)


def roi_align_reference(
    features: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """RoIAlign (average) as torchvision's compiled CPU kernel computes it: `rois` `[K, 5]`
    (batch index, corners in input pixels) → `[K, C, pooled_height, pooled_width]`. Each bin
    averages a grid of bilinear samples; a sample beyond one pixel outside the map counts as 0,
    one in the last row or column takes that row or column."""
    n_rois = int(rois.shape[0])
    _, channels, height, width = features.shape
    out = features.new_zeros((n_rois, channels, pooled_height, pooled_width))
    offset = 0.5 if aligned else 0.0
    for k in range(n_rois):
        b, x1, y1, x2, y2 = (float(v) for v in rois[k])
        sx, sy = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        rw, rh = x2 * spatial_scale - offset - sx, y2 * spatial_scale - offset - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / pooled_width, rh / pooled_height
        gh = sampling_ratio if sampling_ratio > 0 else max(1, math.ceil(rh / pooled_height))
        gw = sampling_ratio if sampling_ratio > 0 else max(1, math.ceil(rw / pooled_width))
        ys = _samples(sy, bh, pooled_height, gh)  # [PH * gh]
        xs = _samples(sx, bw, pooled_width, gw)  # [PW * gw]
        ylo, yhi, ly, yok = _corners(ys, height)
        xlo, xhi, lx, xok = _corners(xs, width)
        f = features[int(b)]  # [C, H, W]
        hy, hx = 1.0 - ly, 1.0 - lx
        val = (
            f[:, ylo][:, :, xlo] * (hy[:, None] * hx[None, :])
            + f[:, ylo][:, :, xhi] * (hy[:, None] * lx[None, :])
            + f[:, yhi][:, :, xlo] * (ly[:, None] * hx[None, :])
            + f[:, yhi][:, :, xhi] * (ly[:, None] * lx[None, :])
        ) * (yok[:, None] & xok[None, :])  # [C, PH * gh, PW * gw]
        out[k] = val.reshape(channels, pooled_height, gh, pooled_width, gw).mean(dim=(2, 4))
    return out


def _samples(start: float, bin_size: float, bins: int, grid: int) -> torch.Tensor:
    """Sample positions along one axis: `grid` per bin, evenly inside each bin."""
    steps = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    per_bin = torch.arange(bins, dtype=torch.float64)[:, None] + steps[None, :]
    return (start + per_bin * bin_size).reshape(-1)


def _corners(
    pos: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Low and high neighbours, the weight of the high one, and whether the sample counts."""
    ok = (pos >= -1.0) & (pos <= size)
    p = pos.clamp(min=0.0)
    lo = p.floor().long()
    edge = lo >= size - 1
    lo = torch.where(edge, torch.full_like(lo, size - 1), lo)
    hi = torch.where(edge, lo, lo + 1)
    p = torch.where(edge, lo.double(), p)
    return lo, hi, (p - lo).float(), ok


class TorchvisionDetector(nn.Module):
    """A torchvision detection model on the engine's video input (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frame = video[0, -1]  # [H, W, 3] uint8: the window's last frame
        height, width = frame.shape[0], frame.shape[1]
        image = frame.permute(2, 0, 1).float() / 255.0
        out = self.model([image])[0]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        boxes = out["boxes"] / scale
        return boxes[None], out["scores"][None], out["labels"][None]


def build_model(arch: str, num_classes: int, options: dict[str, Any] | None = None) -> nn.Module:
    """A torchvision detection model, randomly initialised (no download), in eval mode."""
    tv = load_torchvision()
    builder = getattr(tv.models.detection, arch)
    model: nn.Module = builder(
        weights=None, weights_backbone=None, num_classes=num_classes, **(options or {})
    )
    return model.eval()


def load_for_engine(engine_dir: Path | str) -> nn.Module:
    """The `torch_factory` of imported torchvision engines (see the module docstring)."""
    root = Path(engine_dir)
    spec = json.loads((root / SPEC_FILE).read_text())
    model = build_model(spec["arch"], len(spec["categories"]), spec.get("options"))
    state = torch.load(root / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return TorchvisionDetector(model.eval()).eval()
