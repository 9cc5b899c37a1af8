"""Device memory and streams for the TensorRT backend, behind a small protocol.

Production uses torch CUDA tensors and streams (`TorchCudaOps`); the CPU tests use host arrays
with the same interface, so the backend's call sequence runs without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from engines.runtime.interface import EngineError


class DeviceOps(Protocol):
    """The device memory and stream operations the backend needs (torch CUDA in production)."""

    def gpu_name(self) -> str: ...
    def compute_capability(self) -> str: ...
    def new_stream(self) -> Any: ...
    def stream_handle(self, stream: Any) -> int: ...
    def to_device(self, array: npt.NDArray[Any], stream: Any) -> Any: ...
    def empty(self, shape: tuple[int, ...], dtype: Any, stream: Any) -> Any: ...
    def data_ptr(self, tensor: Any) -> int: ...
    def synchronize(self, stream: Any) -> None: ...
    def to_host(self, tensor: Any) -> npt.NDArray[Any]: ...
    def copy_into(self, tensor: Any, array: npt.NDArray[Any], stream: Any) -> None: ...
    def capture(self, launch: Callable[[], bool], stream: Any) -> Any: ...
    def replay(self, graph: Any, stream: Any) -> None: ...


class TorchCudaOps:
    """`DeviceOps` on torch CUDA tensors and streams."""

    def __init__(self) -> None:
        import torch

        self._torch: Any = torch  # untyped use: the stubs miss parts of torch.cuda

    def gpu_name(self) -> str:
        return str(self._torch.cuda.get_device_name())

    def compute_capability(self) -> str:
        major, minor = self._torch.cuda.get_device_capability()
        return f"{major}.{minor}"

    def new_stream(self) -> Any:
        return self._torch.cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.cuda_stream)

    def to_device(self, array: npt.NDArray[Any], stream: Any) -> Any:
        with self._torch.cuda.stream(stream):
            host = self._torch.from_numpy(np.ascontiguousarray(array))
            return host.to("cuda", non_blocking=False)

    def empty(self, shape: tuple[int, ...], dtype: Any, stream: Any) -> Any:
        torch_dtype = self._torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
        with self._torch.cuda.stream(stream):
            return self._torch.empty(shape, dtype=torch_dtype, device="cuda")

    def data_ptr(self, tensor: Any) -> int:
        return int(tensor.data_ptr())

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def to_host(self, tensor: Any) -> npt.NDArray[Any]:
        return tensor.cpu().numpy()  # type: ignore[no-any-return]

    def copy_into(self, tensor: Any, array: npt.NDArray[Any], stream: Any) -> None:
        with self._torch.cuda.stream(stream):
            tensor.copy_(self._torch.from_numpy(np.ascontiguousarray(array)))

    def capture(self, launch: Callable[[], bool], stream: Any) -> Any:
        graph = self._torch.cuda.CUDAGraph()
        with self._torch.cuda.graph(graph, stream=stream):
            ok = launch()
        if not ok:
            raise EngineError("TensorRT execute_async_v3 failed during CUDA graph capture")
        return graph

    def replay(self, graph: Any, stream: Any) -> None:
        with self._torch.cuda.stream(stream):
            graph.replay()
