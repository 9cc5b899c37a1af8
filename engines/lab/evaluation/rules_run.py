"""Engines run over generated scenes for the rules' evaluation (`scenestream evaluate --rules`).

A scene is drawn once and every engine cuts its own windows from it on its own grid (its
`WindowSpec`: length, hop, frames at its fps and size, audio at its rate), windows ending every
hop from the scene's start, fed as one stream through the service's runtime path
(`engines.lab.evaluation.scoring.load_scorer`). The pure part (observations, rule scores,
metrics) is `engines.lab.evaluation.rules_eval`.

Scene sets:

- `in`: the training generator's held-out split (`engines/lab/scenes`, split `heldout`, seed
  7): each example's whole 5 s scene, frames drawn at each engine's size as the training
  windows are (`camera_like_clip`), truth from its label intervals (`window_labels`);
- `cross`: the independent generator (`engines/lab/crossgen`, seed 11): scene `i` rendered once
  at the largest frame size and fps any engine asks for, frames resized to each engine's size
  as the service's ingest does (area), truth by `crossgen.truth.window_truth`. A scene drawn at
  416 px is not the pixel-identical scene of `evaluate --set cross` (drawn at 64 px): the
  generator's random draws follow the frame size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from engines.lab.evaluation.report import THRESHOLD, window_metrics
from engines.lab.evaluation.rules_eval import (
    EngineWindow,
    compare_metrics,
    engine_observations,
    input_summary,
    rule_scores_at,
    shipped_rules,
)
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.labels import LABELS
from engines.rules import Observation, RulesConfig
from engines.runtime.interface import detections_of
from engines.window import AudioSpec, VideoSpec, Window, WindowSpec

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
IN_SEED = 7  # the held-out split's seed (`suite.SET_SEEDS["heldout"]`)
CROSS_SEED = 11  # the cross set's seed (`cross.CROSS_SEED`)
RULES_SCENES = 24  # one cycle of the cross generator's kinds


class SceneClips(Protocol):
    """One generated scene, cut by any engine."""

    @property
    def kind(self) -> str:
        """The scene kind."""
        ...

    @property
    def duration(self) -> float:
        """Seconds."""
        ...

    def video(self, times: npt.NDArray[np.float64], height: int, width: int) -> U8:
        """Frames `[T, height, width, 3]` at scene times `times`."""
        ...

    def audio(self, end: float, samples: int, sample_rate: int) -> F32:
        """The `samples` before scene time `end`."""
        ...

    def truth(self, start: float, end: float) -> tuple[F32, F32]:
        """(labels, care) of the window `[start, end]` in `LABELS` order."""
        ...


@dataclass(slots=True)
class InScene:
    """A held-out example's scene from the training generator."""

    scene: Any  # engines.lab.scenes.scene.Scene
    kind_name: str

    @property
    def kind(self) -> str:
        """The example's kind."""
        return self.kind_name

    @property
    def duration(self) -> float:
        """Seconds."""
        return float(self.scene.duration_s)

    def video(self, times: npt.NDArray[np.float64], height: int, width: int) -> U8:
        """As the training windows are drawn (4:3 supersampled, area-averaged)."""
        from engines.lab.scenes.dataset import camera_like_clip

        return camera_like_clip(self.scene, times, height, width)

    def audio(self, end: float, samples: int, sample_rate: int) -> F32:
        """Rendered at the asked rate."""
        out: F32 = self.scene.render_audio(end - samples / sample_rate, samples, sample_rate)
        return out

    def truth(self, start: float, end: float) -> tuple[F32, F32]:
        """The training generator's window rule."""
        from engines.lab.scenes.truth import window_care, window_labels

        return window_labels(self.scene.truth, start, end), window_care(
            self.scene.truth, start, end
        )


@dataclass(slots=True)
class CrossScene:
    """A cross-generator scene, rendered once at `fps` (frame k at k / fps)."""

    scene: Any  # engines.lab.crossgen.compose.Scene
    fps: float

    @property
    def kind(self) -> str:
        """The scene kind."""
        return str(self.scene.kind)

    @property
    def duration(self) -> float:
        """Seconds."""
        return float(self.scene.duration)

    def video(self, times: npt.NDArray[np.float64], height: int, width: int) -> U8:
        """The frames at (nearest to) `times`, resized as the service's ingest does."""
        from engines.lab.photos import resize_like_service

        frames: U8 = self.scene.video
        idx = np.clip(np.round(times * self.fps).astype(int), 0, len(frames) - 1)
        picked = frames[idx]
        if picked.shape[1:3] == (height, width):
            return np.ascontiguousarray(picked)
        return np.stack([resize_like_service(f, height, width) for f in picked]).astype(np.uint8)

    def audio(self, end: float, samples: int, sample_rate: int) -> F32:
        """As `crossgen.dataset.cut` does (zeros before the scene's start)."""
        stop = round(end * sample_rate)
        out = np.asarray(self.scene.audio[max(0, stop - samples) : stop], np.float32)
        if len(out) < samples:
            out = np.concatenate([np.zeros(samples - len(out), np.float32), out])
        return out

    def truth(self, start: float, end: float) -> tuple[F32, F32]:
        """The cross generator's window rule (the window's last 0.3 s)."""
        from engines.lab.crossgen.truth import window_truth

        return window_truth(self.scene.on, self.scene.dont_care, LABELS, end)


def in_scenes(spec: WindowSpec, count: int, seed: int = IN_SEED) -> list[SceneClips]:
    """The first `count` held-out examples' scenes (drawn for the comparison engine's spec)."""
    from engines.lab.scenes.dataset import example_scene

    out: list[SceneClips] = []
    for i in range(count):
        scene, kind = example_scene(i, spec, seed=seed, split="heldout")
        out.append(InScene(scene, kind))
    return out


def render_spec(specs: Sequence[WindowSpec], base: WindowSpec) -> WindowSpec:
    """`base` with frames at the largest size and fps any spec asks for (a cross scene is drawn
    once for all engines)."""
    videos = [s.video for s in specs if s.video is not None]
    if base.video is None or base.audio is None:
        raise ValueError("the comparison engine must take audio and video")
    height = max(v.height for v in videos)
    width = max(v.width for v in videos)
    fps = max(v.fps for v in videos)
    rates = {s.audio.sample_rate for s in specs if s.audio is not None}
    if len(rates) > 1:
        raise ValueError(f"engines want different audio rates {sorted(rates)}")
    video = VideoSpec(frames=base.video.frames, fps=fps, height=height, width=width)
    audio = AudioSpec(sample_rate=base.audio.sample_rate, samples=base.audio.samples)
    return WindowSpec(base.length_s, base.hop_s, video, audio, base.labels_at)


def cross_scene(spec: WindowSpec, index: int, seed: int = CROSS_SEED) -> SceneClips:
    """Cross scene `index` of set `seed`, rendered for `spec` (see `render_spec`)."""
    from engines.lab.crossgen import make_scene

    assert spec.video is not None
    return CrossScene(make_scene(seed, index, spec), spec.video.fps)


def window_ends(spec: WindowSpec, duration: float) -> list[float]:
    """Ends of an engine's windows over a scene: every hop from `length_s`."""
    count = int(np.floor((duration - spec.length_s) / spec.hop_s + 1e-9)) + 1
    return [round(spec.length_s + k * spec.hop_s, 6) for k in range(max(0, count))]


def cut(spec: WindowSpec, clips: SceneClips, stream: str, seq: int, end: float) -> Window:
    """The engine's window ending at `end` of the scene."""
    video = times = audio = None
    if spec.video is not None:
        v = spec.video
        times = end - (v.frames - 1 - np.arange(v.frames)) / v.fps
        video = clips.video(times, v.height, v.width)
    if spec.audio is not None:
        audio = clips.audio(end, spec.audio.samples, spec.audio.sample_rate)
    return Window(stream, "eval", seq, end - spec.length_s, end, video, times, audio)


def run_engine(scorer: Scorer, clips: SceneClips, stream: str) -> list[EngineWindow]:
    """The engine's windows of the scene, run as one stream in order."""
    engine, spec = scorer.engine, scorer.spec
    windows = [
        cut(spec, clips, stream, j, e) for j, e in enumerate(window_ends(spec, clips.duration))
    ]
    out: list[EngineWindow] = []
    step = engine.batch_sizes[-1]
    try:
        for i in range(0, len(windows), step):
            group = windows[i : i + step]
            for w, scores in zip(group, engine.infer(group), strict=True):
                dets = detections_of(scores)
                out.append(EngineWindow(w.start, w.end, dict(scores), dets))
    finally:
        engine.release(stream)
    return out


def evaluate_rules(
    configs: Sequence[Sequence[str]],
    which: str,
    scenes: int,
    *,
    compare: str = "avfusion",
    backend: str | None = None,
    rules: RulesConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The rules over each configuration of input engines, next to `compare`'s learned
    labels, on `scenes` scenes of the `in` or `cross` set (see the module docstring)."""
    if which not in ("in", "cross"):
        raise ValueError(f"set {which!r}: in or cross")
    names = sorted({compare, *(n for c in configs for n in c)})
    scorers = {n: load_scorer(n, backend=backend) for n in names}
    try:
        return _evaluate(scorers, configs, which, scenes, compare, rules, progress)
    finally:
        for s in scorers.values():
            s.close()


def _evaluate(
    scorers: dict[str, Scorer],
    configs: Sequence[Sequence[str]],
    which: str,
    scenes: int,
    compare: str,
    rules_config: RulesConfig | None,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    base = scorers[compare]
    rules = shipped_rules(rules_config)
    labels = [r.label for r in rules]
    learned_cols = [list(base.labels).index(x) if x in base.labels else -1 for x in labels]
    truth_cols = [LABELS.index(x) for x in labels]
    spec = render_spec([s.spec for s in scorers.values()], base.spec)
    in_list = in_scenes(base.spec, scenes) if which == "in" else []
    truth_rows: list[F32] = []
    care_rows: list[F32] = []
    learned_rows: list[F32] = []
    rule_rows: list[list[F32]] = [[] for _ in configs]
    observed: dict[str, list[Observation]] = {n: [] for n in scorers}
    kinds: list[str] = []
    for i in range(scenes):
        clips = in_list[i] if which == "in" else cross_scene(spec, i)
        stream = f"rules-{which}-{i}"
        obs: dict[str, list[Observation]] = {}
        results: dict[str, list[EngineWindow]] = {}
        for name, scorer in scorers.items():
            results[name] = run_engine(scorer, clips, stream)
            obs[name] = engine_observations(name, scorer.spec.labels_at, results[name])
            observed[name] += obs[name]
        ends = [w.end for w in results[compare]]
        for w in results[compare]:
            y, care = clips.truth(w.start, w.end)
            truth_rows.append(y[truth_cols])
            care_rows.append(care[truth_cols])
            learned_rows.append(
                np.array([w.scores[base.labels[j]] if j >= 0 else 0.0 for j in learned_cols])
            )
        kinds += [clips.kind] * len(ends)
        for k, config in enumerate(configs):
            fused = [o for n in config for o in obs[n]]
            rule_rows[k].append(rule_scores_at(fused, rules, ends))
        if progress is not None:
            progress(f"rules: scene {i + 1}/{scenes} ({clips.kind})")
    truth = np.stack(truth_rows).astype(np.float32)
    care = np.stack(care_rows).astype(np.float32)
    learned = np.stack(learned_rows).astype(np.float32)
    result: dict[str, Any] = {
        "set": which,
        "seed": IN_SEED if which == "in" else CROSS_SEED,
        "scenes": scenes,
        "windows": len(truth),
        "threshold": THRESHOLD,
        "compare": compare,
        "backends": {n: s.report.backend for n, s in scorers.items()},
        "render": {"fps": spec.video.fps, "height": spec.video.height} if spec.video else None,
        "rules": {r.label: r.model_dump(mode="json") for r in rules},
        "windows_per_kind": {k: kinds.count(k) for k in sorted(set(kinds))},
        "labels": labels,
        "learned": (
            window_metrics(truth, learned, care, labels)["labels"] if compare in scorers else {}
        ),
        "configs": [
            {
                "inputs": list(config),
                "labels": compare_metrics(truth, care, np.concatenate(rows), None, labels),
            }
            for config, rows in zip(configs, rule_rows, strict=True)
        ],
        "inputs": {n: input_summary(o) for n, o in observed.items()},
    }
    for label, col in zip(labels, learned_cols, strict=True):
        if col < 0:
            result["learned"].pop(label, None)
    return result
