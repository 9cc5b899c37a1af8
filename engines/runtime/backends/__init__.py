"""Inference backends, registered explicitly by name.

The service tries them in the configured preference order (`settings.engines.backends`) and
keeps the first that is available here, supports the engine and warms up.
"""

from __future__ import annotations

from engines.runtime.backends.base import Backend
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.runtime.backends.tensorrt_backend import TensorRTBackend
from engines.runtime.backends.torch_backend import TorchBackend

BACKENDS: dict[str, type[Backend]] = {
    "tensorrt": TensorRTBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "torch": TorchBackend,
}

__all__ = ["BACKENDS", "Backend"]
