"""GPU gauges: which engines count as "on a GPU", how samples become series, the monitor's loop.

This machine has no GPU: the readers' NVML and torch paths must report "not available" here
(they run for real in tests/gpu). The monitor is driven by a scripted reader.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from stream.gpu import GpuMonitor, GpuSample, NvmlReader, TorchCudaReader, apply_samples, uses_gpu
from stream.metrics import Metrics

pytestmark = pytest.mark.unit


class ScriptedReader:
    """Returns the queued readings in order (exceptions are raised), then repeats the last."""

    name = "scripted"

    def __init__(self, *readings: list[GpuSample] | Exception) -> None:
        self.readings = list(readings)
        self.reads = 0
        self.closed = False

    def read(self) -> list[GpuSample]:
        self.reads += 1
        item = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


def _series(m: Metrics) -> dict[str, float]:
    """GPU series on the exposition, `name{gpu="i"}` → value."""
    out = {}
    for line in generate_latest(m.registry).decode().splitlines():
        if line.startswith("scenestream_gpu_"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_only_cuda_devices_count_as_gpu() -> None:
    assert uses_gpu([{"device": "cpu"}, {"device": "cuda:0"}])
    assert uses_gpu([{"device": "cuda", "provider": "tensorrt"}])
    assert not uses_gpu([{"device": "cpu"}, {}, {"device": None}])
    assert not uses_gpu([])


def test_samples_set_gauges_and_departed_gpus_are_removed() -> None:
    m = Metrics(process=False)
    shown = apply_samples(m, [GpuSample("0", 2.0e9, 0.5), GpuSample("1", 1.0e9, None)], set())
    assert shown == {"0", "1"}
    series = _series(m)
    assert series['scenestream_gpu_utilization_ratio{gpu="0"}'] == 0.5
    assert series['scenestream_gpu_memory_used_bytes{gpu="0"}'] == 2.0e9
    assert series['scenestream_gpu_memory_used_bytes{gpu="1"}'] == 1.0e9
    # No utilisation measured for GPU 1: no series rather than a made-up 0.
    assert 'scenestream_gpu_utilization_ratio{gpu="1"}' not in series

    shown = apply_samples(m, [GpuSample("1", 3.0e9, 0.9)], shown)
    series = _series(m)
    assert shown == {"1"}
    assert not any('gpu="0"' in key for key in series)
    assert series['scenestream_gpu_utilization_ratio{gpu="1"}'] == 0.9


def test_readers_report_unavailable_without_a_gpu() -> None:
    # No NVIDIA driver and a CPU build of torch here: both say "not available", neither raises.
    assert NvmlReader.open() is None
    assert TorchCudaReader.open() is None


async def test_monitor_samples_survives_a_failed_read_and_cleans_up() -> None:
    m = Metrics(process=False)
    reader = ScriptedReader(
        [GpuSample("0", 1.0e9, 0.25)], RuntimeError("NVML busy"), [GpuSample("0", 4.0e9, 0.75)]
    )
    monitor = GpuMonitor(reader, m, interval_s=0.01)
    monitor.start()
    for _ in range(200):  # up to 2 s; about 3 intervals are needed
        await asyncio.sleep(0.01)
        if _series(m).get('scenestream_gpu_memory_used_bytes{gpu="0"}') == 4.0e9:
            break
    assert _series(m)['scenestream_gpu_utilization_ratio{gpu="0"}'] == 0.75
    assert monitor.failures == 1
    assert reader.reads >= 3
    await monitor.close()
    assert reader.closed
    assert _series(m) == {}
