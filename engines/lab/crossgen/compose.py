"""A scene being drawn (`SceneDraft`) and its rendering into audio, video and label spans
(`Scene`): background bed, sources mixed at an SNR, reverb, level; the stage rendered through
the camera, optional codec round trip, blanked stretches for stream starts and stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.window import WindowSpec

from .ambience import noise_bed
from .codec import CODECS, roundtrip
from .dsp import F64, db, reverb, rms
from .sounds import NOISE_BEDS, Source
from .truth import Span, intersect, spans_where
from .visuals import Beacon, Stage, background, camera, render

RENDER_SCALE = 2  # frames are drawn at twice the engine's size, then area-averaged


@dataclass(slots=True)
class SceneDraft:
    """What a scene kind draws into: sources, lights, the stage and the label spans."""

    kind: str
    rng: np.random.Generator
    spec: WindowSpec
    duration: float
    stage: Stage
    on: dict[str, list[Span]] = field(default_factory=dict)
    dont_care: dict[str, list[Span]] = field(default_factory=dict)
    sources: list[tuple[F64, float]] = field(default_factory=list)
    jolts: list[float] = field(default_factory=list)
    blanks: list[tuple[Span, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def sr(self) -> int:
        """Audio sample rate."""
        assert self.spec.audio is not None
        return self.spec.audio.sample_rate

    @property
    def n(self) -> int:
        """Audio samples in the scene."""
        return round(self.duration * self.sr)

    def sound(self, src: Source, label: str | None, snr: tuple[float, float] = (0.0, 20.0)) -> None:
        """Add a source at a random SNR over the bed; its spans turn `label` on."""
        level = float(self.rng.uniform(*snr))
        self.sources.append((src.signal, level))
        self.params.setdefault("sources", []).append(src.params)
        if label is None:
            return
        self.dont_care.setdefault(label, []).extend(src.unsure)
        if src.gain is None:
            self.on.setdefault(label, []).extend(src.spans)
        else:  # a distant source under the bed is not called: on only where audible
            times = np.arange(0.0, self.duration, 0.02)
            g = src.gain[np.minimum((times * self.sr).astype(int), self.n - 1)]
            audible = level + 20 * np.log10(np.maximum(g, 1e-6)) >= 0.0
            self.on.setdefault(label, []).extend(intersect(src.spans, spans_where(times, audible)))
            self.dont_care.setdefault(label, []).extend(
                intersect(src.spans, spans_where(times, ~audible))
            )

    def light(self, beacon: Beacon, label: str | None) -> None:
        """Add flashing lamps; `label` is on while they flash inside the picture."""
        self.stage.beacons.append(beacon)
        if label is None:
            return
        times = np.arange(0.0, self.duration, 0.02)
        inside = (times >= beacon.span[0]) & (times < beacon.span[1])
        if beacon.on_track and self.stage.track is not None:
            xs = np.array([self.stage.track.at(float(t))[0] for t in times])
            inside &= (xs > 0) & (xs < self.stage.size)
        self.mark(label, times, inside)
        self.params["beacon"] = {
            "style": beacon.style,
            "hz": round(beacon.hz, 2),
            "colours": "/".join(beacon.colours),
        }

    def mark(self, label: str, times: F64, mask: npt.NDArray[np.bool_]) -> None:
        """Turn `label` on where `mask` holds."""
        self.on.setdefault(label, []).extend(spans_where(times, mask))

    def unsure(self, label: str, times: F64, mask: npt.NDArray[np.bool_]) -> None:
        """Leave `label` unscored where `mask` holds."""
        self.dont_care.setdefault(label, []).extend(spans_where(times, mask))

    def jolt(self, t: float) -> None:
        """Shake the camera hard for a few frames from `t` (an impact)."""
        self.jolts.append(t)

    def blank(self, span: Span, mode: str) -> None:
        """No picture and no sound over `span`: black, grey or a frozen frame."""
        self.blanks.append((span, mode))


@dataclass(frozen=True, slots=True)
class Scene:
    """A rendered scene: full-length audio and frames (frame k at k/fps), label spans."""

    kind: str
    seed: int
    duration: float
    audio: npt.NDArray[np.float32]
    video: npt.NDArray[np.uint8]
    on: dict[str, list[Span]]
    dont_care: dict[str, list[Span]]
    params: dict[str, Any]


def new_draft(kind: str, seed: int, spec: WindowSpec, rng: np.random.Generator) -> SceneDraft:
    """An empty scene of `kind` with a random backdrop."""
    if spec.video is None or spec.audio is None:
        raise ValueError("the cross-generator renders audio+video windows")
    size = spec.video.height * RENDER_SCALE
    stage = Stage(size=size, background=background(size, rng), ambient=rng.uniform(0.4, 1.2))
    stage.body_colour = tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))  # type: ignore[assignment]
    duration = float(rng.choice([6.0, 7.0, 8.0]))
    return SceneDraft(kind, rng, spec, duration, stage, params={"seed": seed})


def mix_audio(d: SceneDraft) -> npt.NDArray[np.float32]:
    """Bed + sources at their SNRs, reverb, scene level (-35..-10 dBFS), blanks silenced."""
    bed_kind = NOISE_BEDS[int(d.rng.integers(len(NOISE_BEDS)))]
    if bed_kind == "crowd":  # babble is voices: speech cannot be called against it
        d.dont_care.setdefault("speech", []).append((0.0, d.duration))
    x = noise_bed(bed_kind, d.n, d.sr, d.rng)
    rt60, wet = d.rng.uniform(0.0, 1.0), d.rng.uniform(0.0, 0.5)
    for sig, snr in d.sources:
        x = x + db(snr) * reverb(sig, d.sr, rt60, wet, d.rng)
    level = d.rng.uniform(-35.0, -10.0)
    x = x * db(level) / (rms(x) + 1e-12)
    for (s, e), _ in d.blanks:
        x[int(s * d.sr) : int(min(e, d.duration) * d.sr)] = 0.0
    d.params.update(bed=bed_kind, level_dbfs=round(level, 1), rt60=round(rt60, 2))
    return np.clip(x, -1, 1).astype(np.float32)


def render_video(d: SceneDraft) -> npt.NDArray[np.uint8]:
    """Frames through the camera (and a codec round trip for a third of the scenes)."""
    assert d.spec.video is not None
    fps, out = d.spec.video.fps, d.spec.video.height
    times = np.arange(round(d.duration * fps) + 1) / fps
    shutter = d.rng.uniform(0.6, 1.0)
    frames = render(d.stage, times, shutter, fps)
    shake = float(d.rng.choice([0.0, 0.0, 1.0, 2.5]))
    jolts = [round(t * fps) for t in d.jolts]
    exposure, noise = d.rng.uniform(0.5, 1.6), d.rng.uniform(0.0, 0.04)
    shot = camera(frames, d.rng, shake, jolts, exposure, noise, out)
    video = (shot * 255).round().astype(np.uint8)
    if d.rng.uniform() < 0.35:
        codec = CODECS[int(d.rng.integers(len(CODECS)))]
        video = roundtrip(video, fps, codec, float(d.rng.uniform(0.0, 1.0)))
        d.params["codec"] = codec
    for (s, e), mode in d.blanks:
        k = (times >= s) & (times < e)
        if mode == "frozen":
            idx = np.flatnonzero(k)
            ref = idx[0] - 1 if len(idx) and idx[0] > 0 else (idx[-1] + 1 if len(idx) else 0)
            video[k] = video[min(ref, len(video) - 1)]
        else:
            video[k] = 0 if mode == "black" else 128
    d.params.update(shake=shake, exposure=round(exposure, 2), noise=round(noise, 3))
    return video


def finish(d: SceneDraft, seed: int) -> Scene:
    """Render and mix the draft."""
    audio = mix_audio(d)
    video = render_video(d)
    return Scene(d.kind, seed, d.duration, audio, video, d.on, d.dont_care, d.params)
