"""The fusion rules evaluated like the learned labels (`scenestream evaluate --rules`), pure.

The rules (`engines/rules.py`) fuse other engines' outputs into `approaching_object`,
`collision` and `emergency_vehicle`, the labels `avfusion` learns. Here they are scored on the
same windows and under the same truth as the learned labels:

1. each input engine's windows of a scene (its own `WindowSpec` grid from the scene's start)
   become `Observation`s exactly as the service makes them: dated at the window's
   `event_time`, and for a detector with the stream's tracks from `engines.detect.tracker`
   (the service's defaults, `[tracking]`) and their times to contact;
2. the rules (`RuleEvaluator`, default parameters unless given) take the observations in
   capture order, and a rule's score at an evaluation window's end is the score it returned for
   the latest observation dated at or before that end (0 before any): what the service's
   rule state is at that moment, before its event hysteresis, with every engine's result in
   on time;
3. the evaluation windows are the comparison engine's (`avfusion`: 1 s every 0.5 s), their
   truth the generator's window rule (a label is on when its truth covers at least half of
   the window's last 0.3 s; undecidable windows unscored), and the metrics the learned labels'
   (`report.window_metrics` at threshold 0.5), for the rule and for the comparison engine's
   learned label side by side.

Running engines over scenes is `engines.lab.evaluation.rules_run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from engines.detect.decode import Detection
from engines.detect.tracker import Tracker, TrackerParams
from engines.lab.evaluation.report import THRESHOLD, window_metrics
from engines.rules import Observation, Rule, RuleEvaluator, RulesConfig, observation_from_tracks
from engines.window import event_time

F32 = npt.NDArray[np.float32]
RULE_LABELS = ("approaching_object", "collision", "emergency_vehicle")
EPS = 1e-6


@dataclass(frozen=True, slots=True)
class EngineWindow:
    """One engine's result for one window of a scene: its scores, and for a detector the
    detections of the window's last frame (None for an engine without boxes)."""

    start: float
    end: float
    scores: Mapping[str, float]
    detections: Sequence[Detection] | None = None


def engine_observations(
    engine: str,
    labels_at: Literal["window", "end"],
    windows: Iterable[EngineWindow],
    params: TrackerParams | None = None,
) -> list[Observation]:
    """One engine's windows of one stream (in capture order) as the rules see them; a
    detector's detections go through one tracker for the stream, as in the service."""
    params = params or TrackerParams()
    tracker: Tracker | None = None
    out: list[Observation] = []
    for w in windows:
        at = event_time(labels_at, w.start, w.end)
        tracks: list[tuple[Any, float | None]] = []
        if w.detections is not None:
            tracker = tracker or Tracker(params, {})
            step = tracker.update(at, w.detections)
            tracks = [(t, t.ttc(params.ttc_window_s)) for t in step.tracks]
        out.append(observation_from_tracks(at, engine, w.scores, tracks))
    return out


def shipped_rules(config: RulesConfig | None = None) -> list[Rule]:
    """The shipped rules (all three, whatever `enabled` says: here they are evaluated, not
    deferred to an engine that learns their labels)."""
    c = config or RulesConfig()
    return [c.approaching_object, c.collision, c.emergency_vehicle]


def rule_scores_at(
    observations: Iterable[Observation], rules: Sequence[Rule], ends: Sequence[float]
) -> F32:
    """`[len(ends), len(rules)]`: each rule's score at each time in `ends` (ascending), see
    the module docstring (step 2)."""
    evaluator = RuleEvaluator(rules)
    ordered = sorted(observations, key=lambda o: o.time)  # stable: same-time order kept
    out = np.zeros((len(ends), len(rules)), np.float32)
    current = np.zeros(len(rules), np.float32)
    i = 0
    for k, end in enumerate(ends):
        while i < len(ordered) and ordered[i].time <= end + EPS:
            scores = evaluator.observe(ordered[i])
            current = np.array([scores[r.label] for r in rules], np.float32)
            i += 1
        out[k] = current
    return out


def compare_metrics(
    truth: F32, care: F32, rule_scores: F32, learned: F32 | None, labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per label: the rule's window metrics and (when given) the learned label's, on the same
    windows, truth and care (`[N, len(labels)]` each)."""
    rule = window_metrics(truth, rule_scores, care, list(labels))["labels"]
    learn = None if learned is None else window_metrics(truth, learned, care, list(labels))
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        out[label] = {"rule": rule[label]}
        if learn is not None:
            out[label]["learned"] = learn["labels"][label]
    return out


def input_summary(observations: Sequence[Observation]) -> dict[str, Any]:
    """What one engine gave the rules on a set: windows, windows with a confirmed track,
    track-windows by label, windows with a track closing (TTC ≤ 3 s / ≤ 1.5 s), and per
    score label the windows at or above 0.5: where a rule cannot fire, this says why."""
    labels = sorted({k for o in observations for k in o.scores})
    track_labels = sorted({t.label or "unmapped" for o in observations for t in o.tracks})
    return {
        "windows": len(observations),
        "windows_with_tracks": sum(1 for o in observations if o.tracks),
        "windows_ttc_le_3s": sum(
            1 for o in observations if any(t.ttc_s is not None and t.ttc_s <= 3.0 for t in o.tracks)
        ),
        "windows_ttc_le_1_5s": sum(
            1 for o in observations if any(t.ttc_s is not None and t.ttc_s <= 1.5 for t in o.tracks)
        ),
        "scores_ge_threshold": {
            x: sum(1 for o in observations if o.scores.get(x, 0.0) >= THRESHOLD) for x in labels
        },
        "track_windows_by_label": {
            k: sum(1 for o in observations for t in o.tracks if (t.label or "unmapped") == k)
            for k in track_labels
        },
    }


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def markdown(result: Mapping[str, Any]) -> str:
    """Per rule label: the rule's P/R/F1 next to the learned label's, per configuration."""
    compare = result["compare"]
    lines = [
        f"### Fusion rules vs `{compare}`'s learned labels, `{result['set']}` set "
        f"({result['scenes']} scenes, {result['windows']} windows of `{compare}`, "
        f"threshold {result['threshold']})",
        "",
        "| label | inputs | P | R | F1 | support | TP | FP | FN |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in result["labels"]:
        rows: list[tuple[str, Mapping[str, Any]]] = [
            (f"rule over {' + '.join(c['inputs'])}", c["labels"][label]["rule"])
            for c in result["configs"]
        ]
        learned = result["learned"].get(label)
        if learned is not None:
            rows.append((f"`{compare}` learned", learned))
        for name, s in rows:
            lines.append(
                f"| {label} | {name} | {_f(s['precision'])} | {_f(s['recall'])} | "
                f"{_f(s['f1'])} | {s['support']} | {s['tp']} | {s['fp']} | {s['fn']} |"
            )
    lines += ["", "What the input engines gave the rules (windows over the whole set):", ""]
    lines.append(
        "| engine | windows | with a confirmed track | track-windows by label | TTC ≤ 3 s | "
        "TTC ≤ 1.5 s | windows ≥ 0.5 per label |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, s in result["inputs"].items():
        per = ", ".join(f"{k} {v}" for k, v in s["scores_ge_threshold"].items() if v) or "none"
        by = ", ".join(f"{k} {v}" for k, v in s["track_windows_by_label"].items()) or "—"
        lines.append(
            f"| {name} | {s['windows']} | {s['windows_with_tracks']} | {by} | "
            f"{s['windows_ttc_le_3s']} | {s['windows_ttc_le_1_5s']} | {per} |"
        )
    return "\n".join(lines) + "\n"
