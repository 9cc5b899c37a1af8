"""The training loop's moving-camera augmentation: whole-frame shifts of a few pixels, labels
untouched, rows it leaves alone bit-identical."""

from __future__ import annotations

import torch

from engines.lab.training.augment import JITTER_PX, PAN_PX, SHAKE_PX, camera_motion


def _dot_video(b: int = 64, t: int = 8, size: int = 32) -> torch.Tensor:
    """One bright pixel in the middle of every frame of every row."""
    video = torch.zeros(b, t, size, size, 3, dtype=torch.uint8)
    video[:, :, size // 2, size // 2] = 255
    return video


def _dot_positions(video: torch.Tensor) -> torch.Tensor:
    """`[B, T, 2]` (row, column) of each frame's brightest pixel."""
    b, t, h, w, _ = video.shape
    flat = video[..., 0].reshape(b, t, h * w).argmax(dim=2)
    return torch.stack([flat // w, flat % w], dim=2)


def test_about_half_of_the_rows_move_by_a_few_pixels_and_the_rest_are_untouched() -> None:
    video = _dot_video()
    out = camera_motion(video, torch.Generator().manual_seed(3), fps=8.0)
    assert out.shape == video.shape
    assert out.dtype == torch.uint8
    moved = (out != video).flatten(1).any(dim=1)
    assert 12 <= int(moved.sum()) <= 40
    assert torch.equal(out[~moved], video[~moved])
    # a shifted frame still holds exactly one bright pixel (a shift, not a blur or a warp) ...
    assert torch.equal((out[..., 0] == 255).flatten(2).sum(2), torch.ones(64, 8, dtype=torch.long))
    # ... no farther from where it was than the largest motion allows
    far = max(JITTER_PX, SHAKE_PX[1], PAN_PX * 3.5) + 0.5
    assert (_dot_positions(out) - 16).abs().max() <= far
    # the input is never modified in place
    assert torch.equal(video, _dot_video())


def test_the_same_generator_seed_gives_the_same_motion() -> None:
    video = _dot_video()
    a = camera_motion(video, torch.Generator().manual_seed(5), fps=8.0)
    b = camera_motion(video, torch.Generator().manual_seed(5), fps=8.0)
    c = camera_motion(video, torch.Generator().manual_seed(6), fps=8.0)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_edges_are_replicated_so_a_uniform_frame_stays_uniform() -> None:
    video = torch.full((32, 8, 16, 16, 3), 77, dtype=torch.uint8)
    out = camera_motion(video, torch.Generator().manual_seed(1), fps=8.0)
    assert torch.equal(out, video)
