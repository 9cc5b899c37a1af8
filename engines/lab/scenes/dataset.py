"""Training and evaluation windows: balanced, labelled, rendered straight at the engine's size.

Each example is a fresh short scene built around one window `[W0, W0 + L)`: a kind is drawn
(weights in `KINDS`), its segments are placed so every present label is decisively on or off
by the window rule (present or not over the window's last 0.3 s), and the window is rendered
and labelled by the same rule as long scenes (`truth.window_labels`). Example `i` of
(seed, split) is the same whatever `n` is, so workers can generate disjoint index ranges (`start=`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engines.lab.scenes import camera
from engines.lab.scenes.base import LABELS, SceneRenderer
from engines.lab.scenes.compose import compose_scene
from engines.lab.scenes.kinds import (
    DISTRACTOR_KINDS,
    FUSED_POSITIVE_KINDS,
    KINDS,
    LEVEL_DBFS,
    OTHER_SOUNDS,
    W0,
    Placer,
    traffic,
)
from engines.lab.scenes.pools import check_split, random_ambience, random_look, random_reverb
from engines.lab.scenes.scene import Scene
from engines.lab.scenes.truth import window_care, window_labels
from engines.lab.scenes.variety import vary_segments
from engines.window import WindowSpec

_SPLIT_IDS = {"train": 0, "val": 1, "heldout": 2}
# The kind tables live in `kinds`; evaluation and tests read them here too.
__all__ = [
    "DISTRACTOR_KINDS",
    "FUSED_POSITIVE_KINDS",
    "KINDS",
    "LEVEL_DBFS",
    "W0",
    "Example",
    "TruthWindow",
    "camera_like_clip",
    "example_scene",
    "make_example",
    "render_window",
    "scene_truth_windows",
    "window_examples",
]


@dataclass(frozen=True)
class Example:
    """One labelled window. `care` is 0 for labels that are borderline in this window."""

    video: npt.NDArray[np.uint8]  # [T, H, W, 3]
    audio: npt.NDArray[np.float32]  # [S]
    labels: npt.NDArray[np.float32]  # [len(LABELS)]
    kind: str
    care: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.ones(len(LABELS), dtype=np.float32)
    )


def example_scene(index: int, spec: WindowSpec, *, seed: int, split: str) -> tuple[Scene, str]:
    """The scene behind example `index` and its kind (window at `[W0, W0 + length)`)."""
    check_split(split)
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    weights = np.array([w for _, w, _ in KINDS])
    k = int(rng.choice(len(KINDS), p=weights / weights.sum()))
    kind, _, recipe = KINDS[k]
    placer = Placer(rng, spec.length_s)
    segments = recipe(placer)
    if kind not in ("traffic", "street") and rng.random() < 0.25:
        segments += traffic(placer)  # clutter: something else moving that is not the point
    if kind != "street" and rng.random() < 0.2:
        # other sounds over the main event, so labels co-occur independently of the kind
        segments += placer.maybe(str(rng.choice(OTHER_SOUNDS)))
    duration = W0 + spec.length_s + 2.0
    look = random_look(rng, split)
    # camera and lamp variety from their own generator: the draws above stay as they were
    vary = np.random.default_rng([seed, _SPLIT_IDS[split], index, 2])
    if vary.random() < 0.4:
        look = camera.vary_look(look, vary)
    segments = vary_segments(segments, vary, look.backdrop)
    scene = compose_scene(
        kind, duration, rng=rng, split=split, look=look,
        ambience=random_ambience(rng, split), segments=segments, reverb=random_reverb(rng),
        level=float(10.0 ** (rng.uniform(*LEVEL_DBFS) / 20.0)),
    )  # fmt: skip
    return scene, kind


# The live service receives 4:3 camera frames and shrinks them with area averaging (swscale AREA)
# to the engine's size. Drawing training frames straight at that size gives hard-edged, brighter
# lamps and edges than the service ever sees (a model trained so fired ~0.5 s later live), so
# frames are drawn at a 4:3 multiple of the size and box-averaged down the same way.
SUPERSAMPLE = (3, 4)  # (rows, columns) per output pixel: 192x256 → 64x64, a 4:3 source


def camera_like_clip(
    scene: SceneRenderer,
    times: npt.NDArray[np.float64],
    height: int,
    width: int,
    codec: camera.Codec | None = None,
) -> npt.NDArray[np.uint8]:
    """Frames `[T, height, width, 3]` as the service sees them after its area downscale
    (with `codec`, after a lossy encode and decode at the drawing size, as a camera's stream)."""
    fy, fx = SUPERSAMPLE
    h, w = height * fy, width * fx
    if isinstance(scene, Scene):
        big = scene.render_clip(times, h, w)
    else:
        big = np.stack([scene.render_video(float(t), h, w) for t in times])
    if codec is not None:
        big = camera.codec_roundtrip(big, codec)
    blocks = big.reshape(len(times), height, fy, width, fx, 3).astype(np.float32)
    out: npt.NDArray[np.uint8] = (blocks.mean(axis=(2, 4)) + 0.5).astype(np.uint8)
    return out


def render_window(
    scene: SceneRenderer,
    spec: WindowSpec,
    end: float,
    rng: np.random.Generator | None = None,
    codec: camera.Codec | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Video frames ending at `end` (at `spec.video.fps`) and the audio of `[end - S/sr, end)`.

    With `rng`, each frame is taken up to one 30 fps frame period early, as the live service
    picks frames; with `codec`, the frames go through that encoder and back."""
    if spec.video is None or spec.audio is None:
        raise ValueError("the window spec must have both video and audio")
    v, a = spec.video, spec.audio
    times = end - (v.frames - 1 - np.arange(v.frames)) / v.fps
    if rng is not None:  # live, a window takes the newest 30 fps frame at or before each time
        times = times - rng.uniform(0.0, 1.0 / 30.0, size=len(times))
    video = camera_like_clip(scene, times, v.height, v.width, codec)
    audio = scene.render_audio(end - a.samples / a.sample_rate, a.samples, a.sample_rate)
    return video, audio


def make_example(index: int, spec: WindowSpec, *, seed: int, split: str) -> Example:
    """Example `index` of (seed, split)."""
    scene, kind = example_scene(index, spec, seed=seed, split=split)
    end = W0 + spec.length_s
    jitter = np.random.default_rng([seed, _SPLIT_IDS[split], index, 1])
    effects = np.random.default_rng([seed, _SPLIT_IDS[split], index, 3])
    video, audio = render_window(scene, spec, end, jitter, camera.draw_codec(effects))
    video = camera.post_noise(video, effects)
    truth = scene.truth
    labels, care = window_labels(truth, W0, end), window_care(truth, W0, end)
    if kind in camera.EDGE_KINDS and spec.video is not None and spec.audio is not None:
        video, audio, labels, care = camera.stream_edge(
            kind, video, audio, labels, care, effects, spec.video.fps, spec.audio.sample_rate
        )
    return Example(video, audio, labels, kind, care)


def window_examples(
    n: int, spec: WindowSpec, *, seed: int, split: str, start: int = 0
) -> Iterator[Example]:
    """`n` examples (indices `start..start+n-1`) of `split` in {train, val, heldout}."""
    check_split(split)
    for i in range(start, start + n):
        yield make_example(i, spec, seed=seed, split=split)


@dataclass(frozen=True)
class TruthWindow:
    """The truth of one window of a long scene, cut as the service would cut it."""

    start: float
    end: float
    labels: npt.NDArray[np.float32]
    care: npt.NDArray[np.float32]


def scene_truth_windows(
    renderer: SceneRenderer, spec: WindowSpec, *, hop_s: float | None = None
) -> list[TruthWindow]:
    """Windows ending every hop from `length_s` to the scene's end, with labels and care."""
    hop = hop_s or spec.hop_s
    if not np.isfinite(renderer.duration_s):
        raise ValueError(f"{renderer.name} is endless: cut windows of a finite scene")
    truth = renderer.truth
    count = int(np.floor((renderer.duration_s - spec.length_s) / hop + 1e-9)) + 1
    out = []
    for i in range(max(0, count)):
        end = spec.length_s + i * hop
        start = end - spec.length_s
        out.append(
            TruthWindow(
                start, end, window_labels(truth, start, end), window_care(truth, start, end)
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m engines.lab.scenes.dataset [N]`: generation throughput for the avfusion window."""
    import sys
    import time

    from engines.window import AudioSpec, VideoSpec

    n = int((argv if argv is not None else sys.argv[1:] or ["1000"])[0])
    spec = WindowSpec(1.0, 0.5, VideoSpec(8, 8.0, 64, 64), AudioSpec(16000, 16000))
    for _ in window_examples(200, spec, seed=1, split="train"):
        pass  # warm the per-process caches (speech bank, background loops, backdrops)
    t = time.perf_counter()
    for _ in window_examples(n, spec, seed=2, split="train"):
        pass
    rate = n / (time.perf_counter() - t)
    print(f"{rate:.0f} windows/s on one core (8x64x64 video + 16000 samples, {n} windows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
