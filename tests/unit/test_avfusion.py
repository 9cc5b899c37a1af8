"""The avfusion network: shapes, cost, in-graph preprocessing, modality and temporal paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.lab.export import example_inputs
from engines.lab.scenes.base import LABELS
from engines.runtime.nets.avfusion import (
    AVFusion,
    count_parameters,
    gflops_per_window,
    load_for_engine,
    save_checkpoint,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> AVFusion:
    torch.manual_seed(0)
    net = AVFusion().train()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for seed in range(3):
            net(**example_inputs(net, batch=8, seed=50 + seed))
    return net.eval()


def test_output_shape_and_label_order(model: AVFusion) -> None:
    inputs = example_inputs(model, batch=3)
    with torch.no_grad():
        out = model(**inputs)
    assert out.shape == (3, len(LABELS))
    assert model.cfg.labels == LABELS


def test_cost_within_budget(model: AVFusion) -> None:
    gflops = gflops_per_window(model)
    assert 0.01 < gflops <= 0.5
    assert count_parameters(model) < 2_000_000


def test_precomputed_logmel_path_is_identical(model: AVFusion) -> None:
    inputs = example_inputs(model, batch=2, seed=4)
    with torch.no_grad():
        direct = model(**inputs)
        cached = model.forward_logmel(inputs["video"], model.audio.logmel(inputs["audio"]))
    assert torch.allclose(direct, cached, atol=1e-6)


def test_batch_rows_are_independent(model: AVFusion) -> None:
    inputs = example_inputs(model, batch=4, seed=9)
    with torch.no_grad():
        full = model(**inputs)
        single = model(inputs["video"][2:3], inputs["audio"][2:3])
    assert torch.allclose(full[2:3], single, atol=1e-5)


def test_both_modalities_and_frame_order_reach_the_output(model: AVFusion) -> None:
    inputs = example_inputs(model, batch=2, seed=11)
    with torch.no_grad():
        base = model(**inputs)
        no_audio = model(inputs["video"], torch.zeros_like(inputs["audio"]))
        no_video = model(torch.zeros_like(inputs["video"]), inputs["audio"])
        reversed_frames = model(inputs["video"].flip(1), inputs["audio"])
    # Untrained weights give small but non-zero effects; a disconnected path gives exactly 0.
    for other in (no_audio, no_video, reversed_frames):
        assert (base - other).abs().max() > 1e-6


def test_load_for_engine(tmp_path: Path, model: AVFusion) -> None:
    save_checkpoint(model, tmp_path / "model.pt")
    loaded = load_for_engine(tmp_path)
    assert not loaded.training
    inputs = example_inputs(model, batch=1)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs), model(**inputs))
