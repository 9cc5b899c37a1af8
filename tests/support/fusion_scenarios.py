"""Scripted streams for the fusion rules, recorded as the scene messages the service publishes.

Two engines watch one stream: an audio tagger (`tagger`, 1 s windows every 0.5 s, AudioSet labels
mapped to scene labels) and a detector (`detector`, a frame every 0.25 s, COCO classes mapped).
Their windows go through the real interpretation stage (`Interpreter`: tracker, time to contact,
scene messages), the tagger's results arriving after the detector's as on a real worker.
`python -m tests.support.fusion_scenarios DIR` rewrites the recordings in `DIR` (one JSON line
per scene message); the tests replay those files.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engines.detect.decode import Detection
from engines.window import Window, WindowSpec
from stream.config import Settings
from stream.interpret import Interpreter
from stream.metrics import Metrics
from stream.publish import messages as m
from stream.scheduler.runner import WindowResult

T0 = 1_800_000_000.0
SECONDS = 10.0
AUDIO = ("speech", "siren", "horn", "alarm", "impact")
VIDEO = ("person", "vehicle")


@dataclass
class FakeEngine:
    """The part of an `EngineRuntime` the interpretation stage reads."""

    name: str
    labels: tuple[str, ...]
    spec: WindowSpec
    batch_sizes: tuple[int, ...] = (1,)
    budget_s: float = 0.3
    max_queue_delay_s: float = 0.0
    backend_name: str = "none"

    def infer(self, windows: Sequence[Window]) -> list[dict[str, float]]:
        return [{} for _ in windows]

    def release(self, stream: str) -> None:
        pass


@dataclass
class Sink:
    """Keeps what is published."""

    sent: list[m.Message] = field(default_factory=list)

    def publish(self, message: m.Message) -> None:
        self.sent.append(message)


TAGGER = FakeEngine("tagger", AUDIO, WindowSpec(length_s=1.0, hop_s=0.5))
DETECTOR = FakeEngine("detector", VIDEO, WindowSpec(length_s=0.25, hop_s=0.25, labels_at="end"))


def vehicle(cx: float, side: float, score: float = 0.85) -> Detection:
    """A vehicle box of `side` (fraction of the frame) centred at (`cx`, 0.5)."""
    h = side / 2
    return Detection((cx - h, 0.5 - h, cx + h, 0.5 + h), score, 2, "car", "vehicle")


Audio = Callable[[float], dict[str, float]]  # window midpoint (s from T0) -> scores
Video = Callable[[float], list[Detection]]  # frame time (s from T0) -> detections


def closing(contact_s: float, first_s: float = 0.5) -> Video:
    """A vehicle driving at the camera: its size grows as 1 / (contact - t) until contact."""

    def frame(t: float) -> list[Detection]:
        if t < first_s or t >= contact_s - 0.1:
            return []
        return [vehicle(0.5, min(0.9, 0.05 * 2.0 / (contact_s - t)))]

    return frame


def parked(start_s: float, end_s: float) -> Video:
    """A vehicle in view, not moving."""
    return lambda t: [vehicle(0.3, 0.2)] if start_s <= t < end_s else []


def nothing_seen(t: float) -> list[Detection]:
    """No detection."""
    return []


def sound(label: str, start_s: float, end_s: float, score: float = 0.9) -> Audio:
    """`label` heard in [start, end): windows overlapping it score `score`, others 0.02."""

    def scores(mid: float) -> dict[str, float]:
        out = dict.fromkeys(AUDIO, 0.02)
        if start_s - 0.5 < mid < end_s + 0.5:
            out[label] = score
        return out

    return scores


SCENARIOS: dict[str, tuple[Audio, Video]] = {
    "approaching": (sound("speech", 0.0, 0.0, 0.0), closing(contact_s=8.0)),
    "collision": (sound("impact", 6.0, 6.3), closing(contact_s=6.2)),
    "emergency": (sound("siren", 2.0, 8.0), parked(3.0, 9.0)),
    "radio-siren": (sound("siren", 2.0, 8.0), nothing_seen),
    "impact-only": (sound("impact", 5.0, 5.3), parked(1.0, 9.0)),
}


def record(name: str, settings: Settings | None = None) -> tuple[list[m.Message], list[m.Message]]:
    """Run one scenario through the interpretation stage: (scene messages, events)."""
    audio, video = SCENARIOS[name]
    sink = Sink()
    pipeline = Interpreter([TAGGER, DETECTOR], sink, Metrics(), settings=settings)
    stream = f"fusion-{name}"
    results: list[tuple[float, WindowResult]] = []
    k = 1
    while k * 0.25 <= SECONDS:
        t = k * 0.25
        w = Window(stream, "detector", k, T0 + t - 0.25, T0 + t, None, None, None)
        dets = tuple(video(t))
        best = {
            label: max((d.score for d in dets if d.label == label), default=0.0) for label in VIDEO
        }
        results.append((t, WindowResult(w, "detector", best, 0.0, 0.01, 1, dets)))
        k += 1
    k = 2
    while k * 0.5 <= SECONDS:
        end = k * 0.5
        w = Window(stream, "tagger", k, T0 + end - 1.0, T0 + end, None, None, None)
        # Audio results arrive 0.3 s after the detector's of the same capture time.
        results.append((end + 0.3, WindowResult(w, "tagger", audio(end - 0.5), 0.0, 0.02, 1)))
        k += 1
    for _, result in sorted(results, key=lambda r: r[0]):
        pipeline.window_result(result)
    pipeline.stream_closed(stream, "detector")
    pipeline.stream_closed(stream, "tagger")
    scenes = [msg for msg in sink.sent if msg["type"] == "scene"]
    events = [msg for msg in sink.sent if msg["type"] == "event"]
    return scenes, events


def main(out: Path) -> None:
    """Rewrite the recordings."""
    out.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        scenes, _ = record(name)
        text = "".join(m.encode(msg) + "\n" for msg in scenes)
        (out / f"{name}.jsonl").write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
