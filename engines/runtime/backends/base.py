"""The one interface every inference backend implements, and helpers they share.

A backend runs an engine's graph on named numpy inputs and returns its named raw outputs
(logits: activations are applied by the engine runtime, so every backend returns the same thing).
Backends are chosen by name from an explicit registry
(`engines.runtime.backends.BACKENDS`); each one says whether it can run here (`available`)
and whether it can run a given engine (`supports`).
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from engines.runtime.manifest import Manifest
from engines.runtime.manifest_schema import BATCH, InputTable

Arrays = dict[str, npt.NDArray[Any]]


class Backend(abc.ABC):
    """Runs one engine's graph. Blocking calls: use from the engine's executor thread."""

    name: ClassVar[str]
    _manifest: Manifest | None = None  # set by `load`

    @classmethod
    @abc.abstractmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can run on this machine, and if not, why (one short line)."""

    @classmethod
    @abc.abstractmethod
    def supports(cls, manifest: Manifest) -> tuple[bool, str]:
        """Whether this backend can run `manifest`'s engine (e.g. it has an ONNX file)."""

    @abc.abstractmethod
    def load(self, manifest: Manifest, cache_dir: Path) -> None:
        """Load (and build, when needed, caching under `cache_dir`) the engine's graph.

        The engine directory is `manifest.dir`.
        """

    def warmup(self, batch_sizes: tuple[int, ...]) -> None:
        """Run each batch size once so that the first real call is not the slow one."""
        manifest = self.manifest
        for batch in batch_sizes:
            self.infer(zero_inputs(manifest, batch))

    @abc.abstractmethod
    def infer(self, inputs: Arrays) -> Arrays:
        """Raw graph outputs (every declared output) for named inputs, on the host."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What really runs: provider/device, library versions, build details."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to free
        """Free what the backend holds (contexts, sessions)."""

    @property
    def manifest(self) -> Manifest:
        """The loaded engine's manifest."""
        if self._manifest is None:
            from engines.runtime.interface import EngineError

            raise EngineError(f"{self.name} backend used before load()")
        return self._manifest


def importable(module: str) -> tuple[bool, str]:
    """The `available` rule of backends that only need a library to import."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return False, f"{module} does not import: {exc}"
    return True, ""


def supports_onnx(manifest: Manifest) -> tuple[bool, str]:
    """The `supports` rule of backends that run the engine's ONNX file."""
    if manifest.model_path is None or manifest.model_path.suffix != ".onnx":
        return False, "the engine has no ONNX model"
    return True, ""


NUMPY_DTYPES: dict[str, type[np.generic]] = {
    "uint8": np.uint8,
    "int32": np.int32,
    "int64": np.int64,
    "float16": np.float16,
    "float32": np.float32,
}


def concrete_shape(spec: InputTable, batch: int) -> tuple[int, ...]:
    """The input's shape with the batch axis set to `batch`."""
    return tuple(batch if d == BATCH else int(d) for d in spec.shape)


def constant_array(spec: InputTable) -> npt.NDArray[Any]:
    """A constant input's value as an array of its declared dtype and shape."""
    value = np.asarray(spec.value, dtype=NUMPY_DTYPES[spec.dtype])
    return value.reshape(concrete_shape(spec, 1))


def zero_inputs(manifest: Manifest, batch: int) -> Arrays:
    """Inputs of the right shapes and dtypes for `batch`: zeros, constants at their value."""
    out: Arrays = {}
    for name, spec in manifest.doc.inputs.items():
        if spec.role == "constant":
            out[name] = constant_array(spec)
        else:
            out[name] = np.zeros(concrete_shape(spec, batch), dtype=NUMPY_DTYPES[spec.dtype])
    return out


def random_inputs(manifest: Manifest, batch: int, seed: int = 0) -> Arrays:
    """Random inputs of the right shapes: uint8 frames, audio in [-0.5, 0.5], small states."""
    rng = np.random.default_rng(seed)
    out = zero_inputs(manifest, batch)
    for name, spec in manifest.doc.inputs.items():
        shape = concrete_shape(spec, batch)
        if spec.role == "video":
            out[name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif spec.role == "audio":
            out[name] = (rng.random(shape, dtype=np.float32) - 0.5).astype(np.float32)
        elif spec.role == "state":
            out[name] = (0.1 * rng.standard_normal(shape)).astype(NUMPY_DTYPES[spec.dtype])
    return out


def realistic_inputs(manifest: Manifest, batch: int, seed: int = 0) -> Arrays:
    """Structured inputs: a bright square moving over a gradient; a tone with a little noise.

    Random noise exercises every weight but not the value ranges real media produces (smooth
    images, narrow-band sound); parity is checked on both.
    """
    rng = np.random.default_rng(seed)
    out = zero_inputs(manifest, batch)
    for name, spec in manifest.doc.inputs.items():
        shape = concrete_shape(spec, batch)
        if spec.role == "video":
            out[name] = _moving_square(shape, rng)
        elif spec.role == "audio":
            rate = float(spec.sample_rate or 16000)
            t = np.arange(shape[1], dtype=np.float64) / rate
            freqs = rng.uniform(200.0, 2000.0, size=(shape[0], 1))
            tone = 0.3 * np.sin(2 * np.pi * freqs * t) + 0.01 * rng.standard_normal(shape)
            out[name] = tone.astype(np.float32)
    return out


def _moving_square(shape: tuple[int, ...], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    b, t, h, w, _ = shape
    frames = np.empty(shape, dtype=np.uint8)
    ramp = np.linspace(30, 120, w, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8)
    side = max(2, min(h, w) // 4)
    for i in range(b):
        y0, x0 = rng.integers(0, max(1, h - side)), 0
        for k in range(t):
            frames[i, k] = base
            x = (x0 + k * max(1, w // (2 * t))) % max(1, w - side)
            frames[i, k, y0 : y0 + side, x : x + side] = (240, 200, 40)
    return frames
