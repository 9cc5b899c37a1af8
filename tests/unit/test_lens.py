"""The training loop's random lens on the frames: a share of the rows zoomed in and blurred,
the same for every frame of a row, so what the labels read (growth, flashing) is kept."""

from __future__ import annotations

import numpy as np
import torch

from engines.lab.training.augment import LENS_FRACTION, _gaussian_blur, lens


def growing_square(b: int, t: int = 8, size: int = 64) -> torch.Tensor:
    """`b` rows of a bright square on grey, centred, its side growing 1.1x per frame."""
    video = torch.full((b, t, size, size, 3), 60, dtype=torch.uint8)
    for k in range(t):
        half = round(6 * 1.1**k)
        c = size // 2
        video[:, k, c - half : c + half, c - half : c + half] = 220
    return video


def bright_area(frame: torch.Tensor) -> float:
    return float((frame.float().mean(-1) > 140).sum())


def test_a_share_of_rows_changes_and_the_others_are_untouched() -> None:
    video = torch.randint(0, 256, (400, 2, 16, 16, 3), dtype=torch.uint8)
    out = lens(video, torch.Generator().manual_seed(0))
    assert out.shape == video.shape
    assert out.dtype == torch.uint8
    changed = (out != video).flatten(1).any(dim=1)
    assert abs(changed.float().mean().item() - LENS_FRACTION) < 0.08
    assert torch.equal(out[~changed], video[~changed])


def test_every_frame_of_a_row_gets_the_same_lens() -> None:
    frame = torch.randint(0, 256, (1, 1, 32, 32, 3), dtype=torch.uint8)
    video = frame.expand(200, 6, 32, 32, 3).contiguous()  # a still picture in every row
    out = lens(video, torch.Generator().manual_seed(1))
    assert torch.equal(out, out[:, :1].expand_as(out))  # still pictures stay still
    assert not torch.equal(out, video)


def test_growth_is_kept_and_the_picture_comes_bigger() -> None:
    video = growing_square(200)
    out = lens(video, torch.Generator().manual_seed(2))
    rows = (out != video).flatten(1).any(dim=1).nonzero().squeeze(1)
    assert len(rows) > 20
    source = bright_area(video[0, -1]) / bright_area(video[0, 0])
    for r in rows.tolist():
        first, last = bright_area(out[r, 0]), bright_area(out[r, -1])
        if last >= 64 * 64 * 0.9:
            continue  # zoomed in so far that the last frame is all square
        assert abs(last / first - source) / source < 0.2, (r, first, last)
        assert first >= 0.9 * bright_area(video[r, 0])  # a zoom only enlarges


def test_blur_keeps_flat_frames_and_softens_edges() -> None:
    flat = torch.full((2, 3, 16, 16), 123.0)
    assert torch.allclose(_gaussian_blur(flat, torch.tensor([0.0, 1.2])), flat, atol=1e-3)
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 8:] = 255.0
    soft = _gaussian_blur(edge, torch.tensor([1.0]))[0, 0, 0].numpy()
    assert np.all(np.diff(soft) >= -1e-4)  # still one monotone step
    assert 0 < soft[7] < 128 < soft[8] < 255  # but no longer a hard one
    assert torch.equal(_gaussian_blur(edge, torch.tensor([0.0])), edge)


def test_the_draw_is_reproducible() -> None:
    video = growing_square(16)
    a = lens(video, torch.Generator().manual_seed(5))
    b = lens(video, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
