"""Log-mel spectrogram computed inside the graph, so the host hands over raw samples.

`torch.stft` and torchaudio's mel transform do not export reliably (DFT support in ONNX
exporters and in TensorRT's ONNX parser is partial), so the short-time Fourier transform is a
`Conv1d` whose fixed kernels are the Hann-windowed cosine and sine DFT basis vectors; power is
re^2 + im^2, the mel filterbank is a matmul, then a floored log. Everything stays fp32: the power
spectrum overflows fp16 and the floor (1e-6) flushes to zero there.

`mel_filterbank` and the constants are plain numpy so that tests can check the graph against an
independent `np.fft.rfft` implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

LOG_FLOOR = 1e-6  # power floor before the log: silence maps to log(1e-6) ≈ -13.8, not -inf


@dataclass(frozen=True, slots=True)
class LogMelSpec:
    """Front-end settings: PANNs-style 64 mel bins at 16 kHz, 32 ms frames every 10 ms."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 160
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0

    def frames(self, samples: int) -> int:
        """Number of STFT frames for `samples` input samples (no padding: only full frames)."""
        return 1 + (samples - self.n_fft) // self.hop


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(spec: LogMelSpec) -> npt.NDArray[np.float64]:
    """Triangular HTK-mel filters `[n_fft//2 + 1, n_mels]`, each normalised to unit area."""
    bins = spec.n_fft // 2 + 1
    freqs = np.linspace(0.0, spec.sample_rate / 2.0, bins)
    edges_mel = np.linspace(
        _hz_to_mel(np.array(spec.f_min)), _hz_to_mel(np.array(spec.f_max)), spec.n_mels + 2
    )
    edges = _mel_to_hz(edges_mel)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, bins]
    # Slaney-style area normalisation keeps wide high-frequency filters from dominating.
    weights *= (2.0 / (upper - lower))[:, :]
    return np.ascontiguousarray(weights.T)


def hann_window(n_fft: int) -> npt.NDArray[np.float64]:
    """Periodic Hann window (the STFT convention)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def dft_basis(n_fft: int) -> npt.NDArray[np.float64]:
    """Windowed DFT kernels `[2 * (n_fft//2 + 1), 1, n_fft]`: cosines, then sines."""
    bins = n_fft // 2 + 1
    n = np.arange(n_fft)[None, :]
    k = np.arange(bins)[:, None]
    angle = 2.0 * np.pi * k * n / n_fft
    window = hann_window(n_fft)[None, :]
    kernels = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window], axis=0)
    return kernels[:, None, :]


class LogMel(nn.Module):
    """`[B, S]` float32 samples → `[B, 1, n_mels, frames]` log-mel power (natural log)."""

    basis: torch.Tensor
    mel: torch.Tensor

    def __init__(self, spec: LogMelSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or LogMelSpec()
        self.bins = self.spec.n_fft // 2 + 1
        # Buffers, not parameters: the front end is fixed, and it travels in the state dict.
        self.register_buffer(
            "basis", torch.from_numpy(dft_basis(self.spec.n_fft).astype(np.float32))
        )
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(self.spec).astype(np.float32)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel of a batch of mono windows."""
        x = audio.float().unsqueeze(1)  # [B, 1, S]
        spectrum = nn.functional.conv1d(x, self.basis, stride=self.spec.hop)  # [B, 2*bins, F]
        real, imag = spectrum[:, : self.bins], spectrum[:, self.bins :]
        power = real * real + imag * imag  # [B, bins, F]
        mel = torch.matmul(power.transpose(1, 2), self.mel)  # [B, F, n_mels]
        return torch.log(mel + LOG_FLOOR).transpose(1, 2).unsqueeze(1)


def logmel_numpy(audio: npt.NDArray[np.floating], spec: LogMelSpec) -> npt.NDArray[np.float64]:
    """Reference implementation with `np.fft.rfft` in float64: `[S]` → `[n_mels, frames]`."""
    frames = spec.frames(audio.shape[-1])
    idx = np.arange(spec.n_fft)[None, :] + spec.hop * np.arange(frames)[:, None]
    framed = audio.astype(np.float64)[idx] * hann_window(spec.n_fft)[None, :]
    power = np.abs(np.fft.rfft(framed, axis=-1)) ** 2  # [frames, bins]
    mel = power @ mel_filterbank(spec)  # [frames, n_mels]
    return np.asarray(np.log(mel + LOG_FLOOR).T)
