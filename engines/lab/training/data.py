"""Window sets for training and evaluation: generated in worker processes, cached on disk.

Generating scenes costs far more than training on them, so a set is generated once into a cache
directory of `.npy` files (memory-mapped when read back) keyed by everything that changes its
content: the window spec, size, seed, split and a hash of the scene generator's source.

The audio front end (log-mel) has no trainable weights, so the cache stores log-mel features
(fp16, exact to the fp32 graph's output within fp16 rounding) instead of raw audio: 12 KB per
window instead of 64 KB, and no front-end compute per epoch. Evaluation sets keep raw audio too,
because they are run through the engine itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from engines.lab.scenes.base import LABELS
from engines.runtime.nets.logmel import LogMel, LogMelSpec
from engines.window import WindowSpec

logger = logging.getLogger(__name__)

CHUNK = 200  # windows per worker task: big enough to amortise start-up, small for progress
CACHE_VERSION = 1


@dataclass(slots=True)
class WindowSet:
    """N windows as arrays (possibly memory-mapped), labels in `LABELS` order."""

    video: npt.NDArray[np.uint8]  # [N, T, H, W, 3]
    logmel: npt.NDArray[np.float16]  # [N, 1, mels, frames]
    labels: npt.NDArray[np.float32]  # [N, L] 0/1
    care: npt.NDArray[np.float32]  # [N, L] 0 where the label is undecidable for that window
    kinds: list[str]
    audio: npt.NDArray[np.float32] | None = None  # [N, S], evaluation sets only

    def __len__(self) -> int:
        return len(self.kinds)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Raw output of one generation task."""

    video: npt.NDArray[np.uint8]
    audio: npt.NDArray[np.float32]
    labels: npt.NDArray[np.float32]
    care: npt.NDArray[np.float32]
    kinds: list[str]


Task = tuple[int, WindowSpec, int, str, int]  # n, spec, seed, split, first example index


def generate_chunk(task: Task) -> Chunk:
    """Worker entry point: examples `start..start+n-1` of (seed, split) from the generator."""
    from engines.lab.scenes.dataset import window_examples  # the generator (engines/lab/scenes)

    n, spec, seed, split, start = task
    examples = list(window_examples(n, spec, seed=seed, split=split, start=start))
    ones = np.ones(len(LABELS), dtype=np.float32)
    return Chunk(
        video=np.stack([e.video for e in examples]),
        audio=np.stack([e.audio for e in examples]).astype(np.float32),
        labels=np.stack([e.labels for e in examples]).astype(np.float32),
        care=np.stack([_care(e, ones) for e in examples]),
        kinds=[str(e.kind) for e in examples],
    )


def _care(example: Any, ones: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    care = getattr(example, "care", None)
    return ones if care is None else np.asarray(care, dtype=np.float32)


def generator_fingerprint() -> str:
    """Hash of the scene generator's sources: a changed generator invalidates cached sets."""
    import engines.lab.scenes as scenes

    h = hashlib.sha256()
    for path in sorted(Path(scenes.__file__).parent.rglob("*")):
        if path.suffix in (".py", ".toml") and path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def recordings_fingerprint() -> str:
    """Which real recordings the generator mixes in (none until they are fetched): a set
    generated without them must not be reused once they are there."""
    from engines.lab.scenes.sounds.recordings import recording_bank

    ids = sorted(r.id for r in recording_bank())
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]


def cache_key(spec: WindowSpec, n: int, seed: int, split: str, keep_audio: bool) -> str:
    """Directory name of a cached set."""
    desc = json.dumps(
        [CACHE_VERSION, repr(spec), n, seed, split, keep_audio, generator_fingerprint(),
         recordings_fingerprint()]
    )  # fmt: skip
    return f"{split}-{n}-s{seed}-{hashlib.sha256(desc.encode()).hexdigest()[:12]}"


class LogMelBatcher:
    """Computes the fp32 in-graph log-mel for raw audio chunks (main process, no grad)."""

    def __init__(self, sample_rate: int) -> None:
        self.frontend = LogMel(LogMelSpec(sample_rate=sample_rate)).eval()

    def __call__(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float16]:
        out = []
        with torch.no_grad():
            for i in range(0, len(audio), 256):
                out.append(self.frontend(torch.from_numpy(audio[i : i + 256])).numpy())
        return np.concatenate(out).astype(np.float16)


def _tasks(n: int, spec: WindowSpec, seed: int, split: str) -> list[Task]:
    # Example i of (seed, split) does not depend on the chunking: sets nest as n grows.
    return [(min(CHUNK, n - i), spec, seed, split, i) for i in range(0, n, CHUNK)]


def _chunks(tasks: list[Task], workers: int) -> Iterator[Chunk]:
    if workers <= 1:
        yield from map(generate_chunk, tasks)
        return
    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork.
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(generate_chunk, tasks)


def build_set(
    spec: WindowSpec,
    n: int,
    *,
    seed: int,
    split: str,
    cache_dir: Path,
    workers: int = 2,
    keep_audio: bool = False,
    progress: Callable[[int, int], None] | None = None,
    minutes: float | None = None,
) -> WindowSet:
    """Load the cached set, or generate it (in `workers` processes) and cache it.

    With `minutes`, generation stops after that wall time (at a chunk boundary) and the set is
    the windows made so far: on a busy machine a set-size target becomes a time budget. Example
    `i` is the same either way, so a cut set is a prefix of the full one; it is cached as cut.
    """
    where = cache_dir / cache_key(spec, n, seed, split, keep_audio)
    if (where / "meta.json").exists():
        return load_set(where)
    if spec.audio is None or spec.video is None:
        raise ValueError("avfusion sets need both video and audio in the window spec")
    where.mkdir(parents=True, exist_ok=True)
    logmel_of = LogMelBatcher(spec.audio.sample_rate)
    arrays: dict[str, Any] = {}
    kinds: list[str] = []
    done = 0
    deadline = time.monotonic() + minutes * 60 if minutes else math.inf
    for chunk in _chunks(_tasks(n, spec, seed, split), workers):
        features = logmel_of(chunk.audio)
        parts: dict[str, npt.NDArray[Any]] = {
            "video": chunk.video,
            "logmel": features,
            "labels": chunk.labels,
            "care": chunk.care,
        }
        if keep_audio:
            parts["audio"] = chunk.audio
        for name, part in parts.items():
            if name not in arrays:
                arrays[name] = np.lib.format.open_memmap(
                    where / f"{name}.npy", mode="w+", dtype=part.dtype, shape=(n, *part.shape[1:])
                )
            arrays[name][done : done + len(part)] = part
        kinds.extend(chunk.kinds)
        done += len(chunk.kinds)
        if progress:
            progress(done, n)
        if time.monotonic() > deadline and done < n:
            logger.warning("%s: generation time limit (%s min): %d of %d windows", split,
                           minutes, done, n)  # fmt: skip
            break
    for arr in arrays.values():
        arr.flush()
    (where / "kinds.json").write_text(json.dumps(kinds))
    # Written last: its presence marks a complete set (`n`: the windows it holds).
    (where / "meta.json").write_text(json.dumps({"n": done, "seed": seed, "split": split}))
    return load_set(where)


def load_set(where: Path) -> WindowSet:
    """A cached set, memory-mapped."""

    n = int(json.loads((where / "meta.json").read_text())["n"])

    def arr(name: str) -> Any:
        return np.load(where / f"{name}.npy", mmap_mode="r")[:n]  # a cut set holds n rows

    return WindowSet(
        video=arr("video"),
        logmel=arr("logmel"),
        labels=np.asarray(arr("labels")),
        care=np.asarray(arr("care")),
        kinds=json.loads((where / "kinds.json").read_text()),
        audio=arr("audio") if (where / "audio.npy").exists() else None,
    )


def from_arrays(
    video: npt.NDArray[np.uint8],
    audio: npt.NDArray[np.float32],
    labels: npt.NDArray[np.float32],
    kinds: list[str],
    sample_rate: int,
    care: npt.NDArray[np.float32] | None = None,
) -> WindowSet:
    """An in-memory set (user clips, tests)."""
    return WindowSet(
        video=video,
        logmel=LogMelBatcher(sample_rate)(audio),
        labels=labels.astype(np.float32),
        care=np.ones_like(labels, dtype=np.float32) if care is None else care,
        kinds=kinds,
        audio=audio,
    )
