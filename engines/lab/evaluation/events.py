"""Event-level evaluation: long scripted scenes run window by window, as the service would.

A scene is cut every hop into windows (frames at the engine's fps ending at the window end,
audio covering the window), scored through the engine, and the scores go through the service's
own event tracker (`engines.events.EventTracker`, with the engine manifest's thresholds), so
the events evaluated are the events users would get, dated as the service dates them
(`WindowSpec.event_time`). Each detected event's `detected_at` is the end of the window that
started it (the earliest moment the service could publish it); latency additionally includes
the engine's budget live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.config import LabelThresholds
from engines.events import EventTracker, resolve_thresholds
from engines.lab.evaluation.metrics import (
    EventScores,
    TimedEvent,
    false_alarms_per_hour,
    match_events,
    percentile,
)
from engines.lab.evaluation.scoring import Scorer
from engines.lab.scenes.base import SceneRenderer
from engines.window import WindowSpec

COLLAR_S = 1.0


@dataclass(frozen=True, slots=True)
class SceneRun:
    """One scene's truth and detections."""

    name: str
    duration_s: float
    truth: list[TimedEvent]
    detected: list[TimedEvent]


def cut_scene(
    scene: SceneRenderer, spec: WindowSpec, duration_s: float, phase_s: float = 0.0
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Video `[N,T,H,W,3]`, audio `[N,S]` and window end times for every hop of the scene,
    the first window ending at `length + phase_s`."""
    from engines.lab.scenes.dataset import render_window  # the generator's own window cut

    if spec.video is None or spec.audio is None:
        raise ValueError("event evaluation needs an engine with video and audio")
    v, a = spec.video, spec.audio
    ends = np.arange(spec.length_s + phase_s, duration_s + 1e-6, spec.hop_s)
    videos = np.empty((len(ends), v.frames, v.height, v.width, 3), dtype=np.uint8)
    audios = np.empty((len(ends), a.samples), dtype=np.float32)
    for i, end in enumerate(ends):
        videos[i], audios[i] = render_window(scene, spec, float(end))
    return videos, audios, ends


def run_scene(
    scorer: Scorer,
    scene: SceneRenderer,
    thresholds: dict[str, LabelThresholds],
    duration_s: float | None = None,
    phase_s: float = 0.0,
) -> SceneRun:
    """Score every window of `scene` and track events with the service's tracker.

    `phase_s` shifts the window grid: a live stream's grid has no relation to when things
    happen in front of the camera, while the scripts start segments on whole seconds.
    """
    duration = float(duration_s if duration_s is not None else scene.duration_s)
    video, audio, ends = cut_scene(scene, scorer.spec, duration, phase_s)
    scores = scorer.score(video, audio, stream=scene.name, t0=0.0)
    tracker = EventTracker(stream=scene.name, thresholds=thresholds)
    started_at: dict[str, float] = {}
    detected: list[TimedEvent] = []
    length = scorer.spec.length_s
    for end, row in zip(ends, scores, strict=True):
        at = scorer.spec.event_time(float(end) - length, float(end))  # as the service dates it
        for ev in tracker.observe(at, dict(zip(scorer.labels, map(float, row), strict=True))):
            if ev.phase == "start":
                started_at[ev.id] = float(end)
            elif ev.phase == "end" and ev.end is not None:
                detected.append(TimedEvent(ev.label, ev.start, ev.end, started_at.pop(ev.id)))
    for ev in tracker.close(float(ends[-1]) if len(ends) else 0.0):
        detected.append(TimedEvent(ev.label, ev.start, ev.end or duration, started_at.pop(ev.id)))
    truth = [
        TimedEvent(iv.label, iv.start_s, min(iv.end_s, duration))
        for iv in scene.truth
        if iv.start_s < duration and iv.label in scorer.labels
    ]
    return SceneRun(scene.name, duration, truth, detected)


def summarise(runs: Sequence[SceneRun], hop_s: float, budget_s: float) -> dict[str, Any]:
    """Event metrics per label pooled over scenes, with false alarms per hour and latency."""
    pooled: dict[str, EventScores] = {}
    for run in runs:
        for label, s in match_events(run.truth, run.detected, COLLAR_S).items():
            acc = pooled.setdefault(label, EventScores(label))
            acc.tp, acc.fp, acc.fn = acc.tp + s.tp, acc.fp + s.fp, acc.fn + s.fn
            acc.tp_offset += s.tp_offset
            acc.latencies.extend(s.latencies)
    total_s = sum(r.duration_s for r in runs)
    labels = {}
    for label, s in sorted(pooled.items()):
        labels[label] = {
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            "f1_onset": s.f1,
            "f1_onset_offset": s.f1_offset,
            "false_alarms_per_hour": false_alarms_per_hour(s, total_s),
            "onset_latency_p50_s": percentile(s.latencies, 50),
            "onset_latency_p95_s": percentile(s.latencies, 95),
        }
    every = [x for s in pooled.values() for x in s.latencies]
    names = [r.name for r in runs]
    return {
        "scenes": names,
        "phases": len(names) // max(1, len(set(names))),
        "seconds": total_s,
        "collar_s": COLLAR_S,
        "labels": labels,
        "onset_latency_p95_s": percentile(every, 95),
        "latency_target_s": hop_s + budget_s,
    }


def scene_thresholds(scorer: Scorer) -> dict[str, LabelThresholds]:
    """The manifest's per-label thresholds over the service defaults."""
    manifest = {
        label: LabelThresholds.model_validate(t.model_dump(exclude_none=True))
        for label, t in scorer.engine.manifest.doc.thresholds.items()
    }
    return resolve_thresholds(scorer.labels, manifest=manifest)


def markdown(summary: dict[str, Any]) -> str:
    """Event table."""
    phases = summary.get("phases", 1)
    lines = [
        f"Event level: {len(summary['scenes'])} scripted scenes, {summary['seconds']:.0f} s, "
        f"onset collar {summary['collar_s']} s; latency = window end that started the event "
        "minus the true onset (the live budget comes on top); each script runs "
        f"{phases} times with the window grid shifted by 1/{phases} of a hop each time, as a "
        "live stream meets onsets at any phase.",
        "",
        "| label | TP | FP | FN | F1 onset | F1 onset+offset | false alarms/h | "
        "latency p50 (s) | latency p95 (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, s in summary["labels"].items():
        lines.append(
            f"| {label} | {s['tp']} | {s['fp']} | {s['fn']} | {s['f1_onset']:.3f} | "
            f"{s['f1_onset_offset']:.3f} | {s['false_alarms_per_hour']:.1f} | "
            f"{s['onset_latency_p50_s']:.2f} | {s['onset_latency_p95_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"
