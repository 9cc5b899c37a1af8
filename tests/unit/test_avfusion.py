"""The avfusion network: shapes, cost, in-graph preprocessing, modality and temporal paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.lab.export import example_inputs
from engines.lab.scenes.base import LABELS
from engines.runtime.nets.avfusion import (
    PIXEL_MEAN,
    PIXEL_STD,
    AVFusion,
    AVFusionConfig,
    VideoBranch,
    count_parameters,
    gflops_per_window,
    load_checkpoint,
    load_for_engine,
    save_checkpoint,
    with_long_diff,
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


def test_parameter_count_includes_a_frozen_branch() -> None:
    net = AVFusion()
    total = count_parameters(net)
    audio = sum(p.numel() for p in net.audio.parameters())
    for p in net.audio.parameters():
        p.requires_grad_(False)  # what train --freeze audio does
    assert audio > 0
    assert count_parameters(net) == total


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


def _stacked_stem(branch: VideoBranch, video: torch.Tensor) -> torch.Tensor:
    """The stem as its docstring defines it: normalised frames stacked with their differences
    to the frames `lags` back (the first frame standing in before the start), then the conv."""
    b, t, h, w, _ = video.shape
    x = ((video.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD).permute(0, 1, 4, 2, 3)
    parts = [x] + [x - x[:, torch.clamp(torch.arange(t) - lag, min=0)] for lag in branch.lags]
    stacked = torch.cat(parts, dim=2).reshape(b * t, 3 * len(parts), h, w)
    out: torch.Tensor = branch.frame_cnn[0](stacked)
    return out


@pytest.mark.parametrize("long_diff", [0, 4, 7])
def test_the_raw_frame_stem_equals_the_stacked_one(long_diff: int) -> None:
    torch.manual_seed(long_diff)
    branch = VideoBranch(AVFusionConfig(long_diff=long_diff))
    torch.nn.init.normal_(branch.frame_cnn[0].weight)
    assert branch.lags == ((1, long_diff) if long_diff else (1,))
    video = torch.randint(0, 256, (2, 8, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        want, got = _stacked_stem(branch, video), branch.stem(video)
    assert torch.allclose(got, want, atol=1e-4 * float(want.abs().max()))


def test_a_checkpoint_without_the_long_difference_loads_and_widens(tmp_path: Path) -> None:
    """Checkpoints from before `long_diff` load as they were; widened for a model with it,
    they give the same scores (the new stem inputs start at zero weight)."""
    torch.manual_seed(1)
    save_checkpoint(AVFusion(AVFusionConfig(long_diff=0)), tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    del payload["config"]["long_diff"]  # as written before the option existed
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.cfg.long_diff == 0
    wide = AVFusion(AVFusionConfig(long_diff=4)).eval()
    wide.load_state_dict(with_long_diff(old, 4))
    inputs = example_inputs(wide, batch=2, seed=3)
    with torch.no_grad():
        assert torch.allclose(wide(**inputs), old(**inputs), atol=1e-5)
    with pytest.raises(ValueError, match="already"):
        with_long_diff(wide, 4)
