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
import pytest

from engines.runtime.backends.base import random_inputs
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.runtime.backends.tensorrt_backend import TensorRTBackend
from engines.runtime.backends.tensorrt_cache import CacheKey, derive_profile, engine_file
from engines.runtime.engine import Engine
from engines.runtime.interface import EngineError
from engines.runtime.loader import LoadReport, try_backend
from engines.runtime.manifest import Manifest, load_manifest
from engines.window import Window
from tests.support.detector_fixtures import build_detector_engine
from tests.support.engine_fixtures import BASE, tiny_onnx, to_toml
from tests.support.fake_tensorrt import HostOps, make_fake_trt

pytestmark = pytest.mark.unit


@pytest.fixture
def calls() -> list[tuple[Any, ...]]:
    return []


@pytest.fixture
def ops(calls: list[tuple[Any, ...]]) -> HostOps:
    return HostOps(calls)


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


def test_cuda_graph_captured_once_per_shape_then_replayed(
    trt: Any, calls: list[tuple[Any, ...]], ops: HostOps, manifest: Manifest, tmp_path: Path
) -> None:
    backend = TensorRTBackend(device=ops, cuda_graphs=True)
    backend.load(manifest, tmp_path / "cache")
    reference = OnnxRuntimeBackend()
    reference.load(manifest, tmp_path)
    calls.clear()
    first, second = random_inputs(manifest, 2, seed=1), random_inputs(manifest, 2, seed=2)
    got_first = backend.infer(first)
    assert names(calls) == [
        "create_execution_context",
        "set_input_shape",
        "set_tensor_address",
        "set_input_shape",
        "set_tensor_address",
        "set_tensor_address",
        "execute_async_v3",  # eager run before capture
        "capture",
    ]
    calls.clear()
    got_second = backend.infer(second)
    assert names(calls) == ["replay", "execute_async_v3"]  # nothing rebound: static buffers
    for inputs, got in ((first, got_first), (second, got_second)):
        want = reference.infer(inputs)["scores"]
        np.testing.assert_allclose(got["scores"], want, rtol=0, atol=1e-6)
    calls.clear()
    backend.infer(random_inputs(manifest, 4))
    assert names(calls).count("create_execution_context") == 1  # a new shape: its own graph
    assert "capture" in names(calls)
    assert backend.describe()["cuda_graphs"] is True


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


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported before any test puts the fake `tensorrt` in `sys.modules` (torch's ONNX
    exporter probes for the real one)."""
    return build_detector_engine(tmp_path_factory.mktemp("det"))


def test_a_detector_engine_runs_on_tensorrt_with_the_same_detections(
    detector_dir: Path,
    trt: Any,
    calls: list[tuple[Any, ...]],
    ops: HostOps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An `[outputs.detections]` engine (the tiny YOLO-family head) builds and runs through the
    TensorRT backend like a classifier: same boxes, classes and scores as ONNX Runtime."""
    monkeypatch.setattr(TensorRTBackend, "available", classmethod(lambda cls: (True, "fake")))
    detector = load_manifest(detector_dir)
    report = LoadReport(engine=detector.name)
    backend = try_backend(detector, "tensorrt", tmp_path / "c", report, TensorRTBackend(ops))
    assert backend is not None, report.skipped
    assert report.backend == "tensorrt"
    rng = np.random.default_rng(3)
    windows = [
        Window(f"cam{i}", detector.name, 0, 0.0, 0.25,
               rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8), None, None)
        for i in range(3)
    ]  # fmt: skip
    calls.clear()
    on_trt = Engine(detector, backend).infer(windows)
    assert "execute_async_v3" in names(calls)
    reference = OnnxRuntimeBackend()
    reference.load(detector, tmp_path)
    on_ort = Engine(detector, reference).infer(windows)
    for got, want in zip(on_trt, on_ort, strict=True):
        assert got.detections, "the tiny head always finds its vehicles"
        assert [d.label for d in got.detections] == [d.label for d in want.detections]
        for a, b in zip(got.detections, want.detections, strict=True):
            assert a.box == pytest.approx(b.box, abs=1e-5)
            assert a.score == pytest.approx(b.score, abs=1e-5)
