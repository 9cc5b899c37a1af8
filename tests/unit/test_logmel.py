"""The in-graph log-mel front end against an independent numpy/FFT implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.runtime.nets.avfusion import FRONT_END, AVFusion, load_checkpoint
from engines.runtime.nets.logmel import LOG_FLOOR, LogMel, LogMelSpec, logmel_numpy, mel_filterbank

pytestmark = pytest.mark.unit

SPEC = LogMelSpec()


def _signals() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(16000) / 16000.0
    chirp = 0.5 * np.sin(2 * np.pi * (300 + 1500 * t) * t)  # a siren-like sweep
    tone = 0.8 * np.sin(2 * np.pi * 1000.0 * t)
    noise = 0.1 * rng.standard_normal(16000)
    quiet = 1e-3 * rng.standard_normal(16000)  # near the log floor
    mixed = chirp + noise
    return np.stack([chirp, tone, noise, quiet, mixed]).astype(np.float32)


def test_shape_and_frames() -> None:
    out = LogMel(SPEC)(torch.zeros(3, 16000))
    assert out.shape == (3, 1, SPEC.n_mels, SPEC.frames(16000))
    assert SPEC.frames(16000) == 97
    # Silence sits exactly on the floor rather than at -inf.
    assert torch.allclose(out, torch.full_like(out, float(np.log(LOG_FLOOR))))


def test_matches_numpy_within_1e3_relative() -> None:
    audio = _signals()
    got = LogMel(SPEC)(torch.from_numpy(audio)).squeeze(1).numpy().astype(np.float64)
    for row, signal in zip(got, audio, strict=True):
        ref = logmel_numpy(signal, SPEC)
        rel = np.abs(row - ref) / np.maximum(np.abs(ref), 1.0)
        assert rel.max() <= 1e-3, f"max relative error {rel.max():.2e}"
        # In the linear (power) domain too, wherever the signal is well above the floor.
        p_got, p_ref = np.exp(row), np.exp(ref)
        loud = p_ref > 1e-2
        assert np.all(np.abs(p_got - p_ref)[loud] <= 1e-3 * p_ref[loud])


def test_tone_lands_in_the_right_mel_bin() -> None:
    t = np.arange(16000) / 16000.0
    tone = np.sin(2 * np.pi * 2000.0 * t).astype(np.float32)
    out = LogMel(SPEC)(torch.from_numpy(tone)[None]).squeeze().numpy()
    peak_bin = int(out.mean(axis=1).argmax())
    fb = mel_filterbank(SPEC)
    fft_bin = round(2000.0 / (SPEC.sample_rate / SPEC.n_fft))
    assert peak_bin == int(fb[fft_bin].argmax())


def test_filterbank_covers_band() -> None:
    fb = mel_filterbank(SPEC)
    assert fb.shape == (SPEC.n_fft // 2 + 1, SPEC.n_mels)
    assert np.all(fb >= 0)
    assert np.all(fb.sum(axis=0) > 0), "every mel filter has support"


@pytest.mark.parametrize(
    ("n_fft", "samples"),
    [(400, 16000), (400, 16100), (200, 8000), (512, 12345)],
    ids=["400-fits", "400-padded", "dense-dft", "512-odd-length"],
)
def test_other_geometries_match_numpy(n_fft: int, samples: int) -> None:
    """Frame assembly from chunks (with the padded last chunk) and the two-stage DFT (and its
    one-stage fallback when 16 does not divide n_fft) for other front ends."""
    spec = LogMelSpec(n_fft=n_fft, hop=160, n_mels=40)
    rng = np.random.default_rng(3)
    audio = (0.3 * rng.standard_normal(samples)).astype(np.float32)
    got = LogMel(spec)(torch.from_numpy(audio)[None]).squeeze().numpy().astype(np.float64)
    ref = logmel_numpy(audio, spec)
    assert got.shape == ref.shape == (spec.n_mels, spec.frames(samples))
    assert np.abs(got - ref).max() <= 1e-3


def test_frames_are_the_strided_windows() -> None:
    audio = torch.arange(16000, dtype=torch.float32)[None]
    frames = LogMel(SPEC).frames(audio)[0]
    assert frames.shape == (97, SPEC.n_fft)
    for f in (0, 1, 50, 96):
        start = f * SPEC.hop
        assert torch.equal(frames[f], audio[0, start : start + SPEC.n_fft])


def test_checkpoints_with_the_old_front_end_constants_load(tmp_path: Path) -> None:
    """Checkpoints saved when the front end kept its DFT basis in the state dict still load."""
    model = AVFusion()
    state = model.state_dict()
    assert not any(k.startswith(FRONT_END) for k in state)
    state["audio.logmel.basis"] = torch.zeros(514, 1, 512)
    state["audio.logmel.mel"] = torch.zeros(257, 64)
    torch.save({"config": model.cfg.to_dict(), "state_dict": state}, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt")
    audio = torch.randn(2, 16000) * 0.1
    assert torch.equal(loaded.audio.logmel(audio), model.audio.logmel(audio))
