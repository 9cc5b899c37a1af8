"""The in-graph log-mel front end against an independent numpy/FFT implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
