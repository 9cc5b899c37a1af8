"""Export `avfusion` to ONNX and check it: `onnx.checker` plus torch vs ONNX Runtime parity.

The dynamo exporter (the default since torch 2.9) is given `dynamic_shapes` for the batch axis
and a batch-2 example, so batch 1 is not baked into any reshape. Opset 18 suits TensorRT 10/11.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from engines.runtime.nets.avfusion import AVFusion

logger = logging.getLogger(__name__)

OPSET = 18
INPUT_NAMES = ("video", "audio")
OUTPUT_NAME = "scores"


def example_inputs(model: AVFusion, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs of the manifest's shapes (uint8 video, audio in [-1, 1])."""
    c = model.cfg
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (batch, c.frames, c.height, c.width, 3), generator=g)
    audio = torch.rand(batch, c.samples, generator=g) * 2.0 - 1.0
    return {"video": video.to(torch.uint8), "audio": audio * 0.5}


def export_onnx(model: AVFusion, path: Path) -> Path:
    """Write `model` (eval mode) to `path` as a single-file ONNX graph with a dynamic batch."""
    model = model.eval()
    inputs = example_inputs(model, batch=2)
    # The exporter's graph passes log every rewrite at INFO: hundreds of lines of noise.
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    batch = torch.export.Dim("batch", min=1, max=1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations in onnxscript)
        program = torch.onnx.export(
            model,
            (inputs["video"], inputs["audio"]),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"video": {0: batch}, "audio": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    check_onnx(path)
    logger.info("exported avfusion to %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def check_onnx(path: Path) -> None:
    """`onnx.checker` with full shape inference; raises on an invalid graph."""
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


@dataclass(frozen=True, slots=True)
class Parity:
    """Max |torch - onnxruntime| over the logits at one batch size."""

    batch: int
    max_abs_diff: float


def onnx_scores(path: Path, inputs: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.float32]:
    """Run the ONNX file on CPU with ONNX Runtime."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], inputs)
    return np.asarray(out, dtype=np.float32)


def parity(model: AVFusion, path: Path, batches: tuple[int, ...] = (1, 8)) -> list[Parity]:
    """torch vs ONNX Runtime on random inputs at each batch size."""
    model = model.eval()
    results = []
    for b in batches:
        inputs = example_inputs(model, batch=b, seed=b)
        with torch.no_grad():
            ref = model(inputs["video"], inputs["audio"]).numpy()
        got = onnx_scores(path, {k: v.numpy() for k, v in inputs.items()})
        results.append(Parity(b, float(np.abs(ref - got).max())))
    return results


MANIFEST_TEMPLATE = """\
# avfusion: the project's reference audio-visual fusion model (see MODEL_CARD.md).
# Written by `scenestream train` (engines/lab/export.py); edit the template there.
[engine]
name = "avfusion"
version = "{version}"
description = "Reference audio-visual fusion model: 8 labels, 2 of them fused (both modalities)"
model = "model.onnx"
torch_factory = "engines.runtime.nets.avfusion:load_for_engine"
precision = "fp32"
batch_sizes = [1, 2, 4, 8, 16]
budget_ms = 200
max_queue_delay_ms = 25

# 1 s windows every 0.5 s: the fused labels need both modalities over the same second. The
# scores say what happens at the window's end (its last 0.3 s), so events are dated there.
[window]
length_s = {length_s}
hop_s = {hop_s}
labels_at = "end"

[inputs.video]
role = "video"
dtype = "uint8"
shape = ["B", {frames}, {height}, {width}, 3]
fps = {fps}

[inputs.audio]
role = "audio"
dtype = "float32"
shape = ["B", {samples}]
sample_rate = {sample_rate}

# Logits; the runtime applies the sigmoid (multi-label).
[outputs.scores]
labels = [{labels}]
activation = "sigmoid"
"""

HOP_S = 0.5


THRESHOLDS_HEADER = """
# Per-label event thresholds calibrated on the validation split (best window-level F1, from
# 0.5 up for the fused labels, a higher floor for `emergency_vehicle`; see
# engines/lab/training/calibrate.py):
# an event starts at `on` and ends under `off`. The service's configuration overrides them;
# `scenestream evaluate` scores windows at `on`.
"""


def thresholds_toml(thresholds: dict[str, dict[str, float]]) -> str:
    """`[thresholds.<label>]` tables (empty string for none)."""
    if not thresholds:
        return ""
    parts = [THRESHOLDS_HEADER]
    for label, table in thresholds.items():
        parts.append(f"\n[thresholds.{label}]\n")
        parts += [f"{key} = {value}\n" for key, value in table.items()]
    return "".join(parts)


def write_manifest(
    model: AVFusion,
    out_dir: Path,
    version: str = "1.0.0",
    thresholds: dict[str, dict[str, float]] | None = None,
) -> Path:
    """`engine.toml` for the model's shapes (the schema of `engines.runtime.manifest`), with
    per-label `[thresholds.<label>]` tables when given."""
    c = model.cfg
    text = MANIFEST_TEMPLATE.format(
        version=version,
        length_s=c.samples / c.sample_rate,
        hop_s=HOP_S,
        frames=c.frames,
        height=c.height,
        width=c.width,
        fps=c.fps,
        samples=c.samples,
        sample_rate=c.sample_rate,
        labels=", ".join(f'"{label}"' for label in c.labels),
    )
    path = out_dir / "engine.toml"
    path.write_text(text + thresholds_toml(thresholds or {}))
    return path


def write_engine_dir(
    model: AVFusion,
    out_dir: Path,
    version: str = "1.0.0",
    thresholds: dict[str, dict[str, float]] | None = None,
) -> Path:
    """A complete engine directory: `model.pt`, `model.onnx` (checked), `engine.toml`."""
    from engines.runtime.nets.avfusion import save_checkpoint

    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out_dir / "model.pt")
    export_onnx(model, out_dir / "model.onnx")
    return write_manifest(model, out_dir, version, thresholds)
