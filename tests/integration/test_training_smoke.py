"""Training: a few steps on generated windows reduce the loss; training on a user directory
of media files + labels.csv (made here with PyAV) produces a loadable engine."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.lab.scenes.base import LABELS
from engines.lab.training import recipe
from engines.lab.training.data import build_set
from engines.lab.training.trainer import TrainConfig, train
from engines.lab.training.user_data import load_user_dir
from engines.runtime.manifest import load_manifest
from engines.runtime.nets.avfusion import AVFusion, AVFusionConfig, load_checkpoint, save_checkpoint
from stream.commands import average as average_cli
from stream.commands import evaluate as eval_cli
from stream.commands import train as train_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = recipe.window_spec(AVFusionConfig())


def test_generated_set_is_cached_and_loss_decreases(tmp_path: Path) -> None:
    data = build_set(SPEC, 96, seed=0, split="train", cache_dir=tmp_path / "cache", workers=1)
    assert data.video.shape == (96, 8, 64, 64, 3)
    assert data.logmel.shape == (96, 1, 64, 97)
    again = build_set(SPEC, 96, seed=0, split="train", cache_dir=tmp_path / "cache", workers=1)
    assert np.array_equal(np.asarray(again.video), np.asarray(data.video)), "served from cache"
    torch.manual_seed(0)
    model = AVFusion()
    cfg = TrainConfig(epochs=6, batch=32, lr=3e-3, patience=99, modality_dropout=0.0)
    result = train(model, data, data, cfg, tmp_path / "ckpt")
    assert result.epochs_run == 6
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert 1 <= result.best_epoch <= 6
    best = load_checkpoint(tmp_path / "ckpt" / "best.pt")
    assert best.cfg == model.cfg
    assert (tmp_path / "ckpt" / "last.pt").exists()


def _write_clip(path: Path, seconds: float, siren: tuple[float, float] | None) -> None:
    """A 64x64 10 fps clip; during `siren` a red/blue flashing patch and a 700-1400 Hz wail."""
    rate, fps = 16000, 10
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        aus = out.add_stream("pcm_s16le", rate=rate)
        aus.layout = "mono"
        for i in range(int(seconds * fps)):
            t = i / fps
            img = np.full((64, 64, 3), 90, np.uint8)
            if siren and siren[0] <= t < siren[1]:
                img[8:24, 20:44] = (255, 0, 0) if i % 2 else (0, 0, 255)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        ts = np.arange(int(seconds * rate)) / rate
        audio = 0.02 * np.random.default_rng(0).standard_normal(len(ts))
        if siren:
            on = (ts >= siren[0]) & (ts < siren[1])
            freq = 1050 + 350 * np.sin(2 * np.pi * 0.5 * ts)
            audio += on * 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / rate)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
        for k in range(0, pcm.shape[1], 1600):
            chunk = av.AudioFrame.from_ndarray(pcm[:, k : k + 1600], format="s16", layout="mono")
            chunk.sample_rate = rate
            chunk.pts = k
            out.mux(aus.encode(chunk))
        out.mux(aus.encode(None))


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "clips"
    d.mkdir()
    _write_clip(d / "a.mkv", 4.0, (1.0, 3.5))
    _write_clip(d / "b.mkv", 3.0, None)
    rows = [
        "file,start_s,end_s,label",
        "a.mkv,1.0,3.5,siren",
        "a.mkv,1.0,3.5,flashing_lights",
        "a.mkv,1.0,3.5,emergency_vehicle",
        "b.mkv,,,",
    ]
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    return d


def test_user_directory_windows_and_labels(user_dir: Path) -> None:
    sets = load_user_dir(user_dir, SPEC)
    a = sets["a.mkv"]
    # 4 s clip, 1 s windows every 0.5 s → 7 windows; ends at 1.0, 1.5, ..., 4.0.
    assert len(a) == 7
    siren = a.labels[:, 1]
    # Window [1.5, 2.5) is fully inside the labelled span; [0, 1) is before it.
    assert siren[3] == 1.0
    assert siren[0] == 0.0
    # The patch flashes red/blue in labelled windows (mpeg4 blurs it: compare with green).
    patch = a.video[3, :, 10:22, 22:42].astype(int)
    assert (np.maximum(patch[..., 0], patch[..., 2]) - patch[..., 1]).mean() > 100
    assert sets["b.mkv"].labels.sum() == 0


def test_train_on_user_directory(user_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "engine"
    args = argparse.Namespace(
        data=user_dir, out=out, epochs=2, seed=0, cache=tmp_path / "cache", minutes=None
    )
    assert train_cli.run(args) == 0
    manifest = load_manifest(out)
    assert manifest.name == "avfusion"
    assert (out / "model.onnx").exists()
    assert (out / "training.json").exists()
    assert (tmp_path / "cache" / "checkpoints" / "best.pt").exists()
    # The same directory evaluates through the engine runtime (`scenestream evaluate`).
    report_json = tmp_path / "report.json"
    eval_args = argparse.Namespace(
        engine=str(out),
        set_name=str(user_dir),
        backend="onnxruntime",
        json=report_json,
        markdown=tmp_path / "report.md",
        windows=None,
    )
    assert eval_cli.run(eval_args) == 0
    report = json.loads(report_json.read_text())
    assert report["backend"] == "onnxruntime"
    assert report["windows"] == 7 + 5
    assert set(report["labels"]) == set(LABELS)
    assert "| siren |" in (tmp_path / "report.md").read_text()
    # Calibrated thresholds are in the manifest, and the record says where they came from.
    record = json.loads((out / "training.json").read_text())
    assert set(record["thresholds_val_best_f1"]) == set(LABELS)
    assert set(manifest.doc.thresholds) == set(LABELS)
    # Fine-tuning from that checkpoint (`--init`): recorded, at a third of the peak rate.
    tuned = tmp_path / "tuned"
    args.out, args.epochs, args.init = tuned, 1, out / "model.pt"
    assert train_cli.run(args) == 0
    record = json.loads((tuned / "training.json").read_text())
    assert record["train"]["init"] == str(out / "model.pt")
    assert record["train"]["lr"] == pytest.approx(1e-3)
    assert record["train"]["filter_augment"] is False
    assert record["train"]["lens"] is False
    # `--lr` sets the peak rate; one outside (0, 1) is one clear error, before any training.
    # `--filter-augment` and `--lens` train through the random filter and lens and say so.
    args.out, args.lr, args.filter_augment, args.lens = tmp_path / "slow", 5e-4, True, True
    assert train_cli.run(args) == 0
    slow_record = json.loads((args.out / "training.json").read_text())["train"]
    assert slow_record["lr"] == 5e-4
    assert slow_record["filter_augment"] is True
    assert slow_record["lens"] is True
    args.filter_augment = args.lens = False
    args.lr = 0.0
    with pytest.raises(UserError, match=r"--lr 0\.0: a peak learning rate"):
        train_cli.run(args)
    args.lr = None
    # `--freeze audio`: the audio branch leaves the fine-tune exactly as it came (weights and
    # batch-norm statistics), the picture branch is trained; without --init it is refused.
    args.out, args.freeze, args.lost_picture = tmp_path / "frozen", ["audio"], True
    assert train_cli.run(args) == 0
    frozen_record = json.loads((args.out / "training.json").read_text())["train"]
    assert frozen_record["freeze"] == ["audio"]
    assert frozen_record["lost_picture"] is True
    before, after = load_checkpoint(out / "model.pt"), load_checkpoint(args.out / "model.pt")
    for key, value in before.audio.state_dict().items():
        assert torch.equal(value, after.audio.state_dict()[key]), key
    moved = [k for k, v in before.video.state_dict().items() if v.is_floating_point()]
    assert any(
        not torch.equal(before.video.state_dict()[k], after.video.state_dict()[k]) for k in moved
    )
    init, args.init = args.init, None
    with pytest.raises(UserError, match="--freeze keeps a branch of the --init checkpoint"):
        train_cli.run(args)
    args.init, args.freeze, args.lost_picture = init, [], False
    # A release from before the long frame difference: its stem is widened (zero weights).
    save_checkpoint(AVFusion(AVFusionConfig(long_diff=0)), tmp_path / "legacy.pt")
    args.init = tmp_path / "legacy.pt"
    assert train_cli.run(args) == 0
    save_checkpoint(AVFusion(AVFusionConfig(video_width=64)), tmp_path / "other.pt")
    args.init = tmp_path / "other.pt"
    with pytest.raises(UserError, match="shapes differ"):
        train_cli.run(args)
    args.init = tmp_path / "missing.pt"
    with pytest.raises(UserError, match="no such checkpoint"):
        train_cli.run(args)


def test_bad_labels_csv_is_one_clear_error(user_dir: Path) -> None:
    (user_dir / "labels.csv").write_text("file,start_s,end_s,label\na.mkv,0,1,unicorn\n")
    with pytest.raises(UserError, match=r"labels.csv:2: unknown label 'unicorn'"):
        load_user_dir(user_dir, SPEC)


def test_average_writes_one_calibrated_engine_from_fine_tunes(tmp_path: Path) -> None:
    bundled = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "avfusion"
    if not (bundled / "model.pt").exists():
        pytest.skip("no bundled avfusion model")
    nudged = tmp_path / "nudged"
    nudged.mkdir()
    model = load_checkpoint(bundled / "model.pt")
    with torch.no_grad():
        for q in model.head.parameters():
            q.add_(0.01)
    save_checkpoint(model, nudged / "model.pt")
    (nudged / "training.json").write_text((bundled / "training.json").read_text())
    out = tmp_path / "soup"
    args = argparse.Namespace(
        engines=[bundled, nudged],
        out=out,
        weights=None,
        cache=tmp_path / "cache",
        val_windows=64,
        no_eval=True,
    )
    assert average_cli.run(args) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["average"]["engines"] == [str(bundled), str(nudged)]
    assert record["average"]["val_windows"] == 64
    assert set(load_manifest(out).doc.thresholds) == set(LABELS)
    got = load_checkpoint(out / "model.pt").head.state_dict()
    for key, value in load_checkpoint(bundled / "model.pt").head.state_dict().items():
        if value.is_floating_point() and "running" not in key:
            assert torch.allclose(got[key], value + 0.005, atol=1e-6), key
    # Refused before any work: one engine, a directory without a model, other shapes.
    args.engines = [bundled]
    with pytest.raises(UserError, match="at least two"):
        average_cli.run(args)
    args.engines = [bundled, tmp_path]
    with pytest.raises(UserError, match=r"no model\.pt"):
        average_cli.run(args)
    other = tmp_path / "other"
    other.mkdir()
    save_checkpoint(AVFusion(AVFusionConfig(video_width=64)), other / "model.pt")
    (other / "training.json").write_text("{}")
    args.engines = [bundled, other]
    with pytest.raises(UserError, match="differ in shapes"):
        average_cli.run(args)
