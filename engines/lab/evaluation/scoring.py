"""Scoring windows through the same runtime path the service uses (`engines.runtime.loader`).

An evaluated engine is loaded by name (bundled or from a user directory, or straight from an
engine directory) on the chosen backend, and fed `engines.window.Window` objects exactly as the
scheduler would, so evaluation measures what runs live: the manifest's activation, padding to
built batch sizes, the backend's numerics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.config import EnginesConfig
from engines.runtime.engine import Engine
from engines.runtime.interface import EngineError
from engines.runtime.loader import LoadReport, discover, load_engine
from engines.runtime.manifest import load_manifest
from engines.window import Window, WindowSpec

DEFAULT_THRESHOLD = 0.5  # window-level decision where the manifest sets no `on`


@dataclass(slots=True)
class Scorer:
    """A loaded engine plus how it was loaded."""

    engine: Engine
    report: LoadReport

    @property
    def labels(self) -> tuple[str, ...]:
        """Score labels in output order."""
        return self.engine.labels

    @property
    def spec(self) -> WindowSpec:
        """The windows the engine consumes."""
        return self.engine.spec

    def window_thresholds(
        self, labels: Sequence[str], default: float = DEFAULT_THRESHOLD
    ) -> npt.NDArray[np.float64]:
        """Decision threshold per label in `labels` order: the manifest's `[thresholds.<label>]`
        `on` (where an event starts), else `default`. Window metrics score at these, so they
        measure the decisions the service makes."""
        tables = self.engine.manifest.doc.thresholds
        out = [
            float(on)
            if (t := tables.get(label)) is not None and (on := t.on) is not None
            else default
            for label in labels
        ]
        return np.asarray(out, dtype=np.float64)

    def score(
        self,
        video: npt.NDArray[np.uint8] | None,
        audio: npt.NDArray[np.float32] | None,
        *,
        stream: str = "eval",
        t0: float = 0.0,
        independent: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Scores `[N, labels]` for N windows given as stacked arrays (either may be None).

        Windows are consecutive hops of one stream starting at `t0` (a scene, run as the
        service would), or with `independent` each its own stream, so that a stateful engine
        never carries state from one unrelated window into the next. Batches are the engine's
        largest built size.
        """
        n = len(video) if video is not None else len(audio) if audio is not None else 0
        spec, step = self.engine.spec, self.engine.batch_sizes[-1]
        out: list[npt.NDArray[np.float32]] = []
        for i in range(0, n, step):
            windows = [
                _window(spec, f"{stream}-{j}" if independent else stream, j, t0, video, audio)
                for j in range(i, min(i + step, n))
            ]
            out.extend(self.engine.window_scores(windows))
            if independent:
                for w in windows:
                    self.engine.release(w.stream)
        if not independent:
            self.engine.release(stream)
        return np.stack(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def close(self) -> None:
        """Release the backend."""
        self.engine.backend.close()


def _window(
    spec: WindowSpec,
    stream: str,
    j: int,
    t0: float,
    video: npt.NDArray[np.uint8] | None,
    audio: npt.NDArray[np.float32] | None,
) -> Window:
    end = t0 + spec.length_s + j * spec.hop_s
    frame_times = None
    if spec.video is not None:
        frames = spec.video.frames
        frame_times = end - (frames - 1 - np.arange(frames)) / spec.video.fps
    return Window(
        stream=stream,
        engine="eval",
        seq=j,
        start=end - spec.length_s,
        end=end,
        video=None if video is None else np.ascontiguousarray(video[j]),
        frame_times=frame_times,
        audio=None if audio is None else np.ascontiguousarray(audio[j], dtype=np.float32),
    )


def load_scorer(
    engine: str | Path,
    *,
    backend: str | None = None,
    user_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> Scorer:
    """Load an engine by name (bundled/user) or from an engine directory, on `backend`
    (default: the service's preference order, best available first)."""
    path = Path(engine)
    if path.is_dir() and (path / "engine.toml").exists():
        manifest = load_manifest(path)
    else:
        found = discover(user_dir)
        if str(engine) not in found.manifests:
            known = ", ".join(sorted(found.manifests)) or "none"
            raise EngineError(f"engine {engine!r} not found (found: {known})")
        manifest = found.manifests[str(engine)]
    settings: dict[str, Any] = {"enabled": [manifest.name], "user_dir": user_dir}
    if backend:
        settings["backends"] = [backend]
    if cache_dir:
        settings["cache_dir"] = cache_dir
    loaded, report = load_engine(manifest, EnginesConfig(**settings))
    return Scorer(loaded, report)
