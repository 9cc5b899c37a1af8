"""ONNX export of avfusion: checker, dynamic batch, torch vs ONNX Runtime parity, size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.lab.export import example_inputs, parity, write_engine_dir
from engines.runtime.manifest import load_manifest
from engines.runtime.manifest_checks import onnx_io
from engines.runtime.nets.avfusion import AVFusion, load_checkpoint

pytestmark = pytest.mark.integration

BUNDLED = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "avfusion"


def _trained_like_model() -> AVFusion:
    """Random weights with non-trivial batch-norm statistics, so parity is not vacuous."""
    torch.manual_seed(3)
    model = AVFusion()
    model.train()
    with torch.no_grad():
        for seed in range(3):
            inputs = example_inputs(model, batch=8, seed=100 + seed)
            model(inputs["video"], inputs["audio"])
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[AVFusion, Path]:
    model = _trained_like_model()
    out = tmp_path_factory.mktemp("avfusion")
    write_engine_dir(model, out)
    return model, out


def test_parity_batch_1_and_8(exported: tuple[AVFusion, Path]) -> None:
    model, out = exported
    with torch.no_grad():
        ref = model(**example_inputs(model, batch=4, seed=1))
    assert float(ref.std()) > 1e-2, "logits vary across inputs: parity below is meaningful"
    for result in parity(model, out / "model.onnx", batches=(1, 8)):
        assert result.max_abs_diff <= 1e-4, result


def test_graph_has_dynamic_batch_and_manifest_loads(exported: tuple[AVFusion, Path]) -> None:
    _, out = exported
    inputs, outputs = onnx_io(out / "model.onnx")
    assert inputs["video"][0] == "uint8"
    assert inputs["audio"][0] == "float32"
    assert not isinstance(inputs["video"][1][0], int), "batch axis is symbolic"
    assert outputs["scores"][1][-1] == 8
    manifest = load_manifest(out)
    assert manifest.name == "avfusion"
    spec = manifest.window_spec()
    assert spec.video is not None
    assert spec.audio is not None
    assert (spec.video.frames, spec.video.height, spec.audio.samples) == (8, 64, 16000)
    assert (out / "model.onnx").stat().st_size <= 20e6


def test_checkpoint_round_trip(exported: tuple[AVFusion, Path]) -> None:
    model, out = exported
    again = load_checkpoint(out / "model.pt")
    inputs = example_inputs(model, batch=2, seed=5)
    with torch.no_grad():
        assert torch.equal(model(**inputs), again(**inputs))


@pytest.mark.skipif(not (BUNDLED / "model.onnx").exists(), reason="no bundled avfusion model yet")
def test_bundled_model_parity() -> None:
    manifest = load_manifest(BUNDLED)
    assert manifest.model_path is not None
    model = load_checkpoint(BUNDLED / "model.pt")
    for result in parity(model, manifest.model_path, batches=(1, 8)):
        assert result.max_abs_diff <= 1e-4, result
    assert manifest.model_path.stat().st_size <= 20e6


def test_manifest_thresholds_are_written_and_evaluation_scores_at_them(
    exported: tuple[AVFusion, Path], tmp_path: Path
) -> None:
    import shutil

    import numpy as np

    from engines.lab.evaluation.report import evaluate_windows
    from engines.lab.evaluation.scoring import load_scorer
    from engines.lab.export import write_manifest
    from engines.lab.training.data import from_arrays
    from engines.labels import LABELS

    model, out = exported
    engine = tmp_path / "avfusion"
    shutil.copytree(out, engine)
    write_manifest(model, engine, thresholds={"siren": {"on": 0.3, "off": 0.1}})
    assert load_manifest(engine).doc.thresholds["siren"].on == 0.3
    scorer = load_scorer(engine, backend="onnxruntime")
    try:
        th = scorer.window_thresholds(LABELS)
        assert th[LABELS.index("siren")] == 0.3
        assert th[LABELS.index("horn")] == 0.5  # no table: the default
        inputs = example_inputs(model, batch=12, seed=9)
        video, audio = inputs["video"].numpy(), inputs["audio"].numpy()
        labels = np.zeros((12, len(LABELS)), np.float32)
        labels[::2] = 1
        data = from_arrays(video, audio, labels, ["k"] * 12, 16000)
        report = evaluate_windows(scorer, data, "tiny")
        scores = scorer.score(video, audio, independent=True)
    finally:
        scorer.close()
    assert report["threshold"]["siren"] == 0.3
    for j, label in enumerate(LABELS):
        fired = scores[:, j] >= th[j]
        assert report["labels"][label]["tp"] == int((fired & (labels[:, j] > 0)).sum()), label
        assert report["labels"][label]["fp"] == int((fired & (labels[:, j] == 0)).sum()), label
