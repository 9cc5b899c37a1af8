"""`scenestream evaluate --set real`: an engine on the real-sound evaluation set.

Every `eval` file of the manifest (fetched into the cache by `engines.lab.realsounds.fetch`)
is decoded at the engine's sample rate, placed in a short scene (`clips.build_scene`), cut into
the engine's windows and scored through the service's runtime path, each clip its own stream.
Conditions: `clean` (the recording alone) and pink noise at 10 dB and 0 dB SNR. The audio labels
are scored (per-label precision, recall, F1, AP; recall per kind of positive; false-positive rate
per kind of negative); the video is a neutral still frame, so the video and fused labels are not
scored and only their false-positive rate is reported (they should never fire).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.errors import UserError
from engines.lab.evaluation.metrics import label_scores
from engines.lab.evaluation.report import threshold_record, threshold_text
from engines.lab.evaluation.scoring import Scorer
from engines.lab.realsounds import clips
from engines.lab.realsounds.fetch import DEFAULT_CACHE
from engines.lab.realsounds.manifest import Entry, eval_entries, load_manifest
from engines.labels import AUDIO_LABELS, LABELS

THRESHOLD = 0.5
CONDITIONS: dict[str, float | None] = {"clean": None, "snr10": 10.0, "snr0": 0.0}
CACHE_ENV = "SCENESTREAM_REAL_CACHE"
ALL = "all negatives"


def cache_dir() -> Path:
    """Where `fetch` put the clips: `$SCENESTREAM_REAL_CACHE` or the default cache."""
    return Path(os.environ.get(CACHE_ENV, str(DEFAULT_CACHE)))


@dataclass(frozen=True, slots=True)
class Scored:
    """All windows of one condition: truth, care, scores `[N, len(LABELS)]` (NaN where the
    engine has no such label), and per window the clip id and kind."""

    truth: npt.NDArray[np.float32]
    care: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    clip_ids: list[str]
    kinds: list[str]


def _entries_with_clips(cache: Path) -> list[tuple[Entry, Path]]:
    entries = eval_entries(load_manifest())
    pairs = [(e, cache / "clips" / e.clip_name) for e in entries]
    missing = [p for _, p in pairs if not p.exists()]
    if missing:
        raise UserError(
            f"{len(missing)} of {len(pairs)} real-sound clips are not in {cache / 'clips'} "
            f"(first: {missing[0].name}); run `python -m engines.lab.realsounds.fetch "
            f"--cache {cache}` first (or set {CACHE_ENV})"
        )
    return pairs


def score_condition(
    scorer: Scorer,
    decoded: Sequence[tuple[Entry, npt.NDArray[np.float32]]],
    snr_db: float | None,
    name: str,
) -> Scored:
    """Windows of every clip under one condition, scored (each clip its own stream)."""
    spec = scorer.spec
    assert spec.audio is not None
    # Labels outside the scene set (an AudioSet engine's `impact`) have no truth: not scored.
    keep = [k for k, label in enumerate(scorer.labels) if label in LABELS]
    cols = [LABELS.index(scorer.labels[k]) for k in keep]
    video = clips.neutral_video(spec.video) if spec.video is not None else None
    truth, care, scores, ids, kinds = [], [], [], [], []
    for i, (entry, audio) in enumerate(decoded):
        scene = clips.build_scene(
            audio,
            spec.audio.sample_rate,
            entry.labels,
            entry.dontcare,
            min_length_s=spec.length_s,
            snr_db=snr_db,
            seed=1000 + i,
        )
        win = clips.scene_windows(scene, spec)
        n = len(win.audio)
        if n == 0:
            continue
        v = None if video is None else np.repeat(video[None], n, axis=0)
        out = scorer.score(v, win.audio, stream=f"real-{name}-{entry.id}")
        full = np.full((n, len(LABELS)), np.nan, dtype=np.float32)
        full[:, cols] = out[:, keep]
        truth.append(win.labels)
        care.append(win.care)
        scores.append(full)
        ids += [entry.id] * n
        kinds += [entry.kind] * n
    return Scored(
        truth=np.concatenate(truth),
        care=np.concatenate(care),
        scores=np.concatenate(scores),
        clip_ids=ids,
        kinds=kinds,
    )


def summarise(
    scored: Scored, labels: Sequence[str], thresholds: npt.NDArray[np.float64] | None = None
) -> dict[str, Any]:
    """Per-label scores, recall per positive kind, false-positive rate per negative kind, at
    `thresholds` (one per label of `LABELS`; default `THRESHOLD` for all)."""
    th = np.full(len(LABELS), THRESHOLD) if thresholds is None else np.asarray(thresholds)
    audio = [label for label in labels if label in AUDIO_LABELS]
    idx = [LABELS.index(label) for label in audio]
    per = label_scores(
        scored.truth[:, idx], scored.scores[:, idx], audio, th[idx], care=scored.care[:, idx]
    )
    kinds = np.asarray(scored.kinds)
    pred = scored.scores >= th
    recall_by_kind: dict[str, dict[str, Any]] = {}
    fpr_by_kind: dict[str, dict[str, Any]] = {}
    for label, j in zip(audio, idx, strict=True):
        pos = (scored.truth[:, j] > 0.5) & (scored.care[:, j] > 0.5)
        neg = (scored.truth[:, j] < 0.5) & (scored.care[:, j] > 0.5)
        for kind in sorted(set(kinds[pos])):
            m = pos & (kinds == kind)
            recall_by_kind.setdefault(kind, {})[label] = _rate(pred[m, j], m)
        positive_kinds = set(kinds[pos])
        for kind in sorted(set(kinds[neg]) - positive_kinds):
            m = neg & (kinds == kind)
            fpr_by_kind.setdefault(kind, {})[label] = _rate(pred[m, j], m)
        m = neg & ~np.isin(kinds, sorted(positive_kinds))
        fpr_by_kind.setdefault(ALL, {})[label] = _rate(pred[m, j], m)
    fpr_by_kind = {k: fpr_by_kind[k] for k in sorted(fpr_by_kind, key=lambda k: (k == ALL, k))}
    others = [label for label in labels if label not in AUDIO_LABELS and label in LABELS]
    silent_fpr = {
        label: _rate(pred[:, LABELS.index(label)], np.ones(len(kinds), bool)) for label in others
    }
    scored_labels = [s for s in per if s.support > 0]
    clip_level = _clip_level(scored, audio, idx, th)
    return {
        "windows": len(kinds),
        "clips": len(set(scored.clip_ids)),
        "labels": {s.label: s.as_dict() for s in per},
        "macro_f1": float(np.mean([s.f1 for s in scored_labels])) if scored_labels else math.nan,
        "recall_by_kind": recall_by_kind,
        "fpr_by_kind": fpr_by_kind,
        "video_and_fused_fpr": silent_fpr,
        "clip_level": clip_level,
    }


def _clip_level(
    scored: Scored, audio: Sequence[str], idx: Sequence[int], th: npt.NDArray[np.float64]
) -> dict[str, dict[str, Any]]:
    """Per label: positive clips with at least one window over threshold while the label is on
    (short clips give one or two windows, so this is steadier than window recall), and clips
    with the label nowhere (not even `dontcare`) where any window fires."""
    ids = np.asarray(scored.clip_ids)
    out: dict[str, dict[str, Any]] = {}
    for label, j in zip(audio, idx, strict=True):
        hit = pos = false = neg = 0
        for cid in dict.fromkeys(scored.clip_ids):
            m = ids == cid
            on = (scored.truth[m, j] > 0.5) & (scored.care[m, j] > 0.5)
            fired = scored.scores[m, j] >= th[j]
            if on.any():
                pos += 1
                hit += int((fired & on).any())
            elif scored.care[m, j].all():
                neg += 1
                false += int(fired.any())
        out[label] = {
            "detected": hit,
            "positive_clips": pos,
            "recall": hit / pos if pos else math.nan,
            "false_alarm_clips": false,
            "negative_clips": neg,
            "false_alarm_rate": false / neg if neg else math.nan,
        }
    return out


def _rate(hits: npt.NDArray[np.bool_], mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    n = int(mask.sum())
    k = int(hits.sum())
    return {"rate": k / n if n else math.nan, "hits": k, "windows": n}


def evaluate_real(
    scorer: Scorer, cache: Path | None = None, conditions: Sequence[str] = tuple(CONDITIONS)
) -> dict[str, Any]:
    """The real-sound report for `scorer` (clips from `cache`)."""
    spec = scorer.spec
    if spec.audio is None:
        raise UserError(f"{scorer.engine.name} takes no audio: the real-sound set is audio")
    pairs = _entries_with_clips(cache or cache_dir())
    decoded = [(e, clips.decode_audio(p, spec.audio.sample_rate)) for e, p in pairs]
    by_label: dict[str, int] = {}
    for e, _ in decoded:
        for label in e.labels or ("no audio label",):
            by_label[label] = by_label.get(label, 0) + 1
    th = scorer.window_thresholds(LABELS, THRESHOLD)
    result: dict[str, Any] = {
        "engine": scorer.engine.name,
        "backend": scorer.report.backend,
        "set": "real",
        "threshold": threshold_record(LABELS, th),
        "clips_by_label": by_label,
        "packages": sorted({f"{e.package} {e.version}" for e, _ in decoded}),
        "conditions": {},
    }
    model = scorer.engine.manifest.model_path
    if model is not None and model.exists():
        from engines.lab.realsounds.card import file_sha256

        result["model_sha256"] = file_sha256(model)
    for name in conditions:
        scored = score_condition(scorer, decoded, CONDITIONS[name], name)
        result["conditions"][name] = summarise(scored, scorer.labels, th)
    return result


def _f(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _cell(r: dict[str, Any]) -> str:
    return f"{_f(r['rate'])} ({r['hits']}/{r['windows']})" if r["windows"] else "—"


def markdown(result: dict[str, Any]) -> str:
    """The tables the model card quotes."""
    conds = result["conditions"]
    first = next(iter(conds.values()))
    names = ", ".join(
        f"{k}: {v}" for k, v in sorted(result["clips_by_label"].items(), key=lambda kv: kv[0])
    )
    lines = [
        f"### `{result['engine']}` on `real` ({first['clips']} clips, {first['windows']} windows "
        f"per condition, backend `{result['backend']}`, {threshold_text(result['threshold'])})",
        "",
        f"Clips by label ({names}). Conditions: `clean` = the recording alone, `snr10` / "
        "`snr0` = over pink noise 10 / 0 dB below the sound; neutral still video.",
        "",
        "| label | condition | precision | recall | F1 | AP | positive windows | "
        "negative windows |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in first["labels"]:
        for cname, c in conds.items():
            s = c["labels"][label]
            lines.append(
                f"| {label} | {cname} | {_f(s['precision'])} | {_f(s['recall'])} | "
                f"{_f(s['f1'])} | {_f(s['ap'])} | {s['support']} | {s['fp'] + s['tn']} |"
            )
    lines.append(
        "| **macro (labels with positives)** | "
        + " / ".join(f"{k} **{_f(c['macro_f1'])}**" for k, c in conds.items())
        + " | | | | | | |"
    )
    lines += [
        "",
        "Per clip (a positive clip is found when a window fires while the label is on; a "
        "negative clip raises a false alarm when any of its windows fires):",
        "",
        "| label | condition | clips found | recall | negative clips firing | false-alarm rate |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label in first["labels"]:
        for cname, c in conds.items():
            k = c["clip_level"][label]
            lines.append(
                f"| {label} | {cname} | {k['detected']}/{k['positive_clips']} | "
                f"{_f(k['recall'])} | {k['false_alarm_clips']}/{k['negative_clips']} | "
                f"{_f(k['false_alarm_rate'])} |"
            )
    lines += ["", "Recall per kind of positive (windows):", ""]
    lines.append("| kind | label | " + " | ".join(conds) + " |")
    lines.append("| --- | --- |" + " --- |" * len(conds))
    for kind, per in first["recall_by_kind"].items():
        for label in per:
            cells = " | ".join(_cell(c["recall_by_kind"][kind][label]) for c in conds.values())
            lines.append(f"| {kind} | {label} | {cells} |")
    audio_labels = list(first["labels"])
    lines += [
        "",
        "False-positive rate per kind of negative (`clean`; windows where the label is off):",
        "",
    ]
    lines.append("| kind | " + " | ".join(audio_labels) + " |")
    lines.append("| --- |" + " --- |" * len(audio_labels))
    clean = conds.get("clean", first)
    for kind, per in clean["fpr_by_kind"].items():
        cells = " | ".join(_cell(per[x]) if x in per else "—" for x in audio_labels)
        name = f"**{kind}**" if kind == ALL else kind
        lines.append(f"| {name} | {cells} |")
    if clean["video_and_fused_fpr"]:
        lines += [
            "",
            "Video and fused labels on the neutral still video (not scored; any firing is a "
            "false positive):",
            "",
            "| label | " + " | ".join(conds) + " |",
            "| --- |" + " --- |" * len(conds),
        ]
        for label in clean["video_and_fused_fpr"]:
            cells = " | ".join(_cell(c["video_and_fused_fpr"][label]) for c in conds.values())
            lines.append(f"| {label} | {cells} |")
    return "\n".join(lines) + "\n"
