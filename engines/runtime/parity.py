"""Backend parity: every backend that runs an engine must compute the same raw outputs.

Checked on random inputs (every weight exercised) and on realistic ones (smooth frames, tones:
the value ranges real media produces), at the smallest and the largest batch size, as the
largest absolute difference of every declared output against a reference backend (a detector's
kept detections are matched row to row: `detection_diff`). Tolerance:
1e-4 for fp32 engines (the issue's bar), 1e-2 for fp16 graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.runtime.backends.base import Arrays, Backend, random_inputs, realistic_inputs
from engines.runtime.manifest import Manifest

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2


def tolerance_for(manifest: Manifest) -> float:
    """Largest allowed absolute difference between backends for this engine."""
    return FP32_TOLERANCE if manifest.doc.engine.precision == "fp32" else FP16_TOLERANCE


@dataclass(frozen=True, slots=True)
class ParityCase:
    """One comparison: a backend against the reference on one input set."""

    backend: str
    reference: str
    inputs: str  # "random" | "realistic"
    batch: int
    max_abs_diff: float
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "backend": self.backend,
            "reference": self.reference,
            "inputs": self.inputs,
            "batch": self.batch,
            "max_abs_diff": self.max_abs_diff,
            "ok": self.ok,
        }


def max_abs_diff(a: Arrays, b: Arrays, names: list[str]) -> float:
    """Largest |a - b| over the named outputs (inf when shapes differ or values are not finite)."""
    worst = 0.0
    for name in names:
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        if x.shape != y.shape or not (np.isfinite(x).all() and np.isfinite(y).all()):
            return float("inf")
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y))))
    return worst


def detection_diff(a: Arrays, b: Arrays, manifest: Manifest) -> float | None:
    """For a detector whose graph keeps its detections (`boxes` layout with one score per box,
    or `end2end` rows): the largest difference between matched detections of each image, a
    detection of one backend matched to the nearest one of the other (inf when they keep
    different numbers). The order of detections with equal scores is the backend's choice,
    so rows are not compared position by position. None for any other engine."""
    det = manifest.doc.detections
    if det is None or det.layout not in ("boxes", "end2end"):
        return None
    names = det.graph_outputs()
    if det.layout == "boxes" and np.asarray(a[names[1]]).ndim != 2:
        return None  # per-class score rows: compared as raw outputs
    worst = 0.0
    for x, y in zip(_detection_rows(a, names), _detection_rows(b, names), strict=True):
        if x.shape != y.shape or not (np.isfinite(x).all() and np.isfinite(y).all()):
            return float("inf")
        if x.size:
            d = np.max(np.abs(x[:, None, :] - y[None, :, :]), axis=2)
            worst = max(worst, float(d.min(axis=1).max()), float(d.min(axis=0).max()))
    return worst


def _detection_rows(arrays: Arrays, names: tuple[str, ...]) -> list[np.ndarray[Any, Any]]:
    """Per image, one row per detection: box, score(, class)."""
    parts = [np.asarray(arrays[n], np.float64) for n in names]
    if len(parts) == 1:
        return list(parts[0])  # end2end: [B, N, 6]
    columns = [parts[0], *(p[..., None] for p in parts[1:])]
    return list(np.concatenate(columns, axis=-1))


def check_parity(
    manifest: Manifest, backends: dict[str, Backend], seed: int = 0
) -> list[ParityCase]:
    """Compare every backend with the first one in `backends` (the reference)."""
    if len(backends) < 2:
        return []
    names = list(manifest.graph_outputs)
    det_outputs = manifest.doc.detections.graph_outputs() if manifest.doc.detections else ()
    ref_name, *others = list(backends)
    reference = backends[ref_name]
    limit = tolerance_for(manifest)
    sizes = sorted({manifest.batch_sizes[0], manifest.batch_sizes[-1]})
    cases: list[ParityCase] = []
    for kind, make in (("random", random_inputs), ("realistic", realistic_inputs)):
        for batch in sizes:
            inputs = make(manifest, batch, seed)
            expected = reference.infer(inputs)
            for other in others:
                got = backends[other].infer(inputs)
                det = detection_diff(expected, got, manifest)
                rest = names if det is None else [n for n in names if n not in det_outputs]
                diff = max(max_abs_diff(expected, got, rest), det or 0.0)
                cases.append(ParityCase(other, ref_name, kind, batch, diff, diff <= limit))
    return cases
