"""Box formats and overlap. Boxes are float arrays `[N, 4]`.

`xyxy` is (x1, y1, x2, y2), the corners; `cxcywh` is (centre x, centre y, width, height), what
raw YOLO heads emit. Inside scenestream boxes are `xyxy` normalised to the frame (0..1), so that
messages do not depend on the resolution the detector ran at.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
BoxFormat = Literal["xyxy", "cxcywh"]


def as_boxes(boxes: npt.ArrayLike) -> F32:
    """`boxes` as float32 `[N, 4]` (an empty input gives `[0, 4]`)."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4], got {list(arr.shape)}")
    return arr


def cxcywh_to_xyxy(boxes: npt.ArrayLike) -> F32:
    """Centre/size → corners."""
    b = as_boxes(boxes)
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1).astype(np.float32)


def xyxy_to_cxcywh(boxes: npt.ArrayLike) -> F32:
    """Corners → centre/size."""
    b = as_boxes(boxes)
    size = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + size / 2, size], axis=1).astype(np.float32)


def to_xyxy(boxes: npt.ArrayLike, fmt: BoxFormat) -> F32:
    """Any supported format → corners."""
    return cxcywh_to_xyxy(boxes) if fmt == "cxcywh" else as_boxes(boxes)


def normalise(boxes: npt.ArrayLike, width: float, height: float) -> F32:
    """Pixel corners → corners as fractions of the frame, clipped to it."""
    b = as_boxes(boxes) / np.array([width, height, width, height], dtype=np.float32)
    return np.clip(b, 0.0, 1.0).astype(np.float32)


def area(boxes: npt.ArrayLike) -> F32:
    """Area of each `xyxy` box (0 for inverted boxes)."""
    b = as_boxes(boxes)
    wh = np.clip(b[:, 2:] - b[:, :2], 0.0, None)
    out: F32 = (wh[:, 0] * wh[:, 1]).astype(np.float32)
    return out


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> F32:
    """IoU of every `xyxy` box of `a` with every box of `b`: `[len(a), len(b)]`."""
    x, y = as_boxes(a), as_boxes(b)
    lt = np.maximum(x[:, None, :2], y[None, :, :2])
    rb = np.minimum(x[:, None, 2:], y[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(x)[:, None] + area(y)[None, :] - inter
    out: F32 = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)
    return out
