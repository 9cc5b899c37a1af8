"""On a machine with CUDA: the real TensorRT build/cache/run, torch on the GPU, and the GPU
check script, against ONNX Runtime on the CPU. Skipped where CUDA is absent (every CI box)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engines.runtime.backends.base import random_inputs, realistic_inputs
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.runtime.backends.tensorrt_backend import TensorRTBackend
from engines.runtime.backends.torch_backend import TorchBackend
from engines.runtime.manifest import Manifest, load_manifest
from tests.gpu.gpu_check import main as gpu_check
from tests.support.engine_fixtures import user_engines

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with user_engines(tmp_path_factory.mktemp("user-engines")) as root:
        yield root


@pytest.fixture(scope="module")
def manifest(user_dir: Path) -> Manifest:
    return load_manifest(user_dir / "tiny-user")


def reference(manifest: Manifest, cache_dir: Path) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(use_gpu=False)
    backend.load(manifest, cache_dir)
    return backend


def test_tensorrt_builds_caches_and_matches_onnxruntime(manifest: Manifest, tmp_path: Path) -> None:
    ok, why = TensorRTBackend.available()
    if not ok:
        pytest.skip(why)
    torch.backends.cudnn.allow_tf32 = False
    built = TensorRTBackend()
    built.load(manifest, tmp_path)
    built.warmup(manifest.batch_sizes)
    assert built.describe()["from_cache"] is False
    cpu = reference(manifest, tmp_path)
    for make in (random_inputs, realistic_inputs):
        for batch in manifest.batch_sizes:
            inputs = make(manifest, batch, 1)
            diff = np.abs(built.infer(inputs)["scores"] - cpu.infer(inputs)["scores"]).max()
            assert diff <= 1e-4, (make.__name__, batch, diff)
    again = TensorRTBackend()
    again.load(manifest, tmp_path)
    assert again.describe()["from_cache"] is True


def test_torch_on_cuda_matches_onnxruntime_cpu(manifest: Manifest, tmp_path: Path) -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    backend = TorchBackend()
    backend.load(manifest, tmp_path)
    assert backend.describe()["device"].startswith("cuda")
    inputs = realistic_inputs(manifest, 4, 2)
    diff = np.abs(
        backend.infer(inputs)["scores"] - reference(manifest, tmp_path).infer(inputs)["scores"]
    )
    assert diff.max() <= 1e-4


def test_gpu_check_script_reports_every_backend(user_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = ["--out", str(out), "--user-dir", str(user_dir), "--cache-dir", str(tmp_path / "c")]
    code = gpu_check([*argv, "--engine", "tiny-user", "--iterations", "5", "--budget-s", "120"])
    report = json.loads(out.read_text())
    assert code == 0, report["engines"][0]["parity"]
    engine = report["engines"][0]
    assert report["environment"]["cuda"] is True
    assert {"onnxruntime-cpu", "torch-eager", "torch-compiled"} <= set(engine["backends"])
    if TensorRTBackend.available()[0]:
        assert "tensorrt" in engine["backends"]
    assert all("windows_per_s" in row for row in engine["bench"])


async def test_gpu_gauges_come_from_the_driver() -> None:
    """NVML (or torch CUDA) sees the device and the monitor turns a reading into series."""
    from stream.gpu import GpuMonitor, open_reader
    from stream.metrics import Metrics

    reader = open_reader()
    assert reader is not None, "CUDA is available but neither NVML nor torch CUDA can read it"
    metrics = Metrics(process=False)
    monitor = GpuMonitor(reader, metrics)
    await monitor.sample()
    used = metrics.registry.get_sample_value("scenestream_gpu_memory_used_bytes", {"gpu": "0"})
    assert used is not None
    assert used > 0
    if reader.name == "nvml":
        ratio = metrics.registry.get_sample_value("scenestream_gpu_utilization_ratio", {"gpu": "0"})
        assert ratio is not None
        assert 0.0 <= ratio <= 1.0
    await monitor.close()
