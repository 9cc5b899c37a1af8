"""Modality dropout's lost picture: black, a flat colour or one frame frozen, with the labels
that needed the picture cleared and the audio labels kept; and the branches a fine-tune
freezes."""

from __future__ import annotations

import pytest
import torch

from engines.lab.training.augment import FLAT_LEVELS, drop_modalities, lost_picture
from engines.lab.training.trainer import frozen_branches
from engines.labels import AUDIO_LABELS, FUSED_LABELS, LABELS, VIDEO_LABELS
from engines.runtime.nets.avfusion import AVFusion

pytestmark = pytest.mark.unit


def _moving_video(b: int, t: int = 8, size: int = 16) -> torch.Tensor:
    """Every frame of every row different from the others (a random picture per frame)."""
    return torch.randint(1, 255, (b, t, size, size, 3), dtype=torch.uint8)


def test_every_style_of_lost_picture_is_still_and_comes_from_its_row() -> None:
    video = _moving_video(90)
    out = lost_picture(video, torch.Generator().manual_seed(0))
    assert out.shape == video.shape
    assert out.dtype == torch.uint8
    styles = {"black": 0, "flat": 0, "frozen": 0}
    for row, lost in zip(video, out, strict=True):
        assert torch.equal(lost, lost[:1].expand_as(lost)), "a lost picture never changes"
        frame = lost[0]
        if not frame.any():
            styles["black"] += 1
        elif torch.equal(frame, frame[:1, :1].expand_as(frame)):
            low, high = FLAT_LEVELS
            assert int(frame.min()) >= low
            assert int(frame.max()) < high
            styles["flat"] += 1
        else:
            assert any(torch.equal(frame, f) for f in row), "a frozen frame is one of the row's"
            styles["frozen"] += 1
    assert all(n >= 15 for n in styles.values()), styles


def test_an_empty_batch_passes_through() -> None:
    video = _moving_video(0)
    assert lost_picture(video, torch.Generator().manual_seed(0)).shape == video.shape


def test_dropped_rows_lose_the_labels_their_modality_carried_and_keep_the_others() -> None:
    b = 400
    video, logmel = _moving_video(b, size=8), torch.randn(b, 1, 64, 101)
    labels = torch.ones(b, len(LABELS))
    out_v, out_m, out_y = drop_modalities(
        video, logmel, labels, 0.25, torch.Generator().manual_seed(1), lost=True
    )
    picture = [LABELS.index(x) for x in VIDEO_LABELS + FUSED_LABELS]
    sound = [LABELS.index(x) for x in AUDIO_LABELS + FUSED_LABELS]
    still = (out_v == out_v[:, :1]).flatten(1).all(dim=1)
    silent = (out_m == out_m.flatten(1)[:, :1].view(b, 1, 1, 1)).flatten(1).all(dim=1)
    assert 50 < int(still.sum()) < 150
    assert 50 < int(silent.sum()) < 150
    assert not (still & silent).any(), "a row loses one modality at most"
    assert (out_y[still][:, picture] == 0).all()
    assert (out_y[silent][:, sound] == 0).all()
    audio_only = [LABELS.index(x) for x in AUDIO_LABELS]
    video_only = [LABELS.index(x) for x in VIDEO_LABELS]
    assert (out_y[still][:, audio_only] == 1).all()
    assert (out_y[silent][:, video_only] == 1).all()
    kept = ~(still | silent)
    assert torch.equal(out_v[kept], video[kept])
    assert (out_y[kept] == 1).all()
    assert torch.equal(labels, torch.ones(b, len(LABELS))), "the inputs are not changed in place"


def test_without_lost_picture_a_dropped_picture_is_black_as_before() -> None:
    b = 200
    video, logmel = _moving_video(b, size=8), torch.randn(b, 1, 64, 101)
    labels = torch.ones(b, len(LABELS))
    out_v, _, _ = drop_modalities(video, logmel, labels, 0.25, torch.Generator().manual_seed(1))
    dropped = (out_v != video).flatten(1).any(dim=1)
    assert int(dropped.sum()) > 20
    assert not out_v[dropped].any(), "every dropped picture is black"


def test_freezing_a_branch_takes_only_its_weights_out_of_training() -> None:
    model = AVFusion()
    (branch,) = frozen_branches(model, ["audio", "audio"])
    assert branch is model.audio
    assert not any(q.requires_grad for q in model.audio.parameters())
    assert all(q.requires_grad for q in model.video.parameters())
    assert all(q.requires_grad for q in model.head.parameters())
    with pytest.raises(ValueError, match="cannot freeze"):
        frozen_branches(AVFusion(), ["head"])
