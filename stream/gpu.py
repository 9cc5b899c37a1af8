"""GPU utilisation and memory on `/metrics`, while an engine runs on a GPU.

`scenestream_gpu_utilization_ratio{gpu}` and `scenestream_gpu_memory_used_bytes{gpu}` come from
NVML (the `nvidia-ml-py` bindings, a dependency; the library itself ships with the NVIDIA
driver). Without NVML, memory still comes from torch's CUDA runtime and utilisation is left out
rather than guessed. Nothing is sampled when every engine runs on the CPU.

Reading NVML takes a few milliseconds of blocking ctypes calls, so the monitor reads in a worker
thread every `GPU_SAMPLE_INTERVAL_S` and only sets gauges on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stream.metrics import Metrics

logger = logging.getLogger(__name__)

GPU_SAMPLE_INTERVAL_S = 5.0


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one instant. `utilization` is None when the reader cannot measure it."""

    gpu: str
    memory_used_bytes: float
    utilization: float | None = None


class GpuReader(Protocol):
    """Reads every GPU this process can see. `read` blocks (it runs in a worker thread)."""

    name: str

    def read(self) -> list[GpuSample]: ...
    def close(self) -> None: ...


def uses_gpu(details: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any loaded engine runs on a CUDA device (from the backends' `describe()`)."""
    return any(str(d.get("device") or "").startswith("cuda") for d in details)


class NvmlReader:
    """Utilisation and memory of every visible GPU, from NVML."""

    name = "nvml"

    def __init__(self, nvml: Any, handles: Sequence[Any]) -> None:
        self._nvml = nvml
        self._handles = list(handles)

    @classmethod
    def open(cls) -> NvmlReader | None:
        """NVML initialised, or None (with the reason logged) where it is not available."""
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # ImportError, or any NVMLError (no driver, no library)
            logger.info("NVML not available (%s): no GPU utilisation metric", exc)
            return None
        return cls(pynvml, handles)

    def read(self) -> list[GpuSample]:
        samples = []
        for index, handle in enumerate(self._handles):
            rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            samples.append(
                GpuSample(str(index), float(memory.used), utilization=float(rates.gpu) / 100.0)
            )
        return samples

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


class TorchCudaReader:
    """Device memory in use from torch's CUDA runtime (`mem_get_info`); no utilisation."""

    name = "torch-cuda"

    def __init__(self, torch: Any, count: int) -> None:
        self._torch = torch
        self._count = count

    @classmethod
    def open(cls) -> TorchCudaReader | None:
        """A reader when torch sees a CUDA device, else None."""
        try:
            import torch
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None
        return cls(torch, torch.cuda.device_count())

    def read(self) -> list[GpuSample]:
        samples = []
        for index in range(self._count):
            free, total = self._torch.cuda.mem_get_info(index)
            samples.append(GpuSample(str(index), float(total - free)))
        return samples

    def close(self) -> None:
        pass


def open_reader() -> GpuReader | None:
    """The best reader this host offers: NVML, else torch CUDA, else None."""
    return NvmlReader.open() or TorchCudaReader.open()


def apply_samples(metrics: Metrics, samples: Sequence[GpuSample], shown: set[str]) -> set[str]:
    """Set the GPU gauges from `samples`; remove series of GPUs in `shown` no longer reported.

    Returns the GPUs now shown, to pass back in next time.
    """
    now = {s.gpu for s in samples}
    for gpu in shown - now:
        for gauge in (metrics.gpu_utilization, metrics.gpu_memory_bytes):
            with contextlib.suppress(KeyError):
                gauge.remove(gpu)
    for s in samples:
        metrics.gpu_memory_bytes.labels(gpu=s.gpu).set(s.memory_used_bytes)
        if s.utilization is not None:
            metrics.gpu_utilization.labels(gpu=s.gpu).set(s.utilization)
    return now


class GpuMonitor:
    """Samples a `GpuReader` into the GPU gauges until closed. A failing read is logged once
    and retried at the next interval; the gauges keep their last values meanwhile."""

    def __init__(
        self, reader: GpuReader, metrics: Metrics, interval_s: float = GPU_SAMPLE_INTERVAL_S
    ) -> None:
        self.reader = reader
        self._metrics = metrics
        self._interval_s = interval_s
        self._shown: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def start(self) -> None:
        """Begin sampling (the first sample is taken at once)."""
        self._task = asyncio.create_task(self._run(), name="gpu-monitor")

    async def sample(self) -> None:
        """One sample now."""
        try:
            samples = await asyncio.to_thread(self.reader.read)
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                logger.warning("GPU metrics: %s read failed: %s", self.reader.name, exc)
            return
        self._shown = apply_samples(self._metrics, samples, self._shown)

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval_s)

    async def close(self) -> None:
        """Stop sampling, remove the series and release the reader."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._shown = apply_samples(self._metrics, [], self._shown)
        await asyncio.to_thread(self.reader.close)
