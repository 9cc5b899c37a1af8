"""Window-level evaluation of an engine on a labelled set: metrics, distractors, ablation.

The result is one JSON-ready dict (`evaluate_windows`) and its markdown rendering
(`markdown`). Targets (issue 4) are checked and reported as pass/fail, never hidden.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.lab.evaluation.metrics import (
    false_positive_rates,
    label_scores,
    macro_f1,
    micro_f1,
)
from engines.lab.evaluation.scoring import Scorer
from engines.lab.scenes.base import FUSED_LABELS, LABELS
from engines.lab.training.data import WindowSet

THRESHOLD = 0.5  # where an engine's manifest sets no `[thresholds.<label>]` `on`
Thresholds = float | npt.NDArray[np.float64]
# The generator's distractor kinds (engines/lab/scenes/dataset.py KINDS), used until it exports a
# DISTRACTOR_KINDS constant: fused labels must stay off on all of them.
FALLBACK_DISTRACTORS = frozenset(
    {"radio_siren", "lights_silent", "hazard", "separated", "impact_static", "stop_silent"}
)
TARGETS = {
    "macro_f1_min": 0.95,
    "fused_f1_min": 0.90,
    "fused_distractor_fpr_max": 0.02,
    "fused_f1_ablated_max": 0.5,
}


def distractor_kinds(kinds: Sequence[str]) -> list[str]:
    """Kinds that are distractors: the generator's list when it publishes one."""
    try:
        from engines.lab.scenes import dataset

        known = getattr(dataset, "DISTRACTOR_KINDS", None)
    except ImportError:
        known = None
    if known is not None:
        return sorted(k for k in set(kinds) if k in known)
    return sorted(k for k in set(kinds) if k in FALLBACK_DISTRACTORS)


def distractor_rows(kinds: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Which windows (by their scene kind) are distractors."""
    return np.isin(np.asarray(kinds, dtype=object), distractor_kinds(kinds))


def _columns(scorer_labels: Sequence[str], truth_labels: Sequence[str]) -> list[tuple[int, int]]:
    """(engine column, truth column) for labels both know."""
    return [
        (i, list(truth_labels).index(label))
        for i, label in enumerate(scorer_labels)
        if label in truth_labels
    ]


def window_metrics(
    truth: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    care: npt.NDArray[np.float32],
    labels: Sequence[str],
    threshold: Thresholds = THRESHOLD,
) -> dict[str, Any]:
    """Per-label P/R/F1/AP plus macro and micro F1 (at `threshold`: one, or one per label)."""
    per = label_scores(truth, scores, labels, threshold, care=care)
    return {
        "labels": {s.label: s.as_dict() for s in per},
        "macro_f1": macro_f1(per),
        "micro_f1": micro_f1(per),
    }


def evaluate_windows(scorer: Scorer, data: WindowSet, set_name: str) -> dict[str, Any]:
    """Everything window-level: metrics, distractor breakdown, modality ablation."""
    if data.audio is None:
        raise ValueError("evaluation sets need raw audio")
    cols = _columns(scorer.labels, LABELS)
    labels = [LABELS[t] for _, t in cols]
    e_idx, t_idx = [e for e, _ in cols], [t for _, t in cols]
    truth, care = data.labels[:, t_idx], data.care[:, t_idx]
    video, audio = np.asarray(data.video), np.asarray(data.audio)

    def run(v: npt.NDArray[np.uint8], a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return scorer.score(v, a, independent=True)[:, e_idx]

    scores = run(video, audio)
    th = scorer.window_thresholds(labels, THRESHOLD)
    report: dict[str, Any] = {
        "engine": scorer.engine.name,
        "backend": scorer.report.backend,
        "backend_details": scorer.report.details,
        "set": set_name,
        "windows": len(data),
        "threshold": threshold_record(labels, th),
        **window_metrics(truth, scores, care, labels, th),
    }
    fused = [label for label in FUSED_LABELS if label in labels]
    if fused:
        report["distractors"] = _distractors(truth, scores, data.kinds, labels, fused, th)
    silenced, blanked = run(video, np.zeros_like(audio)), run(np.zeros_like(video), audio)
    report["ablation"] = {
        "audio_silenced": window_metrics(truth, silenced, care, labels, th),
        "video_blanked": window_metrics(truth, blanked, care, labels, th),
    }
    report["targets"] = check_targets(report)
    return report


def _distractors(
    truth: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    kinds: list[str],
    labels: list[str],
    fused: list[str],
    threshold: Thresholds = THRESHOLD,
) -> dict[str, Any]:
    per_kind = false_positive_rates(truth, scores, kinds, labels, fused, threshold)
    dis = distractor_kinds(kinds)
    pooled: dict[str, dict[str, float | int]] = {}
    for label in fused:
        fp = sum(int(per_kind[k][label]["fp"]) for k in dis)
        n = sum(int(per_kind[k][label]["negatives"]) for k in dis)
        pooled[label] = {"fpr": fp / n if n else float("nan"), "fp": fp, "negatives": n}
    counts = {k: kinds.count(k) for k in per_kind}
    return {"kinds": dis, "pooled": pooled, "per_kind": per_kind, "windows_per_kind": counts}


def threshold_record(labels: Sequence[str], th: Thresholds) -> float | dict[str, float]:
    """What a report says it scored at: one number, or a threshold per label."""
    arr = np.broadcast_to(np.asarray(th, dtype=np.float64), (len(labels),))
    if np.all(arr == arr[0]):
        return float(arr[0]) if len(arr) else THRESHOLD
    return {label: float(t) for label, t in zip(labels, arr, strict=True)}


def threshold_text(th: float | dict[str, float]) -> str:
    """`threshold 0.5`, or the per-label thresholds (from the engine manifest)."""
    if isinstance(th, dict):
        return "per-label thresholds from the manifest: " + ", ".join(
            f"{label} {t:g}" for label, t in th.items()
        )
    return f"threshold {th}"


def check_targets(report: dict[str, Any]) -> dict[str, Any]:
    """Issue 4's window-level targets, each with the measured value and pass/fail."""
    out: dict[str, Any] = {}
    macro = report["macro_f1"]
    out["macro_f1"] = {"value": macro, "target": f">= {TARGETS['macro_f1_min']}"}
    out["macro_f1"]["pass"] = bool(macro >= TARGETS["macro_f1_min"])
    for label in FUSED_LABELS:
        if label not in report["labels"]:
            continue
        f1 = report["labels"][label]["f1"]
        out[f"{label}_f1"] = {
            "value": f1,
            "target": f">= {TARGETS['fused_f1_min']}",
            "pass": bool(f1 >= TARGETS["fused_f1_min"]),
        }
        pooled = report.get("distractors", {}).get("pooled", {}).get(label)
        if pooled is not None and not math.isnan(pooled["fpr"]):
            out[f"{label}_distractor_fpr"] = {
                "value": pooled["fpr"],
                "target": f"<= {TARGETS['fused_distractor_fpr_max']}",
                "pass": bool(pooled["fpr"] <= TARGETS["fused_distractor_fpr_max"]),
            }
        for cut in ("audio_silenced", "video_blanked"):
            ab = report["ablation"][cut]["labels"][label]["f1"]
            out[f"{label}_f1_{cut}"] = {
                "value": ab,
                "target": f"< {TARGETS['fused_f1_ablated_max']}",
                "pass": bool(ab < TARGETS["fused_f1_ablated_max"]),
            }
    return out


def _f(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(report: dict[str, Any]) -> str:
    """The tables the model card and README quote."""
    lines = [
        f"### `{report['engine']}` on `{report['set']}` ({report['windows']} windows, "
        f"backend `{report['backend']}`, {threshold_text(report['threshold'])})",
        "",
        "| label | precision | recall | F1 | AP | support | F1 audio silenced | F1 video blanked |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ab = report["ablation"]
    for label, s in report["labels"].items():
        lines.append(
            f"| {label} | {_f(s['precision'])} | {_f(s['recall'])} | {_f(s['f1'])} | "
            f"{_f(s['ap'])} | {s['support']} | "
            f"{_f(ab['audio_silenced']['labels'][label]['f1'])} | "
            f"{_f(ab['video_blanked']['labels'][label]['f1'])} |"
        )
    lines.append(
        f"| **macro** | | | **{_f(report['macro_f1'])}** | | | "
        f"{_f(ab['audio_silenced']['macro_f1'])} | {_f(ab['video_blanked']['macro_f1'])} |"
    )
    lines.append(f"| micro | | | {_f(report['micro_f1'])} | | | | |")
    dis = report.get("distractors")
    if dis:
        fused = list(dis["pooled"])
        lines += [
            "",
            "False-positive rate of the fused labels per window kind "
            "(windows where the label is false; distractor kinds in bold):",
            "",
        ]
        lines.append("| kind | windows | " + " | ".join(f"{f} FPR" for f in fused) + " |")
        lines.append("| --- | --- |" + " --- |" * len(fused))
        for kind, per in dis["per_kind"].items():
            name = f"**{kind}**" if kind in dis["kinds"] else kind
            cells = " | ".join(
                f"{_f(per[f]['fpr'])} ({per[f]['fp']}/{per[f]['negatives']})" for f in fused
            )
            lines.append(f"| {name} | {dis['windows_per_kind'][kind]} | {cells} |")
        cells = " | ".join(f"**{_f(dis['pooled'][f]['fpr'])}**" for f in fused)
        lines.append(f"| all distractors | | {cells} |")
    lines += ["", "| target | measured | wanted | |", "| --- | --- | --- | --- |"]
    for name, t in report["targets"].items():
        lines.append(
            f"| {name} | {_f(t['value'])} | {t['target']} | {'pass' if t['pass'] else '**FAIL**'} |"
        )
    return "\n".join(lines) + "\n"
