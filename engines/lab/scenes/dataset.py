"""Training and evaluation windows: balanced, labelled, rendered straight at the engine's size.

Each example is a fresh short scene built around one window `[W0, W0 + L)`: a kind is drawn
(weights in `KINDS`), its segments are placed so every present label is decisively on or off
by the window rule (present or not over the window's last 0.3 s), and the window is rendered
and labelled by the same rule as long scenes (`truth.window_labels`). Example `i` of
(seed, split) is the same whatever `n` is, so workers can generate disjoint index ranges (`start=`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.lab.scenes import camera
from engines.lab.scenes.base import LABELS, SceneRenderer
from engines.lab.scenes.compose import SegmentSpec, compose_scene
from engines.lab.scenes.pools import check_split, random_ambience, random_look, random_reverb
from engines.lab.scenes.scene import Scene
from engines.lab.scenes.truth import window_care, window_labels
from engines.lab.scenes.variety import vary_segments
from engines.window import WindowSpec

W0 = 2.0  # window start on each example's own timeline: room for history before it
_SPLIT_IDS = {"train": 0, "val": 1, "heldout": 2}


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


class _Placer:
    """Places segments relative to the window `[W0, W0 + L)` of one example."""

    def __init__(self, rng: np.random.Generator, length: float) -> None:
        self.rng, self.L = rng, length

    def covering(self) -> tuple[float, float]:
        """Positive: present through the window's end (40 % of the time starting inside it).

        Onsets inside the window, from 0.26 s before its end back to its start, teach the model
        to call a label on the little evidence the window rule asks for (`truth.TAIL_S`): the
        service starts an event on the first window whose end sees it.
        """
        r, end = self.rng, W0 + self.L
        # at most ~3 s long: an approach this short closes in fast enough to see in one window
        a, b = W0 - r.uniform(0.2, 1.2), end + r.uniform(0.2, 1.0)
        if r.random() < 0.4:
            a = end - r.uniform(0.26, self.L)
        return a, b

    def covering_long(self) -> tuple[float, float]:
        """A segment of 2.5–5 s (slow approaches, as in scripts) through the window's end,
        starting inside the window 40 % of the time: a slow approach must be called as soon
        as its growth shows, not only once it fills the window."""
        r, end = self.rng, W0 + self.L
        if r.random() < 0.4:
            a = end - r.uniform(0.26, self.L)
            return a, a + r.uniform(2.5, 5.0)
        return W0 - r.uniform(1.0, 2.5), end + r.uniform(0.5, 1.5)

    def edge(self) -> tuple[float, float]:
        """Hard negative: ended 0.26 s or more before the window's end (65 %), or starts in its
        last 0.05 s (the window has heard or seen almost nothing of it yet)."""
        r, end = self.rng, W0 + self.L
        if r.random() < 0.65:
            b = end - r.uniform(0.26, self.L - 0.05)
            return b - r.uniform(0.5, 2.0), b
        a = end - r.uniform(0.0, 0.05)
        return a, a + r.uniform(0.5, 2.0)

    def away(self, gap: float) -> tuple[float, float]:
        """Entirely at least `gap` seconds before or after the window."""
        r, end = self.rng, W0 + self.L
        if r.random() < 0.5:
            b = W0 - gap - r.uniform(0.0, 1.0)
            return b - r.uniform(1.0, 3.0), b
        a = end + gap + r.uniform(0.0, 1.0)
        return a, a + r.uniform(1.0, 3.0)

    def maybe(self, kind: str, params: dict[str, Any] | None = None) -> list[SegmentSpec]:
        """`kind` covering the window, at its edge, or absent."""
        u = self.rng.random()
        if u < 0.55:
            return [(kind, *self.covering(), params or {})]
        if u < 0.7:
            return [(kind, *self.edge(), params or {})]
        return []


Recipe = Callable[[_Placer], list[SegmentSpec]]


def _ev_motion(p: _Placer) -> dict[str, Any]:
    """How vehicles with emergency lamps move: the same for positives and distractors, so the
    motion of a flashing vehicle says nothing about whether a siren goes with it."""
    motion = "approach" if p.rng.random() < 0.5 else str(p.rng.choice(["static", "pass", "recede"]))
    return {"motion": motion}


def _emergency(p: _Placer) -> list[SegmentSpec]:
    motion = _ev_motion(p)
    slow = motion["motion"] == "approach" and p.rng.random() < 0.4  # as in the scripts
    return [("emergency_vehicle", *(p.covering_long() if slow else p.covering()), motion)]


def _lights_silent(p: _Placer) -> list[SegmentSpec]:
    return [("lights", *p.covering(), _ev_motion(p))]


def _approach(p: _Placer) -> list[SegmentSpec]:
    span = p.covering_long() if p.rng.random() < 0.5 else p.covering()
    return [("approach", *span, {})]


def _collision(p: _Placer) -> list[SegmentSpec]:
    stop = W0 + p.rng.uniform(0.5, 0.92) * p.L
    a, b = stop - p.rng.uniform(0.8, 4.0), stop + p.rng.uniform(0.4, 1.5)
    return [("collision", a, b, {"stop_at": stop})]


def _stop_silent(p: _Placer) -> list[SegmentSpec]:
    """An object approaches and stops without a sound: in the window, or (half of the time)
    before it, so the window shows a big object at rest after its approach."""
    if p.rng.random() < 0.5:
        stop = W0 + p.rng.uniform(0.5, 0.92) * p.L
    else:
        stop = W0 - p.rng.uniform(0.0, 1.5)
    a, b = stop - p.rng.uniform(0.8, 2.5), max(stop, W0 + p.L) + p.rng.uniform(0.4, 1.5)
    return [("vehicle", a, b, {"motion": "approach", "stop_at": stop, "lamps": "none"})]


def _impact_static(p: _Placer) -> list[SegmentSpec]:
    at = W0 + p.rng.uniform(0.5, 0.92) * p.L  # where collisions put theirs
    out: list[SegmentSpec] = [("impact", at - 0.1, at + 0.5, {"at": at})]
    u = p.rng.random()
    if u < 0.7:  # something in view that does not approach: parked, passing or leaving
        motion = "static" if u < 0.4 else str(p.rng.choice(["pass", "recede"]))
        out.append(("vehicle", W0 - 1.0, W0 + p.L + 1.0, {"motion": motion}))
    return out


def _separated(p: _Placer) -> list[SegmentSpec]:
    lights: SegmentSpec = ("lights", *p.covering(), _ev_motion(p))
    siren: SegmentSpec = ("siren", *p.covering(), {})
    near, far = (lights, siren) if p.rng.random() < 0.5 else (siren, lights)
    return [near, (far[0], *p.away(p.rng.uniform(1.0, 3.0)), far[3])]


def _hazard_siren(p: _Placer) -> list[SegmentSpec]:
    return [("hazard_lights", *p.covering(), {}), ("siren", *p.covering(), {})]


def _mixed(p: _Placer) -> list[SegmentSpec]:
    kinds = ["speech", "horn", "alarm", "siren", "lights", "hazard_lights", "approach", "tonal"]
    picks = p.rng.choice(len(kinds), size=int(p.rng.integers(2, 4)), replace=False)
    return [seg for i in picks for seg in p.maybe(kinds[int(i)])]


def _traffic(p: _Placer) -> list[SegmentSpec]:
    motion = str(p.rng.choice(["pass", "recede", "static"]))
    lamps = str(p.rng.choice(["none", "tail", "steady"], p=[0.4, 0.35, 0.25]))
    span = p.covering()
    if p.rng.random() < 0.3:  # pops into view mid-window: appearing is not approaching
        span = (W0 + p.rng.uniform(0.1, 0.9) * p.L, max(span[1], W0 + p.L + 0.3))
    return [("vehicle", *span, {"motion": motion, "lamps": lamps})]


def _warning_lights(p: _Placer) -> list[SegmentSpec]:
    """Amber or white lamps flashing like emergency ones (half of the time with a siren)."""
    out: list[SegmentSpec] = [("hazard_lights", *p.covering(), {"lamps": "warning"})]
    if p.rng.random() < 0.5:
        out.append(("siren", *p.covering(), {}))
    return out


def _departing(p: _Placer) -> list[SegmentSpec]:
    """Objects that are in view but not approaching: leaving (at any rate), passing close by,
    or parked big in front of the camera."""
    motion = str(p.rng.choice(["recede", "pass", "static"], p=[0.45, 0.25, 0.3]))
    lamps = str(p.rng.choice(["none", "tail"]))
    return [("vehicle", *p.covering(), {"motion": motion, "lamps": lamps})]


def _stream_edge(p: _Placer) -> list[SegmentSpec]:
    """What plays while a stream starts or stops: nothing that needs the picture to be seen
    (the cut makes it undecidable), traffic, or a sound."""
    u = p.rng.random()
    if u < 0.3:
        return []
    if u < 0.55:
        return _departing(p)
    if u < 0.7:
        return [("hazard_lights", *p.covering(), {})]
    return [(str(p.rng.choice(["speech", "horn", "alarm", "siren"])), *p.covering(), {})]


# (kind, weight, recipe; weights are normalised). Fused positives ~15 % each of all kinds,
# distractors ~35 % (lone impacts are common, so hearing an impact alone is never enough for
# `collision`).
KINDS: tuple[tuple[str, float, Recipe], ...] = (
    ("emergency", 0.19, _emergency),
    ("collision", 0.20, _collision),
    ("radio_siren", 0.06, lambda p: [("siren", *p.covering(), {})]),
    ("lights_silent", 0.06, _lights_silent),
    ("hazard_silent", 0.03, lambda p: [("hazard_lights", *p.covering(), {})]),
    ("hazard_siren", 0.03, _hazard_siren),
    ("separated", 0.04, _separated),
    ("impact_static", 0.10, _impact_static),
    ("stop_silent", 0.05, _stop_silent),
    ("street", 0.02, lambda p: []),
    ("speech", 0.06, lambda p: [("speech", *p.covering(), {})]),
    ("horn", 0.05, lambda p: [("horn", *p.covering(), {})]),
    ("alarm", 0.05, lambda p: [("alarm", *p.covering(), {})]),
    ("approach", 0.05, _approach),
    ("traffic", 0.03, _traffic),
    ("mixed", 0.03, _mixed),
    ("warning_lights", 0.04, _warning_lights),
    ("departing", 0.04, _departing),
    ("stream_start", 0.02, _stream_edge),
    ("stream_stop", 0.02, _stream_edge),
)


# --- Audio variety (sounds/): sounds that carry no label, and real recordings ---------------
# Tonal and musical distractors (instruments, whistling, ring tones, music), noise that starts
# and stops (pink, brown, traffic, HVAC, babble), and real `train` recordings with their own
# labels (synthesised stand-ins when none are fetched). Each also joins other kinds as the
# "other sound" below, so distractors sound over sirens, horns and alarms too.
AUDIO_VARIETY_KINDS: tuple[tuple[str, float, Recipe], ...] = (
    ("tonal", 0.07, lambda p: [("tonal", *p.covering(), {})]),
    ("noise_burst", 0.02, lambda p: [("noise", *p.covering(), {})]),
    ("recording", 0.04, lambda p: [("recording", *p.covering(), {})]),
)
OTHER_SOUNDS = ("speech", "horn", "horn", "alarm", "alarm", "tonal", "tonal", "noise", "recording")
LEVEL_DBFS = (-35.0, -10.0)  # RMS of the loudest source
KINDS = KINDS + AUDIO_VARIETY_KINDS
# ---------------------------------------------------------------------------------------------

# Kinds built to tempt a model into a fused label it must not give.
DISTRACTOR_KINDS = frozenset(
    {"radio_siren", "lights_silent", "hazard_silent", "hazard_siren", "separated",
     "impact_static", "stop_silent", "warning_lights"}
)  # fmt: skip
FUSED_POSITIVE_KINDS = frozenset({"emergency", "collision"})


def example_scene(index: int, spec: WindowSpec, *, seed: int, split: str) -> tuple[Scene, str]:
    """The scene behind example `index` and its kind (window at `[W0, W0 + length)`)."""
    check_split(split)
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    weights = np.array([w for _, w, _ in KINDS])
    k = int(rng.choice(len(KINDS), p=weights / weights.sum()))
    kind, _, recipe = KINDS[k]
    placer = _Placer(rng, spec.length_s)
    segments = recipe(placer)
    if kind not in ("traffic", "street") and rng.random() < 0.25:
        segments += _traffic(placer)  # clutter: something else moving that is not the point
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
