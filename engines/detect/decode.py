"""Detector outputs → `Detection`s for one frame.

Four output layouts, the ones standard exporters produce:

- `boxes`: separate tensors per image: boxes `[N, 4]`, scores `[N]` (or `[N, C]`, one score per
  class: the best class wins), optionally classes `[N]`;
- `end2end`: one tensor `[N, 6]` of (box, score, class), NMS already in the graph (YOLOv10,
  YOLO exports with `nms=True`, RT-DETR style post-processed outputs);
- `yolo`: the raw head `[4 + C, N]` (or `[N, 4 + C]`) of box (centre/size) then per-class
  scores, as YOLOv5u/v8/v11 exports emit; NMS runs here;
- `yolo_obj`: the raw head with an objectness column, `[N, 5 + C]` rows of box, objectness, then
  per-class scores (YOLOv5/v7 exports); a detection's score is objectness × class score.
- `dfl`: an anchor-free head with distribution-focal boxes (NanoDet, GFL), `[N, C + 4 (R + 1)]`
  rows of per-class scores, then for each side of the box (left, top, right, bottom) R + 1 logits
  over the distances 0..R in units of the row's stride. A side's distance is the softmax
  expectation over its bins times the stride, measured from the row's grid-cell centre
  (`(x + center_offset) * stride`). Rows run level by level in `strides` order, row-major over a
  `ceil(H / stride)` × `ceil(W / stride)` grid of the input frame (NanoDet's export order).

Boxes leave as `xyxy` fractions of the frame. Detections under `score_threshold` are dropped,
then class-aware NMS (unless the graph did it), then the best `max_detections` remain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from engines.detect.boxes import BoxFormat, as_boxes, normalise, to_xyxy
from engines.detect.nms import batched_nms

Layout = Literal["boxes", "end2end", "yolo", "yolo_obj", "dfl"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Detection:
    """One object in one frame: an `xyxy` box in fractions of the frame, its score, its class
    (index and name) and the scene label it maps to (None when the label map has none)."""

    box: Box
    score: float
    class_id: int
    class_name: str
    label: str | None


@dataclass(frozen=True, slots=True)
class DecodeSpec:
    """How to read one detector's outputs (built from the manifest's `[outputs.detections]`)."""

    layout: Layout
    class_names: tuple[str, ...]
    box_format: BoxFormat = "xyxy"
    normalized: bool = True
    width: float = 1.0  # the frame the pixel boxes refer to (the video input's size)
    height: float = 1.0
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100
    nms: bool = True
    activation: Literal["none", "sigmoid"] = "none"
    labels: Mapping[str, str | None] = field(default_factory=dict)  # class name -> scene label
    keep_unmapped: bool = True  # keep classes the label map does not name (label None)
    strides: tuple[int, ...] = ()  # dfl: the head's levels
    reg_max: int = 7  # dfl: the largest distance bin (R); each side has R + 1 logits
    center_offset: float = 0.5  # dfl: grid-cell centre, in cells (NanoDet 0.5, NanoDet-Plus 0)


def decode_frame(spec: DecodeSpec, outputs: Sequence[npt.NDArray[np.generic]]) -> list[Detection]:
    """One frame's detections from its slice of the outputs: `[boxes, scores(, classes)]` for
    the `boxes` layout, `[tensor]` for `end2end` and `yolo`."""
    if spec.layout == "boxes":
        boxes = as_boxes(outputs[0])
        scores = np.asarray(outputs[1], dtype=np.float32)
        if scores.ndim == 2:
            classes = np.argmax(scores, axis=1)
            scores = scores[np.arange(len(scores)), classes]
        elif len(outputs) > 2:
            classes = np.asarray(outputs[2]).reshape(-1).astype(np.int64)
        else:
            classes = np.zeros(len(scores), dtype=np.int64)
        return _finish(spec, boxes, _act(spec, scores.reshape(-1)), classes, spec.nms)
    arr = np.asarray(outputs[0], dtype=np.float32)
    if spec.layout == "end2end":
        if arr.ndim != 2 or arr.shape[1] < 6:
            raise ValueError(f"end2end output must be [N, 6], got {list(arr.shape)}")
        classes = arr[:, 5].round().astype(np.int64)
        return _finish(spec, arr[:, :4], _act(spec, arr[:, 4]), classes, spec.nms)
    if spec.layout == "dfl":
        return _finish_dfl(spec, arr)
    return _finish_yolo(spec, arr)


def dfl_centres(
    width: float, height: float, strides: Sequence[int], offset: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Grid-cell centres `[N, 2]` (x, y, pixels) and each row's stride `[N]`, level by level,
    row-major over a `ceil(height / s)` × `ceil(width / s)` grid per stride `s`."""
    centres, row_strides = [], []
    for s in strides:
        rows, cols = int(np.ceil(height / s)), int(np.ceil(width / s))
        y, x = np.divmod(np.arange(rows * cols), cols)
        centres.append(np.stack([(x + offset) * s, (y + offset) * s], axis=1))
        row_strides.append(np.full(rows * cols, s))
    if not centres:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    return (
        np.concatenate(centres).astype(np.float32),
        np.concatenate(row_strides).astype(np.float32),
    )


def dfl_distances(logits: npt.ArrayLike, reg_max: int) -> npt.NDArray[np.float32]:
    """`[N, 4 (R + 1)]` bin logits → `[N, 4]` distances in bins: per side, the softmax
    expectation over 0..R."""
    x = np.asarray(logits, dtype=np.float64)
    bins = reg_max + 1
    if x.ndim != 2 or x.shape[1] != 4 * bins:
        raise ValueError(f"distribution logits must be [N, {4 * bins}], got {list(x.shape)}")
    x = x.reshape(len(x), 4, bins)
    p = np.exp(x - x.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    out: npt.NDArray[np.float32] = (p @ np.arange(bins, dtype=np.float64)).astype(np.float32)
    return out


def _finish_dfl(spec: DecodeSpec, arr: npt.NDArray[np.float32]) -> list[Detection]:
    classes_n = len(spec.class_names)
    width = classes_n + 4 * (spec.reg_max + 1)
    centres, strides = dfl_centres(spec.width, spec.height, spec.strides, spec.center_offset)
    if arr.ndim != 2 or arr.shape != (len(centres), width):
        raise ValueError(
            f"dfl head must be [{len(centres)}, {width}] for strides {list(spec.strides)} on a "
            f"{spec.width:g}x{spec.height:g} input, got {list(arr.shape)}"
        )
    cls_scores = _act(spec, arr[:, :classes_n])
    classes = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(len(arr)), classes]
    keep = scores >= spec.score_threshold  # decode only the boxes that can survive
    dist = dfl_distances(arr[keep, classes_n:], spec.reg_max) * strides[keep, None]
    c = centres[keep]
    boxes = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
    return _finish(spec, boxes, scores[keep], classes[keep], spec.nms)


def _finish_yolo(spec: DecodeSpec, arr: npt.NDArray[np.float32]) -> list[Detection]:
    obj = spec.layout == "yolo_obj"
    width = (5 if obj else 4) + len(spec.class_names)
    if arr.ndim != 2 or width not in arr.shape:
        raise ValueError(f"yolo head must be [{width}, N] or [N, {width}], got {list(arr.shape)}")
    rows = arr.T if arr.shape[0] == width and arr.shape[1] != width else arr
    cls_scores = _act(spec, rows[:, 5:] if obj else rows[:, 4:])
    if obj:
        cls_scores = cls_scores * _act(spec, rows[:, 4])[:, None]
    classes = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(len(rows)), classes]
    return _finish(spec, rows[:, :4], scores, classes, spec.nms)


def _act(spec: DecodeSpec, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    if spec.activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))).astype(np.float32)
    return x.astype(np.float32, copy=False)


def _finish(
    spec: DecodeSpec,
    boxes: npt.ArrayLike,
    scores: npt.NDArray[np.float32],
    classes: npt.NDArray[np.integer],
    run_nms: bool,
) -> list[Detection]:
    b = to_xyxy(boxes, spec.box_format)
    ok = np.isfinite(scores) & (scores >= spec.score_threshold) & np.isfinite(b).all(axis=1)
    ok &= (classes >= 0) & (classes < len(spec.class_names))
    b, s, c = b[ok], scores[ok], classes[ok].astype(np.int64)
    b = normalise(b, spec.width, spec.height) if not spec.normalized else np.clip(b, 0.0, 1.0)
    names = [spec.class_names[i] for i in c]
    labels = [spec.labels.get(n, n if not spec.labels else None) for n in names]
    if not spec.keep_unmapped:
        mapped = np.array([lab is not None for lab in labels], dtype=bool)
        b, s, c = b[mapped], s[mapped], c[mapped]
        names = [n for n, m in zip(names, mapped, strict=True) if m]
        labels = [lab for lab in labels if lab is not None]
    order = batched_nms(b, s, c, spec.iou_threshold) if run_nms else np.argsort(-s, kind="stable")
    return [
        Detection(
            box=(float(b[i, 0]), float(b[i, 1]), float(b[i, 2]), float(b[i, 3])),
            score=float(s[i]),
            class_id=int(c[i]),
            class_name=names[i],
            label=labels[i],
        )
        for i in order[: spec.max_detections]
    ]


def label_scores(detections: Sequence[Detection], labels: Sequence[str]) -> dict[str, float]:
    """Per scene label, the best score among the frame's detections of it (0 when none)."""
    out = dict.fromkeys(labels, 0.0)
    for d in detections:
        if d.label is not None and d.label in out:
            out[d.label] = max(out[d.label], d.score)
    return out
