"""The pure array work around an engine call: windows checked and stacked into inputs, rows
padded to a built batch size, raw outputs activated and mapped to labels, and a batch split into
rounds in which no stream appears twice (a stateful engine sees a stream's windows in order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.runtime.backends.base import NUMPY_DTYPES, concrete_shape
from engines.runtime.interface import InputShapeError
from engines.runtime.manifest_schema import InputTable
from engines.window import Window

F32 = npt.NDArray[np.float32]


def expect(engine: str, w: Window, kind: str, arr: Any, shape: tuple[int, ...], dtype: Any) -> None:
    if arr is None or not isinstance(arr, np.ndarray):
        raise InputShapeError(f"{engine}: window {w.stream}#{w.seq} has no {kind} array")
    if arr.shape != shape or arr.dtype != dtype:
        raise InputShapeError(
            f"{engine}: window {w.stream}#{w.seq} {kind} is {arr.dtype}{list(arr.shape)}, "
            f"expected {np.dtype(dtype)}{list(shape)}"
        )


def stack(spec: InputTable, b: int, arrays: list[Any]) -> npt.NDArray[Any]:
    out = np.zeros(concrete_shape(spec, b), dtype=NUMPY_DTYPES[spec.dtype])
    for i, arr in enumerate(arrays):
        out[i] = arr
    return out


def pad_rows(rows: npt.NDArray[Any], b: int) -> npt.NDArray[Any]:
    if rows.shape[0] == b:
        return rows
    pad = np.zeros((b - rows.shape[0], *rows.shape[1:]), dtype=rows.dtype)
    return np.concatenate([rows, pad], axis=0)


def initial(spec: InputTable) -> npt.NDArray[Any]:
    shape = list(concrete_shape(spec, 1))
    del shape[spec.batch_axis or 0]
    return np.zeros(shape, dtype=NUMPY_DTYPES[spec.dtype])  # `initial = "zeros"`


def activate(x: F32, activation: str) -> F32:
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))).astype(np.float32)
    if activation == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        out: F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return out
    return x


def map_labels(x: F32, classes: tuple[str, ...], mapping: dict[str, str]) -> F32:
    """Class scores `[n, classes]` → scene-label scores: each label the best of its classes."""
    labels = dict.fromkeys(mapping[c] for c in classes if c in mapping)
    out = np.zeros((x.shape[0], len(labels)), dtype=np.float32)
    for j, label in enumerate(labels):
        cols = [i for i, c in enumerate(classes) if mapping.get(c) == label]
        out[:, j] = x[:, cols].max(axis=1)
    return out


def rounds(windows: Sequence[Window]) -> list[list[Window]]:
    """Split so that no stream appears twice in one round, keeping each stream's order.

    A stateful engine must see a stream's windows one after the other, each with the state the
    previous one left; the scheduler rarely sends two of a stream at once, but it may.
    """
    rounds: list[list[Window]] = []
    depth: dict[str, int] = {}
    for w in windows:
        k = depth.get(w.stream, 0)
        depth[w.stream] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(w)
    return rounds


def flatten(rounds: list[list[Window]]) -> list[Window]:
    return [w for r in rounds for w in r]


def reorder(windows: Sequence[Window], out: list[F32]) -> list[F32]:
    """Results come in round order; put them back in the callers' order."""
    flat = flatten(rounds(windows))
    by_id = {id(w): s for w, s in zip(flat, out, strict=True)}
    return [by_id[id(w)] for w in windows]
