"""Log-mel spectrogram computed inside the graph, so the host hands over raw samples.

`torch.stft` and torchaudio's mel transform do not export reliably (DFT support in ONNX
exporters and in TensorRT's ONNX parser is partial), so the short-time Fourier transform is
built from reshapes and matmuls: the window is cut into hop-sized chunks and re-assembled into
frames (no gather), Hann-windowed, and transformed by a two-stage Cooley-Tukey DFT (`N = N1 *
N2`: a length-`N1` DFT as one matmul, a twiddle multiply, a length-`N2` DFT as a second matmul).
That is about a quarter of the multiply-adds of one dense DFT matmul (the front end was 29 % of
avfusion's CPU time as a `Conv1d` with the DFT basis as kernels). Power is re^2 + im^2, the mel
filterbank is a matmul (its rows in the DFT's output order), then a floored log. Everything
stays fp32: the power spectrum overflows fp16 and the floor (1e-6) flushes to zero there.

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


def dft_factors(n_fft: int) -> tuple[int, int]:
    """`(N1, N2)` with `N1 * N2 == n_fft` for the two-stage DFT: `N1 = 16` where it divides
    (512 = 16 x 32), else 1 (one dense DFT)."""
    n1 = 16 if n_fft % 16 == 0 and n_fft > 16 else 1
    return n1, n_fft // n1


def two_stage_dft(
    n_fft: int,
) -> tuple[dict[str, npt.NDArray[np.float64]], npt.NDArray[np.int64]]:
    """Constants of the Cooley-Tukey DFT of a real frame `x[n]`, `n = N2*n1 + n2`,
    `k = k1 + N1*k2`, for the bins `k <= n_fft // 2`:

    - `stage1` `[N1, 2*N1]`: `x[n1, n2]` over `n1` → `Y[n2, k1]` (real parts, then imaginary);
    - `twiddle_re`, `twiddle_im` `[N2, N1]`: `exp(-2 pi i n2 k1 / N)`;
    - `stage2` `[2*N2, 2*K2]`: `Z[k1, n2]` (real, then imaginary) over `n2` → `X[k1, k2]`;

    and the output order `[N1 * K2]`: the bin `k` of each output `(k1, k2)` (row-major), `-1`
    past Nyquist.
    """
    n1, n2 = dft_factors(n_fft)
    k2_count = (n_fft // 2) // n1 + 1
    a = 2.0 * np.pi * np.outer(np.arange(n1), np.arange(n1)) / n1  # [n1, k1]
    stage1 = np.concatenate([np.cos(a), -np.sin(a)], axis=1)
    t = -2.0 * np.pi * np.outer(np.arange(n2), np.arange(n1)) / n_fft  # [n2, k1]
    b = 2.0 * np.pi * np.outer(np.arange(n2), np.arange(k2_count)) / n2  # [n2, k2]
    c, s = np.cos(b), np.sin(b)
    # (zr + i zi)(c - i s) = (zr c + zi s) + i (zi c - zr s)
    stage2 = np.block([[c, -s], [s, c]])
    k = np.arange(n1)[:, None] + n1 * np.arange(k2_count)[None, :]  # [k1, k2]
    order = np.where(k <= n_fft // 2, k, -1).reshape(-1)
    consts = {"stage1": stage1, "twiddle_re": np.cos(t), "twiddle_im": np.sin(t), "stage2": stage2}
    return consts, order


class LogMel(nn.Module):
    """`[B, S]` float32 samples → `[B, 1, n_mels, frames]` log-mel power (natural log)."""

    window: torch.Tensor
    stage1: torch.Tensor
    twiddle_re: torch.Tensor
    twiddle_im: torch.Tensor
    stage2: torch.Tensor
    mel: torch.Tensor

    def __init__(self, spec: LogMelSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or LogMelSpec()
        self.n1, self.n2 = dft_factors(self.spec.n_fft)
        consts, order = two_stage_dft(self.spec.n_fft)
        # The mel filterbank's rows in the DFT's output order (zero rows past Nyquist).
        fb = mel_filterbank(self.spec)
        mel = np.where(order[:, None] >= 0, fb[np.maximum(order, 0)], 0.0)
        # Fixed front end, derived from the spec: not saved in checkpoints (persistent=False).
        consts.update(window=hann_window(self.spec.n_fft), mel=mel)
        for name, value in consts.items():
            self.register_buffer(name, torch.from_numpy(value.astype(np.float32)), persistent=False)

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """`[B, S]` → `[B, F, n_fft]` overlapping frames, from hop-sized chunks (slices and a
        concat: `n_fft = q * hop + r`, so frame `f` is chunks `f .. f+q-1` and the first `r`
        samples of chunk `f+q`)."""
        spec = self.spec
        count = spec.frames(audio.shape[-1])
        q, r = divmod(spec.n_fft, spec.hop)
        chunks = count - 1 + q + (1 if r else 0)
        need = chunks * spec.hop
        if audio.shape[-1] < need:  # the last chunk runs past the window: only r samples used
            audio = nn.functional.pad(audio, (0, need - audio.shape[-1]))
        c = audio[:, :need].reshape(audio.shape[0], chunks, spec.hop)
        parts = [c[:, j : j + count] for j in range(q)]
        if r:
            parts.append(c[:, q : q + count, :r])
        return torch.cat(parts, dim=2)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel of a batch of mono windows."""
        x = self.frames(audio.float()) * self.window  # [B, F, N]
        b, f = x.shape[0], x.shape[1]
        n1, n2 = self.n1, self.n2
        x = x.reshape(b, f, n1, n2).transpose(2, 3)  # [B, F, n2, n1]
        y = torch.matmul(x, self.stage1)  # [B, F, n2, 2*n1]: DFT over n1
        yr, yi = y[..., :n1], y[..., n1:]
        zr = yr * self.twiddle_re - yi * self.twiddle_im
        zi = yr * self.twiddle_im + yi * self.twiddle_re
        z = torch.cat([zr, zi], dim=2).transpose(2, 3)  # [B, F, n1, 2*n2]
        out = torch.matmul(z, self.stage2)  # [B, F, n1, 2*K2]: DFT over n2
        k2 = out.shape[-1] // 2
        power = out[..., :k2] * out[..., :k2] + out[..., k2:] * out[..., k2:]
        mel = torch.matmul(power.reshape(b, f, -1), self.mel)  # [B, F, n_mels]
        return torch.log(mel + LOG_FLOOR).transpose(1, 2).unsqueeze(1)


def logmel_numpy(audio: npt.NDArray[np.floating], spec: LogMelSpec) -> npt.NDArray[np.float64]:
    """Reference implementation with `np.fft.rfft` in float64: `[S]` → `[n_mels, frames]`."""
    frames = spec.frames(audio.shape[-1])
    idx = np.arange(spec.n_fft)[None, :] + spec.hop * np.arange(frames)[:, None]
    framed = audio.astype(np.float64)[idx] * hann_window(spec.n_fft)[None, :]
    power = np.abs(np.fft.rfft(framed, axis=-1)) ** 2  # [frames, bins]
    mel = power @ mel_filterbank(spec)  # [frames, n_mels]
    return np.asarray(np.log(mel + LOG_FLOOR).T)
