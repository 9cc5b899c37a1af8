"""Scenes by seed, their windows (the engine's `Window` contract) and per-window ground truth,
and a cached evaluation set of many scenes.

Scene `i` of a set with seed `s` is drawn from `numpy.random.default_rng([s, i])`: a scene is
the same on every machine and in every set size. Kinds cycle through a seeded shuffle of the
weighted kind list, so every kind is represented even in small sets.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engines.labels import LABELS
from engines.window import Window, WindowSpec

from .compose import Scene, finish, new_draft
from .scenes import KINDS, WEIGHTS
from .truth import window_truth

CACHE_DIR = Path(".cache/scenestream/crossgen")
PACKAGE = Path(__file__).resolve().parent


def fingerprint() -> str:
    """Hash of this package's sources: cached scenes and reported numbers belong to it."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def kind_order(seed: int) -> list[str]:
    """One cycle of kinds, weighted, in a seeded order."""
    names = [k for k in KINDS for _ in range(int(WEIGHTS.get(k, 1.0)))]
    rng = np.random.default_rng([seed, 10**6])
    return [names[i] for i in rng.permutation(len(names))]


def make_scene(seed: int, index: int, spec: WindowSpec, kind: str | None = None) -> Scene:
    """Scene `index` of the set `seed` (its kind from the cycle unless given)."""
    order = kind_order(seed)
    kind = kind or order[index % len(order)]
    rng = np.random.default_rng([seed, index])
    draft = new_draft(kind, index, spec, rng)
    KINDS[kind](draft)
    return finish(draft, index)


def window_ends(scene: Scene, spec: WindowSpec) -> npt.NDArray[np.float64]:
    """Ends of the scene's windows: every hop, on the frame grid, grid phase from the seed."""
    assert spec.video is not None
    fps = spec.video.fps
    phase = (scene.seed % max(1, round(spec.hop_s * fps))) / fps
    ends = np.arange(spec.length_s + phase, scene.duration + 1e-9, spec.hop_s)
    return np.round(ends * fps) / fps


def cut(
    scene: Scene, spec: WindowSpec, end: float
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Video `[T, H, W, 3]` (frames ending at `end`) and audio `[S]` of one window."""
    assert spec.video is not None
    assert spec.audio is not None
    fps, frames = spec.video.fps, spec.video.frames
    last = round(end * fps)
    video = scene.video[last - frames + 1 : last + 1]
    sr, samples = spec.audio.sample_rate, spec.audio.samples
    stop = round(end * sr)
    audio = scene.audio[max(0, stop - samples) : stop]
    if len(audio) < samples:
        audio = np.concatenate([np.zeros(samples - len(audio), np.float32), audio])
    return video, audio


def windows(
    scene: Scene, spec: WindowSpec, stream: str, engine: str = "eval"
) -> Iterator[tuple[Window, npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    """The scene as the service would cut it: `(Window, labels, care)` per hop, labels in
    `engines.labels.LABELS` order."""
    assert spec.video is not None
    fps, frames = spec.video.fps, spec.video.frames
    for seq, end in enumerate(window_ends(scene, spec)):
        video, audio = cut(scene, spec, float(end))
        y, care = window_truth(scene.on, scene.dont_care, LABELS, float(end))
        times = float(end) - (frames - 1 - np.arange(frames)) / fps
        yield (
            Window(
                stream, engine, seq, float(end) - spec.length_s, float(end), video, times, audio
            ),
            y,
            care,
        )


@dataclass(frozen=True, slots=True)
class CrossSet:
    """Stacked windows of many scenes, with the scene each came from."""

    video: npt.NDArray[np.uint8]  # [N, T, H, W, 3]
    audio: npt.NDArray[np.float32]  # [N, S]
    labels: npt.NDArray[np.float32]  # [N, L] in LABELS order
    care: npt.NDArray[np.float32]  # [N, L]
    ends: npt.NDArray[np.float64]  # [N] window end in its scene (s)
    scene: npt.NDArray[np.int64]  # [N] scene index
    cuts: npt.NDArray[np.float64]  # [N] where the scene's stream starts or stops (s); else NaN
    kinds: list[str]  # [N] scene kind

    def __len__(self) -> int:
        return len(self.labels)


def _scene_arrays(scene: Scene, spec: WindowSpec) -> dict[str, npt.NDArray[np.generic]]:
    rows = list(windows(scene, spec, f"crossgen-{scene.seed}"))
    return {
        "video": np.stack([w.video for w, _, _ in rows]),  # type: ignore[misc]
        "audio": np.stack([w.audio for w, _, _ in rows]),  # type: ignore[misc]
        "labels": np.stack([y for _, y, _ in rows]),
        "care": np.stack([c for _, _, c in rows]),
        "ends": np.array([w.end for w, _, _ in rows]),
        "cuts": np.full(len(rows), float(scene.params.get("edge_s", np.nan))),
    }


def build_cross_set(
    spec: WindowSpec,
    scenes: int,
    seed: int = 11,
    cache_dir: Path | None = CACHE_DIR,
    progress: bool = False,
) -> CrossSet:
    """`scenes` scenes of set `seed`, windows stacked; each scene cached as `.npz` under
    `cache_dir/<fingerprint>/` when given."""
    folder = None if cache_dir is None else cache_dir / f"{fingerprint()}-{_spec_key(spec)}"
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, npt.NDArray[np.generic]]] = []
    kinds: list[str] = []
    order = kind_order(seed)
    for i in range(scenes):
        path = None if folder is None else folder / f"s{seed}-{i}.npz"
        if path is not None and path.exists():
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            arrays = _scene_arrays(make_scene(seed, i, spec), spec)
            if path is not None:
                _save(path, arrays)
        parts.append(arrays)
        kinds += [order[i % len(order)]] * len(arrays["labels"])
        if progress and (i + 1) % 25 == 0:
            print(f"crossgen: {i + 1}/{scenes} scenes", flush=True)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    scene_idx = np.concatenate([np.full(len(p["labels"]), i) for i, p in enumerate(parts)])
    return CrossSet(
        video=cat["video"].astype(np.uint8),
        audio=cat["audio"].astype(np.float32),
        labels=cat["labels"].astype(np.float32),
        care=cat["care"].astype(np.float32),
        ends=cat["ends"].astype(np.float64),
        scene=scene_idx.astype(np.int64),
        cuts=cat["cuts"].astype(np.float64),
        kinds=kinds,
    )


def _save(path: Path, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
    """Write then rename: a concurrent reader never sees half a scene."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def _spec_key(spec: WindowSpec) -> str:
    v, a = spec.video, spec.audio
    assert v is not None
    assert a is not None
    return f"{v.frames}x{v.height}x{v.width}@{v.fps:g}-{a.samples}@{a.sample_rate}-{spec.hop_s:g}"
