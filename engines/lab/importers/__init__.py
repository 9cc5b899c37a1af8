"""`scenestream engines import`: pretrained models → engine directories `serve` loads.

- `detector.py`: object detectors from the ONNX files standard exporters write (YOLO-family raw
  heads and end-to-end outputs), wrapped so that the graph takes the engine's video input;
- `audio.py`: audio classifiers from `transformers` checkpoints (`AutoModelForAudioClassification`),
  exported to ONNX with their feature extraction in the graph.

Every failure a user can cause (missing file, unsupported architecture, no network) is a
one-line `UserError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import wrote and how close the ONNX graph is to its source."""

    engine_dir: Path
    kind: str  # "detector" | "audio"
    labels: tuple[str, ...]
    classes: int
    parity_max_abs_diff: float
    details: dict[str, Any] = field(default_factory=dict)
