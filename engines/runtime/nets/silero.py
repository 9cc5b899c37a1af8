"""Silero VAD for the torch backend: the 16 kHz network inside the package's TorchScript file.

The TorchScript model that `silero-vad` ships keeps its LSTM state and audio context inside the
module (one caller, one stream). Its inner 16 kHz network is a pure function of
`(input [B, 64 + 512], state [2, B, 128])`, the same contract as the ONNX file, so the engine
runtime carries state per stream for both backends and they can be checked against each other.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

SAMPLE_RATE = 16000


class SileroVAD16k(nn.Module):
    """`forward(input, state, sr) -> (output [B, 1], stateN [2, B, 128])`, stateless."""

    def __init__(self, network: Any) -> None:
        super().__init__()
        self.network = network

    def forward(
        self, input: torch.Tensor, state: torch.Tensor, sr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # `sr` is a manifest constant (16000): this network is the 16 kHz one.
        out, state_n = self.network(input, state)
        return out, state_n


def load_for_engine(engine_dir: Path | str) -> nn.Module:
    """The manifest's `torch_factory`: the package's TorchScript VAD, 16 kHz branch."""
    from importlib import resources

    path = resources.files("silero_vad") / "data" / "silero_vad.jit"
    # The package ships its torch model only as TorchScript, whose loader is now deprecated.
    with resources.as_file(path) as jit_path, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(jit_path), map_location="cpu")  # type: ignore[no-untyped-call]
    return SileroVAD16k(scripted._model)
