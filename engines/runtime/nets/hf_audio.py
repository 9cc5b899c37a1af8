"""Audio classifiers from `transformers` checkpoints, with their feature extraction in the graph.

`AudioClassifier` takes the engine's audio input (float32 `[B, S]`, mono, at the checkpoint's
sampling rate) and returns the classifier's logits, doing in torch what the checkpoint's
feature extractor does in numpy, so that the ONNX export needs no preprocessing outside it:

- waveform models (wav2vec2, HuBERT, WavLM, data2vec-audio, UniSpeech, SEW): zero-mean,
  unit-variance normalisation per window when the extractor has `do_normalize`;
- the Audio Spectrogram Transformer (AST): Kaldi-style log-mel filter banks (25 ms frames every
  10 ms, DC offset removed, pre-emphasis 0.97, Hann window, 512-point power spectrum, the
  extractor's own mel matrix, natural log), zero-padded or cut to `max_length` frames, then
  normalised with the AudioSet mean and standard deviation. The DFT is two matrix products
  (cosine and sine), which every ONNX backend runs.

`load_for_engine` is the `torch_factory` of imported engines: it rebuilds the module from the
checkpoint copy in the engine directory (`checkpoint/`), so that `engines verify` compares the
source framework with ONNX Runtime. `transformers` is needed only here (the `importers` extra).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT = "checkpoint"
AST = "audio-spectrogram-transformer"
WAVEFORM = (
    "wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "unispeech",
    "unispeech-sat", "sew", "sew-d",
)  # fmt: skip
SUPPORTED = (AST, *WAVEFORM)


class KaldiFbank(nn.Module):
    """AST's feature extractor (its numpy path) in torch: `[B, S]` → `[B, max_length, mels]`."""

    index: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    mels: torch.Tensor

    def __init__(self, extractor: Any, samples: int) -> None:
        super().__init__()
        from transformers.audio_utils import mel_filter_bank, window_function

        frame, hop, fft = 400, 160, 512
        frames = 1 + (samples - frame) // hop
        if frames < 1:
            raise ValueError(f"{samples} samples is shorter than one 25 ms frame")
        with warnings.catch_warnings():  # AST's 128 Kaldi mels leave the lowest filters empty
            warnings.simplefilter("ignore", UserWarning)
            mels = mel_filter_bank(
                num_frequency_bins=fft // 2 + 1, num_mel_filters=extractor.num_mel_bins,
                min_frequency=20, max_frequency=extractor.sampling_rate // 2,
                sampling_rate=extractor.sampling_rate, norm=None, mel_scale="kaldi",
                triangularize_in_mel_space=True,
            )  # fmt: skip
        window = window_function(frame, "hann", periodic=False)
        k = np.arange(fft // 2 + 1)
        n = np.arange(frame)[:, None]
        # The window is folded into the DFT matrices: frame * w, then DFT, is frame @ (w * DFT).
        cos = window[:, None] * np.cos(2 * math.pi * n * k / fft)
        sin = window[:, None] * -np.sin(2 * math.pi * n * k / fft)
        index = np.arange(frames)[:, None] * hop + np.arange(frame)[None, :]
        self.register_buffer("index", torch.from_numpy(index.reshape(-1)).long())
        self.register_buffer("cos", torch.from_numpy(cos).float())
        self.register_buffer("sin", torch.from_numpy(sin).float())
        self.register_buffer("mels", torch.from_numpy(np.asarray(mels)).float())
        self.frames, self.frame = frames, frame
        self.max_length = int(extractor.max_length)
        self.mean, self.std = float(extractor.mean), float(extractor.std)
        self.normalize = bool(extractor.do_normalize)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        b = audio.shape[0]
        x = audio.index_select(1, self.index).reshape(b, self.frames, self.frame)
        x = x - x.mean(dim=-1, keepdim=True)
        x = torch.cat([x[..., :1] * (1 - 0.97), x[..., 1:] - 0.97 * x[..., :-1]], dim=-1)
        power = (x @ self.cos) ** 2 + (x @ self.sin) ** 2
        logmel = torch.log(torch.clamp(power @ self.mels, min=1.192092955078125e-07))
        if self.frames < self.max_length:
            pad = logmel.new_zeros(b, self.max_length - self.frames, logmel.shape[-1])
            logmel = torch.cat([logmel, pad], dim=1)
        else:
            logmel = logmel[:, : self.max_length]
        if self.normalize:
            logmel = (logmel - self.mean) / (self.std * 2)
        return logmel


class WaveNorm(nn.Module):
    """Waveform models' extractor: per-window zero mean and unit variance (when enabled)."""

    def __init__(self, extractor: Any) -> None:
        super().__init__()
        self.normalize = bool(getattr(extractor, "do_normalize", False))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return audio
        mean = audio.mean(dim=1, keepdim=True)
        var = ((audio - mean) ** 2).mean(dim=1, keepdim=True)
        return (audio - mean) / torch.sqrt(var + 1e-7)


class AudioClassifier(nn.Module):
    """`forward(audio [B, S]) -> logits [B, classes]`: front end, then the checkpoint's model."""

    def __init__(self, model: Any, extractor: Any, samples: int) -> None:
        super().__init__()
        kind = model.config.model_type
        self.front: nn.Module = (
            KaldiFbank(extractor, samples) if kind == AST else WaveNorm(extractor)
        )
        self.model = model.eval()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_values=self.front(audio)).logits
        return logits


def load_for_engine(engine_dir: Path | str) -> nn.Module:
    """The `torch_factory` of imported audio engines (see the module docstring)."""
    import tomllib

    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    root = Path(engine_dir)
    doc = tomllib.loads((root / "engine.toml").read_text())
    samples = int(next(iter(doc["inputs"].values()))["shape"][1])
    model = AutoModelForAudioClassification.from_pretrained(root / CHECKPOINT)
    extractor = AutoFeatureExtractor.from_pretrained(root / CHECKPOINT)
    return AudioClassifier(model, extractor, samples).eval()
