"""Shared engine test material: a minimal TOML writer and a tiny real ONNX graph + manifest."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper


def to_toml(doc: dict[str, Any]) -> str:
    """Minimal TOML writer for manifests (tables of scalars and flat arrays)."""

    def value(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if prefix and (scalars or not body):
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(lines) + "\n"


def tiny_onnx(
    path: Path,
    frames: int = 4,
    samples: int = 1600,
    labels: int = 2,
    audio_type: int = TensorProto.FLOAT,
) -> None:
    """A real ONNX graph: video [B,T,8,8,3] uint8 + audio [B,S] -> scores [B,labels]."""
    video = helper.make_tensor_value_info("video", TensorProto.UINT8, ["batch", frames, 8, 8, 3])
    audio = helper.make_tensor_value_info("audio", audio_type, ["batch", samples])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", labels])
    axes_v = helper.make_tensor("axes_v", TensorProto.INT64, [4], [1, 2, 3, 4])
    axes_a = helper.make_tensor("axes_a", TensorProto.INT64, [1], [1])
    reps = helper.make_tensor("reps", TensorProto.INT64, [2], [1, labels])
    nodes = [
        helper.make_node("Cast", ["video"], ["vf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["vf", "axes_v"], ["vm"], keepdims=0),
        helper.make_node("Cast", ["audio"], ["af"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["af", "axes_a"], ["am"], keepdims=0),
        helper.make_node("Add", ["vm", "am"], ["s"]),
        helper.make_node("Unsqueeze", ["s", "axes_a"], ["s2"]),
        helper.make_node("Tile", ["s2", "reps"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [video, audio], [scores], initializer=[axes_v, axes_a, reps]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


BASE: dict[str, Any] = {
    "engine": {
        "name": "tiny",
        "version": "0.1.0",
        "model": "model.onnx",
        "batch_sizes": [1, 4, 2],
        "budget_ms": 100,
    },
    "window": {"length_s": 0.5, "hop_s": 0.25},
    "inputs": {
        "video": {"role": "video", "dtype": "uint8", "shape": ["B", 4, 8, 8, 3], "fps": 8.0},
        "audio": {"role": "audio", "dtype": "float32", "shape": ["B", 1600], "sample_rate": 3200},
    },
    "outputs": {"scores": {"labels": ["a", "b"], "activation": "sigmoid"}},
    "thresholds": {"b": {"on": 0.7}},
}


MODEL_SOURCE = '''
"""A user's tiny audio-visual model (written by the test)."""
from pathlib import Path

import torch
from torch import nn


class TinyAV(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.v = nn.Linear(48, 4)
        self.a = nn.Linear(40, 4)
        self.head = nn.Linear(8, 3)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        # Strided pixels and samples: every row of a batch gives different features.
        v = video[:, :, ::4, ::4, :].float().div(255.0).flatten(1)
        a = audio[:, ::40]
        return self.head(torch.cat([torch.tanh(self.v(v)), torch.tanh(self.a(a))], dim=1))


def load(engine_dir: Path) -> nn.Module:
    model = TinyAV()
    model.load_state_dict(torch.load(engine_dir / "model.pt", weights_only=True))
    return model


def broken(engine_dir: Path) -> nn.Module:
    raise RuntimeError("weights are corrupt")
'''

USER_MANIFEST: dict[str, Any] = {
    "engine": {
        "name": "tiny-user",
        "version": "0.1.0",
        "description": "a user's engine built by the test",
        "model": "model.onnx",
        "torch_factory": "tiny_user_model:load",
        "batch_sizes": [1, 2, 4],
        "budget_ms": 120,
    },
    "window": {"length_s": 0.5, "hop_s": 0.25},
    "inputs": {
        "video": {"role": "video", "dtype": "uint8", "shape": ["B", 4, 8, 8, 3], "fps": 8.0},
        "audio": {"role": "audio", "dtype": "float32", "shape": ["B", 1600], "sample_rate": 3200},
    },
    "outputs": {"scores": {"labels": ["x", "y", "z"], "activation": "sigmoid"}},
}


def build_user_engine(root: Path) -> Path:
    """Write `root/tiny-user`: a torch model (source + state dict), its ONNX export, a manifest.

    The engine directory goes on `sys.path` so that its `torch_factory` imports; the caller
    removes it (and `tiny_user_model` from `sys.modules`) when done.
    """
    import torch

    engine_dir = root / "tiny-user"
    engine_dir.mkdir()
    (engine_dir / "tiny_user_model.py").write_text(textwrap.dedent(MODEL_SOURCE))
    sys.path.insert(0, str(engine_dir))
    module = importlib.import_module("tiny_user_model")
    torch.manual_seed(0)
    model = module.TinyAV().eval()
    torch.save(model.state_dict(), engine_dir / "model.pt")
    batch = torch.export.Dim("batch", min=1, max=64)
    example = (torch.zeros(2, 4, 8, 8, 3, dtype=torch.uint8), torch.zeros(2, 1600))
    with warnings.catch_warnings():  # the exporter's own deprecation chatter, not ours
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            model,
            example,
            str(engine_dir / "model.onnx"),
            input_names=["video", "audio"],
            output_names=["scores"],
            dynamic_shapes={"video": {0: batch}, "audio": {0: batch}},
            opset_version=18,
            verbose=False,
        )
    (engine_dir / "engine.toml").write_text(to_toml(USER_MANIFEST))
    return engine_dir


@contextlib.contextmanager
def user_engines(root: Path) -> Iterator[Path]:
    """`root` as a user engine directory holding tiny-user, importable until the block ends."""
    engine_dir = build_user_engine(root)
    try:
        yield root
    finally:
        sys.path.remove(str(engine_dir))
        sys.modules.pop("tiny_user_model", None)
