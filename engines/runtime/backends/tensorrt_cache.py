"""TensorRT build cache: keys, file names and the optimisation profile (pure, no TensorRT).

A serialized TensorRT engine is valid only for the TensorRT version and GPU architecture that
built it, and only for the shapes of its profile; the key holds everything that changes the
plan, so a change of any of them builds a new file instead of loading a wrong one.

Profile: one optimisation profile over the manifest's batch sizes, min = the smallest size,
opt = max = the largest. The scheduler pads batches up to a built size, so every size the engine
will see lies inside the profile; tuning kernels for the largest size favours throughput under
load, where it matters, while small batches are launch-bound and gain little from tuning.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from engines.runtime.backends.base import concrete_shape
from engines.runtime.manifest import Manifest

Shape = tuple[int, ...]
ProfileShapes = dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)


def derive_profile(manifest: Manifest) -> ProfileShapes:
    """Min/opt/max shapes of every batched input (constants keep their fixed shape)."""
    sizes = manifest.batch_sizes
    low, high = min(sizes), max(sizes)
    profile: ProfileShapes = {}
    for name, spec in manifest.doc.inputs.items():
        if spec.role == "constant":
            continue
        profile[name] = (
            concrete_shape(spec, low),
            concrete_shape(spec, high),
            concrete_shape(spec, high),
        )
    return profile


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Everything a serialized engine depends on."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str
    profile: tuple[tuple[str, Shape, Shape, Shape], ...]

    @classmethod
    def create(
        cls,
        *,
        onnx_sha256: str,
        tensorrt_version: str,
        gpu_name: str,
        compute_capability: str,
        precision: str,
        profile: ProfileShapes,
    ) -> CacheKey:
        """A key with the profile in a canonical (sorted) order."""
        flat = tuple((name, *shapes) for name, shapes in sorted(profile.items()))
        return cls(onnx_sha256, tensorrt_version, gpu_name, compute_capability, precision, flat)

    def digest(self) -> str:
        """Stable hex digest of the whole key."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> str:
        """The key, readable, written next to the plan so a human can see what it is for."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_file(cache_dir: Path, engine_name: str, key: CacheKey) -> Path:
    """Where the serialized engine for `key` lives."""
    return cache_dir / "tensorrt" / f"{engine_name}-{key.digest()[:24]}.plan"


def timing_cache_file(cache_dir: Path, key: CacheKey) -> Path:
    """Timing cache shared by every engine built with one TensorRT version on one GPU model."""
    name = f"timing-trt{_slug(key.tensorrt_version)}-{_slug(key.gpu_name)}"
    return cache_dir / "tensorrt" / f"{name}-sm{key.compute_capability}.cache"
