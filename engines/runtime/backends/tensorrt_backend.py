"""TensorRT backend (10.12+ and 11): strongly typed build from ONNX, cached; torch CUDA I/O.

Build: a strongly typed network (precision comes from the ONNX graph: TensorRT 11 has no
FP16/INT8 builder flags), parsed with `OnnxParser`, one optimisation profile over the manifest's
batch sizes (see `tensorrt_cache`), a workspace memory-pool limit, a timing cache file shared
across builds, and progress logged phase by phase. The serialized plan is cached under a key of
ONNX sha256, TensorRT version, GPU name, compute capability, precision and profile; a plan that
fails to deserialize (`None`: another TensorRT or driver) is rebuilt.

Inference: name-based I/O (`set_input_shape`, `set_tensor_address`) on torch CUDA tensors and
`execute_async_v3` on a dedicated CUDA stream, its boolean result checked. Each calling thread
gets its own execution context and stream (a context is not safe to share between callers).
With `cuda_graphs=True` (opt-in), the first call of each input shape runs eagerly and captures
a CUDA graph (its own context and static buffers); later calls copy inputs in and replay it,
which removes per-kernel launch cost for small batches.

TensorRT is imported only here and only when used; without it (every CPU machine) `available()`
says why. The device side goes through `DeviceOps` so that the build/run call sequence is tested
on a CPU against a fake `tensorrt` module.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.runtime.backends.base import Arrays, Backend, supports_onnx
from engines.runtime.backends.tensorrt_cache import (
    CacheKey,
    derive_profile,
    engine_file,
    file_sha256,
    timing_cache_file,
)
from engines.runtime.backends.tensorrt_device import DeviceOps, TorchCudaOps
from engines.runtime.interface import EngineError
from engines.runtime.manifest import Manifest

logger = logging.getLogger(__name__)

WORKSPACE_BYTES = 2 << 30  # 2 GiB: ample for small CNNs, bounded so builds do not take the GPU


@dataclass(slots=True)
class _Captured:
    """A CUDA graph for one input shape, with the context and buffers baked into it."""

    context: Any
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    graph: Any


def _import_tensorrt() -> Any:
    import tensorrt

    return tensorrt


class TensorRTBackend(Backend):
    """Builds (or loads from cache) a TensorRT engine for the manifest's ONNX file and runs it."""

    name = "tensorrt"

    def __init__(
        self,
        device: DeviceOps | None = None,
        workspace_bytes: int = WORKSPACE_BYTES,
        cuda_graphs: bool = False,
    ) -> None:
        self._device = device
        self._cuda_graphs = cuda_graphs
        self._workspace = workspace_bytes
        self._trt: Any = None
        self._engine: Any = None
        self._local = threading.local()
        self._info: dict[str, Any] = {}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """TensorRT imports and a CUDA device is visible to torch."""
        try:
            trt = _import_tensorrt()
        except Exception as exc:  # broken installs raise OSError etc., not only ImportError
            return False, f"tensorrt does not import ({type(exc).__name__}: {exc})"
        try:
            import torch

            if not torch.cuda.is_available():
                return False, "no CUDA device"
        except ImportError:
            return False, "torch (CUDA tensors for I/O) does not import"
        return True, f"TensorRT {trt.__version__}"

    @classmethod
    def supports(cls, manifest: Manifest) -> tuple[bool, str]:
        """Needs an ONNX model file."""
        return supports_onnx(manifest)

    def load(self, manifest: Manifest, cache_dir: Path) -> None:
        """Deserialize the cached plan for this key, else build, cache and deserialize it."""
        ok, why = self.supports(manifest)
        if not ok:
            raise EngineError(f"{manifest.name}: {why}")
        trt = self._trt = _import_tensorrt()
        device = self._device = self._device or TorchCudaOps()
        assert manifest.model_path is not None
        profile = derive_profile(manifest)
        key = CacheKey.create(
            onnx_sha256=file_sha256(manifest.model_path),
            tensorrt_version=str(trt.__version__),
            gpu_name=device.gpu_name(),
            compute_capability=device.compute_capability(),
            precision=manifest.doc.engine.precision,
            profile=profile,
        )
        plan_path = engine_file(cache_dir, manifest.name, key)
        trt_logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(trt_logger)
        engine, cached = None, plan_path.is_file()
        if cached:
            engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if engine is None:
                logger.warning("cached TensorRT engine %s rejected; rebuilding", plan_path)
        if engine is None:
            plan = self._build(trt, trt_logger, manifest, key, cache_dir)
            _write_atomic(plan_path, plan)
            plan_path.with_suffix(".json").write_text(key.to_json())
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise EngineError(
                    f"{manifest.name}: TensorRT cannot deserialize the engine it built"
                )
            cached = False
        self._engine, self._runtime, self._manifest = engine, runtime, manifest
        self._info = {"plan": str(plan_path), "from_cache": cached, "key": key.digest()[:24]}

    def _build(
        self, trt: Any, trt_logger: Any, manifest: Manifest, key: CacheKey, cache_dir: Path
    ) -> bytes:
        """Parse the ONNX file into a strongly typed network and build a serialized plan."""
        start = time.perf_counter()
        logger.info("building TensorRT engine %s (minutes on first run; cached)", manifest.name)
        builder = trt.Builder(trt_logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, trt_logger)
        if not parser.parse_from_file(str(manifest.model_path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise EngineError(f"{manifest.name}: TensorRT cannot parse the ONNX graph: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self._workspace)
        tf32 = getattr(trt.BuilderFlag, "TF32", None)
        if tf32 is not None and manifest.doc.engine.precision == "fp32":
            config.clear_flag(tf32)  # fp32 means fp32: TF32 alone breaks 1e-4 parity
        timing_path = timing_cache_file(cache_dir, key)
        timing_bytes = timing_path.read_bytes() if timing_path.is_file() else b""
        timing = config.create_timing_cache(timing_bytes)
        config.set_timing_cache(timing, ignore_mismatch=False)
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in derive_profile(manifest).items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
        monitor = _progress_monitor(trt, manifest.name)
        if monitor is not None:
            config.progress_monitor = monitor
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineError(f"{manifest.name}: TensorRT build failed (see the log above)")
        _write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
        logger.info(
            "built TensorRT engine %s in %.1f s", manifest.name, time.perf_counter() - start
        )
        return bytes(plan)

    def _stream(self) -> Any:
        """This thread's CUDA stream, created on first use."""
        stream = getattr(self._local, "stream", None)
        if stream is None:
            assert self._device is not None
            stream = self._local.stream = self._device.new_stream()
        return stream

    def _new_context(self) -> Any:
        ctx = self._engine.create_execution_context()
        if ctx is None:
            raise EngineError(f"{self.manifest.name}: cannot create a TensorRT context")
        return ctx

    def _context(self) -> Any:
        """This thread's execution context, created on first use."""
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._local.context = self._new_context()
        return ctx

    def infer(self, inputs: Arrays) -> Arrays:
        """Copy inputs to the GPU, run on this caller's stream, copy declared outputs back."""
        if self._engine is None or self._device is None:
            raise EngineError("tensorrt backend used before load()")
        stream = self._stream()
        if self._cuda_graphs:
            return self._infer_graph(inputs, stream)
        context = self._context()
        _, outputs = self._bind(context, stream, inputs)
        self._execute(context, stream)
        self._device.synchronize(stream)
        return self._collect(outputs)

    def _bind(
        self, context: Any, stream: Any, inputs: Arrays
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Inputs copied to the device and outputs allocated, all bound to `context` by name.

        The returned tensors must outlive the (asynchronous) execution that uses them.
        """
        device, trt = self._device, self._trt
        assert device is not None
        bound: dict[str, Any] = {}
        for name, array in inputs.items():
            bound[name] = device.to_device(array, stream)
            if not context.set_input_shape(name, tuple(array.shape)):
                raise EngineError(f"{self.manifest.name}: TensorRT rejects shape of {name}")
            context.set_tensor_address(name, device.data_ptr(bound[name]))
        outputs: dict[str, Any] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            if self._engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                continue
            shape = tuple(context.get_tensor_shape(name))
            dtype = trt.nptype(self._engine.get_tensor_dtype(name))
            outputs[name] = device.empty(shape, dtype, stream)
            context.set_tensor_address(name, device.data_ptr(outputs[name]))
        return bound, outputs

    def _execute(self, context: Any, stream: Any) -> None:
        assert self._device is not None
        if not context.execute_async_v3(self._device.stream_handle(stream)):
            raise EngineError(f"{self.manifest.name}: TensorRT execute_async_v3 failed")

    def _collect(self, outputs: dict[str, Any]) -> Arrays:
        assert self._device is not None
        declared = self.manifest.graph_outputs
        return {
            k: self._device.to_host(v).astype(np.float32, copy=False)
            for k, v in outputs.items()
            if k in declared
        }

    def _infer_graph(self, inputs: Arrays, stream: Any) -> Arrays:
        """Replay a CUDA graph captured for these input shapes (one per batch size).

        Each captured graph has its own execution context and static input/output buffers: the
        addresses are baked into the graph, so nothing is rebound after capture.
        """
        device = self._device
        assert device is not None
        graphs: dict[Any, _Captured] = self._local.__dict__.setdefault("graphs", {})
        key = tuple((name, array.shape) for name, array in inputs.items())
        captured = graphs.get(key)
        if captured is None:
            context = self._new_context()
            bound, outputs = self._bind(context, stream, inputs)
            self._execute(context, stream)  # one eager run first: TensorRT's lazy setup
            device.synchronize(stream)
            handle = device.stream_handle(stream)
            graph = device.capture(lambda: bool(context.execute_async_v3(handle)), stream)
            graphs[key] = _Captured(context, bound, outputs, graph)
            return self._collect(outputs)
        for name, array in inputs.items():
            device.copy_into(captured.inputs[name], array, stream)
        device.replay(captured.graph, stream)
        device.synchronize(stream)
        return self._collect(captured.outputs)

    def describe(self) -> dict[str, Any]:
        """TensorRT version, GPU, plan file and whether it came from the cache."""
        device = self._device
        return {
            "backend": self.name,
            "provider": "tensorrt",
            "device": "cuda",
            "gpu": device.gpu_name() if device is not None else None,
            "tensorrt": str(self._trt.__version__) if self._trt is not None else None,
            "cuda_graphs": self._cuda_graphs,
            **self._info,
        }

    def close(self) -> None:
        """Drop the engine (contexts go with their threads' locals)."""
        self._engine = None
        self._local = threading.local()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half a plan


def _progress_monitor(trt: Any, engine: str) -> Any:
    """A progress monitor that logs each top-level build phase (None where unsupported)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                logger.info("TensorRT build %s: %s (%d steps)", engine, phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            pass

    return _Monitor()
