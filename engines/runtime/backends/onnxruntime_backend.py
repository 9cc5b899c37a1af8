"""ONNX Runtime backend: CPU everywhere, CUDA when its provider really loads.

ONNX Runtime silently falls back to CPU when a GPU provider's libraries are missing, so the
provider reported is the one the session really got (`get_providers()[0]`), never the request.
The TensorRT execution provider is not requested: the `tensorrt` backend builds and caches
TensorRT engines itself, with the cache keys and progress logging this project needs.

Threads: one intra-op thread by default on a machine with at most 4 cores. The service runs
one executor thread per engine, and engines are small; on a 2-core box two engines each with
one thread use both cores without oversubscription (ONNX Runtime's default, one thread per core
per session, makes concurrent sessions fight). Override with `threads` (the service passes
`engines.onnxruntime_threads`): one engine alone on a 2-core box runs avfusion at batch 8 about
faster on 2 threads when the second core is idle (README, Performance). With the second core
busy, 2 spinning threads halve the rate (each waits on the other's core); `spinning=False`
(`engines.onnxruntime_spinning`) lets them sleep and keeps the one-thread rate there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from engines.runtime.backends.base import Arrays, Backend, importable, supports_onnx
from engines.runtime.interface import EngineError
from engines.runtime.manifest import Manifest

logger = logging.getLogger(__name__)

GPU_PROVIDERS = ("CUDAExecutionProvider",)
SPINNING_KEY = "session.intra_op.allow_spinning"


def default_threads() -> int:
    """Intra-op threads per session: 1 on small machines, up to 4 on big ones."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else min(4, cores // 4)


class OnnxRuntimeBackend(Backend):
    """Runs the engine's ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(
        self, threads: int | None = None, use_gpu: bool = True, spinning: bool = True
    ) -> None:
        """`threads`: intra-op threads of the session; None or 0 = `default_threads()`.

        `spinning`: with more than one thread, ONNX Runtime's threads spin-wait for work between
        operators (its default). False lets them sleep: on cores shared with other work a spinning
        thread holds the core that the thread it waits for needs.
        """
        if threads is not None and threads < 0:
            raise ValueError(f"onnxruntime threads must be >= 0 (0 = auto), not {threads}")
        self._threads = threads or default_threads()
        self._spinning = spinning
        self._use_gpu = use_gpu
        self._session: Any = None
        self._outputs: list[str] = []

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """ONNX Runtime imports."""
        return importable("onnxruntime")

    @classmethod
    def supports(cls, manifest: Manifest) -> tuple[bool, str]:
        """Needs an ONNX model file."""
        return supports_onnx(manifest)

    def load(self, manifest: Manifest, cache_dir: Path) -> None:
        """Open an inference session on the best provider that really loads."""
        import onnxruntime as ort

        ok, why = self.supports(manifest)
        if not ok:
            raise EngineError(f"{manifest.name}: {why}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.add_session_config_entry(SPINNING_KEY, "1" if self._spinning else "0")
        cores = os.cpu_count() or 1
        if self._threads > cores:
            logger.warning(
                "onnxruntime for %s: %d intra-op threads on %d cores (oversubscribed)",
                manifest.name,
                self._threads,
                cores,
            )
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # unused-initializer warnings from exporters are noise
        have = set(ort.get_available_providers())
        wanted = [p for p in GPU_PROVIDERS if self._use_gpu and p in have]
        providers = [*wanted, "CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(
                str(manifest.model_path), sess_options=opts, providers=providers
            )
        except Exception as exc:  # ORT raises its own untyped errors for bad graphs
            raise EngineError(f"{manifest.name}: onnxruntime cannot load the model: {exc}") from exc
        got = self._session.get_providers()
        if wanted and got[0] != wanted[0]:
            logger.warning(
                "onnxruntime for %s fell back from %s to %s", manifest.name, wanted[0], got[0]
            )
        self._manifest = manifest
        self._outputs = list(manifest.graph_outputs)

    def infer(self, inputs: Arrays) -> Arrays:
        """Run the session; outputs as float32 host arrays."""
        if self._session is None:
            raise EngineError("onnxruntime backend used before load()")
        try:
            values = self._session.run(self._outputs, inputs)
        except Exception as exc:  # invalid shapes/dtypes surface here as ORT errors
            raise EngineError(f"{self.manifest.name}: onnxruntime run failed: {exc}") from exc
        return {
            k: np.asarray(v, dtype=np.float32) for k, v in zip(self._outputs, values, strict=True)
        }

    @property
    def threads(self) -> int:
        """Intra-op threads: read back from the session once loaded, else the one requested."""
        if self._session is not None:
            return int(self._session.get_session_options().intra_op_num_threads)
        return self._threads

    @property
    def spinning(self) -> bool:
        """Whether the intra-op threads spin-wait: read back from the session once loaded."""
        if self._session is not None:
            options = self._session.get_session_options()
            return bool(options.get_session_config_entry(SPINNING_KEY) == "1")
        return self._spinning

    def describe(self) -> dict[str, Any]:
        """Provider that really runs, device, thread count, versions."""
        import onnxruntime as ort

        providers = self._session.get_providers() if self._session is not None else []
        return {
            "backend": self.name,
            "provider": providers[0] if providers else None,
            "providers": providers,
            "device": "cuda" if providers and providers[0] in GPU_PROVIDERS else "cpu",
            "intra_op_threads": self.threads,
            "intra_op_spinning": self.spinning,
            "onnxruntime": ort.__version__,
        }

    def close(self) -> None:
        """Drop the session."""
        self._session = None
