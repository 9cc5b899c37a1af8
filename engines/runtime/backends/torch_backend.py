"""PyTorch backend: runs the engine's `torch_factory` module, eager or compiled.

The factory (`module:callable` in the manifest) is called with the engine directory and returns
an `nn.Module` whose `forward` takes the graph's input names as keyword arguments and returns a
tensor (the first declared output), a tuple (declared outputs in order) or a dict by name.

CUDA is used when available. With `precision = "fp16"` the module runs under fp16 autocast on
CUDA (bf16 where the GPU supports it and `autocast_dtype="bfloat16"`); a model keeps its
numerically fragile front end (log-mel) in fp32 by disabling autocast around it itself.
`torch.compile` is off by default: on a CPU its compile time dwarfs the gain for small models.

CPU threads: like the ONNX Runtime backend, one intra-op thread on machines with at most 4
cores (`threads` overrides). Measured on the project's shared 2-core box, avfusion at batch 1:
p99 15 ms with one thread, 145 ms with torch's default of one per core (the threads contend
with the service's other work). `torch.set_num_threads` is process-wide: it is only lowered,
never raised, and only when the module runs on the CPU.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engines.runtime.backends.base import Arrays, Backend, importable
from engines.runtime.backends.onnxruntime_backend import default_threads
from engines.runtime.interface import EngineError
from engines.runtime.manifest import Manifest


def import_factory(ref: str) -> Callable[[Path], Any]:
    """Resolve `"package.module:callable"`."""
    module_name, _, attr = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EngineError(f"torch_factory {ref!r} cannot be imported: {exc}") from exc
    if not callable(factory):
        raise EngineError(f"torch_factory {ref!r} is not callable")
    return factory  # type: ignore[no-any-return]


class TorchBackend(Backend):
    """Runs an `nn.Module` built by the manifest's `torch_factory`."""

    name = "torch"

    def __init__(
        self,
        device: str | None = None,
        compile: bool = False,
        autocast_dtype: str = "float16",
        threads: int | None = None,
    ) -> None:
        self._threads = threads or default_threads()
        self._device_name = device
        self._compile = compile
        self._autocast_dtype = autocast_dtype
        self._module: Any = None
        self._device: Any = None
        self._compile_s = 0.0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """PyTorch imports."""
        return importable("torch")

    @classmethod
    def supports(cls, manifest: Manifest) -> tuple[bool, str]:
        """Needs a `torch_factory` in the manifest."""
        if not manifest.doc.engine.torch_factory:
            return False, "the manifest has no torch_factory"
        return True, ""

    def load(self, manifest: Manifest, cache_dir: Path) -> None:
        """Build the module, move it to the device, compile when asked."""
        import torch

        ok, why = self.supports(manifest)
        if not ok:
            raise EngineError(f"{manifest.name}: {why}")
        factory = import_factory(str(manifest.doc.engine.torch_factory))
        try:
            module = factory(manifest.dir)
        except Exception as exc:  # a user's factory: report whatever it raised
            raise EngineError(f"{manifest.name}: torch_factory failed: {exc}") from exc
        if not isinstance(module, torch.nn.Module):
            raise EngineError(f"{manifest.name}: torch_factory did not return an nn.Module")
        cuda = torch.cuda.is_available()
        self._device = torch.device(self._device_name or ("cuda" if cuda else "cpu"))
        module = module.eval().to(self._device)
        if self._device.type == "cpu" and torch.get_num_threads() > self._threads:
            torch.set_num_threads(self._threads)
        if self._compile:
            module = torch.compile(module)
        self._module = module
        self._manifest = manifest

    def warmup(self, batch_sizes: tuple[int, ...]) -> None:
        """Warm every size (with `compile`, this is where compilation happens: timed)."""
        start = time.perf_counter()
        super().warmup(batch_sizes)
        self._compile_s = time.perf_counter() - start if self._compile else 0.0

    def infer(self, inputs: Arrays) -> Arrays:
        """Run the module under inference mode (and autocast for fp16 on CUDA)."""
        import torch

        if self._module is None:
            raise EngineError("torch backend used before load()")
        tensors = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(self._device) for k, v in inputs.items()
        }
        autocast = self.manifest.doc.engine.precision == "fp16" and self._device.type == "cuda"
        dtype = torch.bfloat16 if self._autocast_dtype == "bfloat16" else torch.float16
        try:
            with (
                torch.inference_mode(),
                torch.autocast(self._device.type, dtype=dtype, enabled=autocast),
            ):
                result = self._module(**tensors)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise EngineError(f"{self.manifest.name}: torch forward failed: {exc}") from exc
        return self._to_outputs(result)

    def _to_outputs(self, result: Any) -> Arrays:
        names = list(self.manifest.graph_outputs)
        if isinstance(result, dict):
            pairs = [(n, result[n]) for n in names if n in result]
        elif isinstance(result, tuple | list):
            pairs = list(zip(names, result, strict=False))
        else:
            pairs = [(names[0], result)]
        return {n: t.detach().float().cpu().numpy() for n, t in pairs}

    def describe(self) -> dict[str, Any]:
        """Device, compile state, autocast, versions."""
        import torch

        device = str(self._device) if self._device is not None else None
        return {
            "backend": self.name,
            "provider": f"torch-{'compiled' if self._compile else 'eager'}",
            "device": device,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "compiled": self._compile,
            "cpu_threads": torch.get_num_threads(),
            "compile_s": round(self._compile_s, 3),
            "autocast": self._manifest is not None
            and self._manifest.doc.engine.precision == "fp16"
            and device is not None
            and device.startswith("cuda"),
            "torch": torch.__version__,
        }

    def close(self) -> None:
        """Drop the module."""
        self._module = None
