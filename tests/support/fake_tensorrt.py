"""A stand-in `tensorrt` module (the 10.12+/11 names the backend uses) that records every call,
and host-memory `DeviceOps`, so the TensorRT backend's logic runs on a machine without a GPU.

The fake "engine" executes the ONNX graph with ONNX Runtime on the arrays behind the device
pointers it is given, so its outputs are real.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort


class HostOps:
    """`DeviceOps` on host numpy arrays: pointers resolve back to arrays for the fake engine."""

    def __init__(self, calls: list[tuple[Any, ...]] | None = None) -> None:
        self.memory: dict[int, npt.NDArray[Any]] = {}
        self.calls = calls if calls is not None else []

    def gpu_name(self) -> str:
        return "Fake GPU 80GB"

    def compute_capability(self) -> str:
        return "9.0"

    def new_stream(self) -> Any:
        return object()

    def stream_handle(self, stream: Any) -> int:
        return id(stream)

    def to_device(self, array: npt.NDArray[Any], stream: Any) -> Any:
        return np.array(array, copy=True, order="C")

    def empty(self, shape: tuple[int, ...], dtype: Any, stream: Any) -> Any:
        return np.empty(shape, dtype=dtype)

    def data_ptr(self, tensor: Any) -> int:
        ptr = int(tensor.ctypes.data)
        self.memory[ptr] = tensor
        return ptr

    def synchronize(self, stream: Any) -> None:
        pass

    def to_host(self, tensor: Any) -> npt.NDArray[Any]:
        return np.array(tensor, copy=True)  # like a device-to-host copy: not a view

    def copy_into(self, tensor: Any, array: npt.NDArray[Any], stream: Any) -> None:
        np.copyto(tensor, array)

    def capture(self, launch: Callable[[], bool], stream: Any) -> Any:
        self.calls.append(("capture",))
        return launch  # a captured graph records work without running it

    def replay(self, graph: Any, stream: Any) -> None:
        self.calls.append(("replay",))
        if not graph():
            raise RuntimeError("replayed launch failed")


def make_fake_trt(calls: list[tuple[Any, ...]], ops: HostOps) -> types.ModuleType:
    """A `tensorrt` stand-in with the 10.12+/11 names the backend uses, recording every call."""
    trt: Any = types.ModuleType("tensorrt")
    trt.__version__ = "11.0.0.fake"
    trt.reject_plans = False
    trt.execute_ok = True
    trt.build_ok = True
    trt.parse_ok = True

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            calls.append(("Logger", level))

    trt.Logger = Logger
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=3)
    trt.BuilderFlag = types.SimpleNamespace(TF32=7)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: dtype

    class IProgressMonitor:
        pass

    trt.IProgressMonitor = IProgressMonitor

    class Network:
        model_path: str = ""

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            calls.append(("OnnxParser",))
            self.network = network
            self.num_errors = 0 if trt.parse_ok else 1

        def parse_from_file(self, path: str) -> bool:
            calls.append(("parse_from_file", path))
            self.network.model_path = path
            return bool(trt.parse_ok)

        def get_error(self, i: int) -> str:
            return "unsupported operator Foo"

    trt.OnnxParser = OnnxParser

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            calls.append(("timing_cache.serialize",))
            return b"TIMING" + self.data[:0]

    class Profile:
        def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
            calls.append(("set_shape", name, tuple(low), tuple(opt), tuple(high)))

    class Config:
        progress_monitor: Any = None
        timing: TimingCache | None = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            calls.append(("set_memory_pool_limit", pool, size))

        def clear_flag(self, flag: int) -> None:
            calls.append(("clear_flag", flag))

        def create_timing_cache(self, data: bytes) -> TimingCache:
            calls.append(("create_timing_cache", data))
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            calls.append(("set_timing_cache", ignore_mismatch))
            self.timing = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return self.timing

        def add_optimization_profile(self, profile: Profile) -> int:
            calls.append(("add_optimization_profile",))
            return 0

    class Builder:
        def __init__(self, logger: Logger) -> None:
            calls.append(("Builder",))

        def create_network(self, flags: int) -> Network:
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self) -> Config:
            calls.append(("create_builder_config",))
            return Config()

        def create_optimization_profile(self) -> Profile:
            calls.append(("create_optimization_profile",))
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            calls.append(("build_serialized_network",))
            monitor = config.progress_monitor
            monitor.phase_start("Building engine", None, 2)
            assert monitor.step_complete("Building engine", 0) is True
            monitor.phase_finish("Building engine")
            if not trt.build_ok:
                return None
            return b"PLAN:" + network.model_path.encode()

    trt.Builder = Builder

    class Context:
        def __init__(self, model_path: str) -> None:
            self.session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            calls.append(("set_input_shape", name, shape))
            self.shapes[name] = shape
            return True

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            calls.append(("set_tensor_address", name))
            self.addresses[name] = ptr
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            batch = next(iter(self.shapes.values()))[0]
            out = next(o for o in self.session.get_outputs() if o.name == name)
            return tuple(batch if not isinstance(d, int) else d for d in out.shape)

        def execute_async_v3(self, stream: int) -> bool:
            calls.append(("execute_async_v3", stream))
            feeds = {i.name: ops.memory[self.addresses[i.name]] for i in self.session.get_inputs()}
            for out, value in zip(
                self.session.get_outputs(), self.session.run(None, feeds), strict=True
            ):
                np.copyto(ops.memory[self.addresses[out.name]], value)
            return bool(trt.execute_ok)

    class CudaEngine:
        def __init__(self, model_path: str) -> None:
            self.model_path = model_path
            session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
            self.io = [(i.name, "in") for i in session.get_inputs()]
            self.io += [(o.name, "out") for o in session.get_outputs()]
            self.num_io_tensors = len(self.io)

        def get_tensor_name(self, i: int) -> str:
            return str(self.io[i][0])

        def get_tensor_mode(self, name: str) -> str:
            return str(dict(self.io)[name])

        def get_tensor_dtype(self, name: str) -> Any:
            return np.float32

        def create_execution_context(self) -> Context:
            calls.append(("create_execution_context",))
            return Context(self.model_path)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            calls.append(("Runtime",))

        def deserialize_cuda_engine(self, data: bytes) -> CudaEngine | None:
            calls.append(("deserialize_cuda_engine",))
            if trt.reject_plans or not data.startswith(b"PLAN:"):
                return None
            return CudaEngine(data[5:].decode())

    trt.Runtime = Runtime
    module: types.ModuleType = trt
    return module
