"""Non-maximum suppression, greedy and class-aware, in numpy.

Class-aware NMS shifts each class's boxes by a class-dependent offset larger than any box, so a
single greedy pass never lets a box of one class suppress a box of another (the trick
torchvision's `batched_nms` uses).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engines.detect.boxes import as_boxes, iou_matrix

I64 = npt.NDArray[np.int64]
MATRIX_MAX = 2048  # up to this many boxes the IoU matrix is computed once (16 MiB of float32)


def nms(boxes: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float) -> I64:
    """Indices of the boxes kept, highest score first: each kept box suppresses the lower-scored
    boxes overlapping it by more than `iou_threshold`."""
    b = as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(b) != len(s):
        raise ValueError(f"{len(b)} boxes but {len(s)} scores")
    order = np.argsort(-s, kind="stable")
    if len(order) <= MATRIX_MAX:
        return _nms_matrix(b, order, iou_threshold)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        overlap = iou_matrix(b[best : best + 1], b[rest])[0]
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _nms_matrix(b: npt.NDArray[np.float32], order: I64, iou_threshold: float) -> I64:
    """Greedy NMS over a precomputed IoU matrix: one vector operation per kept box."""
    ranked = b[order]
    iou = iou_matrix(ranked, ranked)
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


def batched_nms(
    boxes: npt.ArrayLike, scores: npt.ArrayLike, classes: npt.ArrayLike, iou_threshold: float
) -> I64:
    """Class-aware NMS: boxes only suppress boxes of their own class."""
    b = as_boxes(boxes)
    if len(b) == 0:
        return np.zeros(0, dtype=np.int64)
    c = np.asarray(classes, dtype=np.float32).reshape(-1)
    span = float(np.max(b) - min(0.0, float(np.min(b)))) + 1.0
    shifted = b + (c * span)[:, None]
    return nms(shifted, scores, iou_threshold)
