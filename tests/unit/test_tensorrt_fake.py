"""The TensorRT backend's build and run logic, against a fake `tensorrt` module that records calls.

TensorRT cannot run without an NVIDIA GPU, so its wrapper is pinned here: the builder API call
sequence (strongly typed network, parser, workspace limit, timing cache, one profile, progress
monitor), the cache key and file, the rebuild when deserialisation returns None, the runtime
sequence (set_input_shape / set_tensor_address / execute_async_v3 with the stream, result
checked), one context per calling thread. The fake executes the graph with ONNX Runtime on host
memory, so outputs are real and compared. The real thing runs in tests/gpu.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from engines.backends.base import random_inputs
from engines.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.backends.tensorrt_backend import TensorRTBackend
from engines.backends.tensorrt_cache import CacheKey, derive_profile, engine_file
from engines.engine import Engine
from engines.loader import LoadReport, try_backend
from engines.manifest import Manifest, load_manifest
from engines.runtime import EngineError
from stream.windows import Window
from tests.engine_fixtures import BASE, tiny_onnx, to_toml

pytestmark = pytest.mark.unit


class HostOps:
    """`DeviceOps` on host numpy arrays: pointers resolve back to arrays for the fake engine."""

    def __init__(self) -> None:
        self.memory: dict[int, npt.NDArray[Any]] = {}

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
        return np.asarray(tensor)


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


@pytest.fixture
def calls() -> list[tuple[Any, ...]]:
    return []


@pytest.fixture
def ops() -> HostOps:
    return HostOps()


@pytest.fixture
def trt(
    monkeypatch: pytest.MonkeyPatch, calls: list[tuple[Any, ...]], ops: HostOps
) -> types.ModuleType:
    fake = make_fake_trt(calls, ops)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    engine_dir = tmp_path / "tiny"
    engine_dir.mkdir()
    tiny_onnx(engine_dir / "model.onnx")
    (engine_dir / "engine.toml").write_text(to_toml(BASE))
    return load_manifest(engine_dir)


def names(calls: list[tuple[Any, ...]]) -> list[str]:
    return [c[0] for c in calls]


BUILD_SEQUENCE = [
    "Builder",
    "create_network",
    "OnnxParser",
    "parse_from_file",
    "create_builder_config",
    "set_memory_pool_limit",
    "clear_flag",
    "create_timing_cache",
    "set_timing_cache",
    "create_optimization_profile",
    "set_shape",
    "set_shape",
    "add_optimization_profile",
    "build_serialized_network",
    "timing_cache.serialize",
    "deserialize_cuda_engine",
]


def test_first_load_builds_strongly_typed_with_one_profile_and_caches(
    trt: Any,
    calls: list[tuple[Any, ...]],
    ops: HostOps,
    manifest: Manifest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    backend = TensorRTBackend(device=ops, workspace_bytes=1 << 30)
    backend.load(manifest, tmp_path / "cache")
    seq = names(calls)
    assert seq[seq.index("Builder") :] == BUILD_SEQUENCE
    assert ("create_network", 1 << 3) in calls  # STRONGLY_TYPED, and no other flag
    assert ("set_memory_pool_limit", "workspace", 1 << 30) in calls
    assert ("clear_flag", 7) in calls  # fp32 manifest: no TF32
    assert ("create_timing_cache", b"") in calls  # no timing cache yet
    assert ("set_timing_cache", False) in calls
    shapes = {c[1]: c[2:] for c in calls if c[0] == "set_shape"}
    assert shapes["video"] == ((1, 4, 8, 8, 3), (4, 4, 8, 8, 3), (4, 4, 8, 8, 3))
    assert shapes["audio"] == ((1, 1600), (4, 1600), (4, 1600))
    plan = Path(backend.describe()["plan"])
    assert plan.is_file()
    assert plan.with_suffix(".json").is_file()
    assert (tmp_path / "cache" / "tensorrt").glob("timing-*.cache")
    assert backend.describe()["from_cache"] is False
    messages = [r.getMessage() for r in caplog.records]
    assert "TensorRT build tiny: Building engine (2 steps)" in messages
    assert any(m.startswith("built TensorRT engine tiny") for m in messages)


def test_second_load_uses_the_cache_and_the_timing_cache(
    trt: Any, calls: list[tuple[Any, ...]], ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    TensorRTBackend(device=ops).load(manifest, tmp_path / "cache")
    calls.clear()
    backend = TensorRTBackend(device=ops)
    backend.load(manifest, tmp_path / "cache")
    assert "Builder" not in names(calls)
    assert names(calls).count("deserialize_cuda_engine") == 1
    assert backend.describe()["from_cache"] is True


def test_rejected_plan_is_rebuilt(
    trt: Any, calls: list[tuple[Any, ...]], ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    first = TensorRTBackend(device=ops)
    first.load(manifest, tmp_path / "cache")
    plan = Path(first.describe()["plan"])
    plan.write_bytes(b"built by another TensorRT")  # deserialize_cuda_engine -> None
    calls.clear()
    second = TensorRTBackend(device=ops)
    second.load(manifest, tmp_path / "cache")
    seq = names(calls)
    assert seq.count("deserialize_cuda_engine") == 2  # rejected, then the rebuilt one
    assert "build_serialized_network" in seq
    assert ("create_timing_cache", b"TIMING") in calls  # timing cache from the first build
    assert plan.read_bytes().startswith(b"PLAN:")


def test_build_and_parse_failures_are_engine_errors(
    trt: Any, ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    trt.parse_ok = False
    with pytest.raises(EngineError, match=r"cannot parse the ONNX graph.*unsupported operator Foo"):
        TensorRTBackend(device=ops).load(manifest, tmp_path / "cache")
    trt.parse_ok, trt.build_ok = True, False
    with pytest.raises(EngineError, match="TensorRT build failed"):
        TensorRTBackend(device=ops).load(manifest, tmp_path / "cache")
    trt.build_ok, trt.reject_plans = True, True
    with pytest.raises(EngineError, match="cannot deserialize the engine it built"):
        TensorRTBackend(device=ops).load(manifest, tmp_path / "cache")


def test_runtime_call_sequence_and_outputs_match_onnxruntime(
    trt: Any, calls: list[tuple[Any, ...]], ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    backend = TensorRTBackend(device=ops)
    backend.load(manifest, tmp_path / "cache")
    calls.clear()
    inputs = random_inputs(manifest, 2, seed=3)
    got = backend.infer(inputs)
    seq = names(calls)
    assert seq == [
        "create_execution_context",
        "set_input_shape",
        "set_tensor_address",
        "set_input_shape",
        "set_tensor_address",
        "set_tensor_address",
        "execute_async_v3",
    ]
    assert ("set_input_shape", "video", (2, 4, 8, 8, 3)) in calls
    assert ("set_input_shape", "audio", (2, 1600)) in calls
    stream_arg = next(c[1] for c in calls if c[0] == "execute_async_v3")
    assert stream_arg == id(backend._local.stream)
    reference = OnnxRuntimeBackend()
    reference.load(manifest, tmp_path)
    np.testing.assert_allclose(got["scores"], reference.infer(inputs)["scores"], rtol=0, atol=1e-6)


def test_failed_execution_raises(
    trt: Any, ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    backend = TensorRTBackend(device=ops)
    backend.load(manifest, tmp_path / "cache")
    trt.execute_ok = False
    with pytest.raises(EngineError, match="execute_async_v3 failed"):
        backend.infer(random_inputs(manifest, 1))


def test_one_execution_context_per_calling_thread(
    trt: Any, calls: list[tuple[Any, ...]], ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    backend = TensorRTBackend(device=ops)
    backend.load(manifest, tmp_path / "cache")
    inputs = random_inputs(manifest, 1)
    backend.infer(inputs)
    backend.infer(inputs)
    worker = threading.Thread(target=backend.infer, args=(inputs,))
    worker.start()
    worker.join()
    assert names(calls).count("create_execution_context") == 2


def test_engine_runtime_runs_on_tensorrt_through_the_loader(
    trt: Any, ops: HostOps, manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TensorRTBackend, "available", classmethod(lambda cls: (True, "fake")))
    report = LoadReport(engine=manifest.name)
    backend = try_backend(manifest, "tensorrt", tmp_path / "c", report, TensorRTBackend(ops))
    assert backend is not None, report.skipped
    assert report.backend == "tensorrt"
    engine = Engine(manifest, backend)
    rng = np.random.default_rng(0)
    windows = [
        Window(
            f"s{i}", "tiny", 0, 0.0, 0.5,
            rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), None,
            rng.standard_normal(1600).astype(np.float32),
        )
        for i in range(3)
    ]  # fmt: skip
    scores = engine.infer(windows)  # 3 windows padded to the built batch of 4
    assert len(scores) == 3
    for w, s in zip(windows, scores, strict=True):
        assert w.video is not None
        assert w.audio is not None
        logit = float(w.video.astype(np.float64).mean() + w.audio.mean())
        expected = 1.0 / (1.0 + np.exp(-logit))  # the tiny graph's sum, through the sigmoid
        assert s["a"] == pytest.approx(expected, abs=1e-5)
        assert s["b"] == pytest.approx(expected, abs=1e-5)


def test_available_says_why_without_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    ok, why = TensorRTBackend.available()
    assert not ok
    assert "tensorrt does not import" in why


def _key(**changes: Any) -> CacheKey:
    base: dict[str, Any] = {
        "onnx_sha256": "ab" * 32,
        "tensorrt_version": "11.0.0",
        "gpu_name": "NVIDIA H100",
        "compute_capability": "9.0",
        "precision": "fp32",
        "profile": {"audio": ((1, 16000), (8, 16000), (8, 16000))},
    }
    base.update(changes)
    return CacheKey.create(**base)


def test_cache_key_covers_everything_a_plan_depends_on() -> None:
    assert _key().digest() == _key().digest()
    variants = [
        _key(onnx_sha256="cd" * 32),
        _key(tensorrt_version="10.12.0"),
        _key(gpu_name="NVIDIA L4"),
        _key(compute_capability="8.9"),
        _key(precision="fp16"),
        _key(profile={"audio": ((1, 16000), (16, 16000), (16, 16000))}),
    ]
    assert len({k.digest() for k in [_key(), *variants]}) == len(variants) + 1
    assert engine_file(Path("/c"), "avfusion", _key()).name.startswith("avfusion-")


def test_profile_spans_the_manifest_batch_sizes(manifest: Manifest) -> None:
    profile = derive_profile(manifest)
    assert set(profile) == {"video", "audio"}
    low, opt, high = profile["audio"]
    assert (low[0], opt[0], high[0]) == (1, 4, 4)
