"""In-generator vs cross-generator evaluation (`scenestream evaluate --set in|cross|all`).

`in` is the training generator's held-out split (`engines/lab/scenes`); `cross` is the
independent generator `engines/lab/crossgen`, written from the label definitions alone, so a
gap between the two says how much of a score is the training generator's own habits. Both are
summarised the same way: per-label P/R/F1, macro-F1, the false-positive rate on distractor
windows, the most frequent confusions, and (cross only: the training generator has no such
scenes) false events at stream starts and stops through the service's event tracker, and the
labels that need the picture scored again on the same windows with it frozen. Every F1 carries
a bootstrap interval (`uncertainty`), and with a second engine the paired difference. The text
tables are `cross_markdown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.events import EventTracker
from engines.lab.crossgen import DISTRACTOR_KINDS, STREAM_EDGE_KINDS, CrossSet, build_cross_set
from engines.lab.crossgen import fingerprint as cross_fingerprint
from engines.lab.crossgen.dataset import CACHE_DIR
from engines.lab.evaluation import events
from engines.lab.evaluation.report import (
    THRESHOLD,
    Thresholds,
    distractor_kinds,
    threshold_record,
    window_metrics,
)
from engines.lab.evaluation.scoring import Scorer
from engines.lab.evaluation.uncertainty import intervals, paired_delta, unit_counts
from engines.labels import FUSED_LABELS, LABELS, VIDEO_LABELS
from engines.window import WindowSpec

CROSS_SCENES = 440
CROSS_SEED = 11
TOP_CONFUSIONS = 10
Array = npt.NDArray[np.float32]


def _columns(scorer: Scorer) -> tuple[list[int], list[int], list[str]]:
    pairs = [(i, LABELS.index(x)) for i, x in enumerate(scorer.labels) if x in LABELS]
    return [e for e, _ in pairs], [t for _, t in pairs], [LABELS[t] for _, t in pairs]


def summarise(
    truth: Array,
    care: Array,
    scores: Array,
    kinds: Sequence[str],
    labels: Sequence[str],
    distractors: Sequence[str],
    threshold: Thresholds = THRESHOLD,
) -> dict[str, Any]:
    """Window metrics, distractor false-positive rates and confusions of one scored set (at
    `threshold`: one, or one per label)."""
    out = window_metrics(truth, scores, care, list(labels), threshold)
    pred, cared = scores >= threshold, care > 0.5
    pos, neg = cared & (truth > 0.5), cared & (truth <= 0.5)
    kinds_a = np.asarray(kinds)
    dis = np.isin(kinds_a, list(distractors))
    fp = pred & neg
    per_label: dict[str, dict[str, float]] = {}
    for j, x in enumerate(labels):
        f, n = int(fp[dis, j].sum()), int(neg[dis, j].sum())
        per_label[x] = {"fp": f, "negatives": n, "fpr": f / n if n else float("nan")}
    any_fp = fp[dis].any(axis=1)
    out["distractors"] = {
        "kinds": sorted(set(kinds_a[dis].tolist())),
        "windows": int(dis.sum()),
        "any_false_label_rate": float(any_fp.mean()) if dis.any() else float("nan"),
        "labels": per_label,
    }
    out["confusions"] = confusions(pos, neg, fp, pred, kinds_a, labels)
    return out


def confusions(
    pos: npt.NDArray[np.bool_],
    neg: npt.NDArray[np.bool_],
    fp: npt.NDArray[np.bool_],
    pred: npt.NDArray[np.bool_],
    kinds: npt.NDArray[np.str_],
    labels: Sequence[str],
) -> list[dict[str, Any]]:
    """The most frequent errors: a label fired on windows of a scene kind where it is false
    ("kind → label"), and a true label missed ("label missed")."""
    rows: list[dict[str, Any]] = []
    for kind in sorted(set(kinds.tolist())):
        k = kinds == kind
        for j, x in enumerate(labels):
            n, f = int((k & neg[:, j]).sum()), int((k & fp[:, j]).sum())
            if f:
                rows.append({"error": f"{kind} → {x}", "windows": f, "of": n, "rate": f / n})
    for j, x in enumerate(labels):
        p, miss = int(pos[:, j].sum()), int((pos[:, j] & ~pred[:, j]).sum())
        if miss:
            rows.append({"error": f"{x} missed", "windows": miss, "of": p, "rate": miss / p})
    rows.sort(key=lambda r: (-r["windows"], r["error"]))
    return rows[:TOP_CONFUSIONS]


def score_scenes(scorer: Scorer, data: CrossSet, e_idx: list[int]) -> Array:
    """Each scene's windows scored as one stream, in order (as the service would)."""
    out = np.zeros((len(data), len(e_idx)), np.float32)
    for s in np.unique(data.scene):
        rows = np.flatnonzero(data.scene == s)
        t0 = float(data.ends[rows[0]]) - scorer.spec.length_s
        scores = scorer.score(data.video[rows], data.audio[rows], stream=f"crossgen-{s}", t0=t0)
        out[rows] = scores[:, e_idx]
    return out


def stream_edges(scorer: Scorer, data: CrossSet, scores_all: Array) -> dict[str, Any]:
    """False events (the service's tracker, the manifest's thresholds) in stream start/stop
    scenes, where nothing happens and every event is false. Those whose first window spans the
    cut (the picture and sound starting or stopping) are counted apart (`at_cut`): the rest
    fired on the quiet scene itself, with the picture steady."""
    thresholds = events.scene_thresholds(scorer)
    kinds = np.asarray(data.kinds)
    length = scorer.spec.length_s
    result: dict[str, Any] = {}
    for kind in STREAM_EDGE_KINDS:
        scenes = np.unique(data.scene[kinds == kind])
        per_label: dict[str, int] = {}
        with_event = at_cut = 0
        for s in scenes:
            rows = np.flatnonzero(data.scene == s)
            tracker = EventTracker(stream=f"edge-{s}", thresholds=thresholds)
            started = 0
            for r in rows:
                row = dict(zip(scorer.labels, map(float, scores_all[r]), strict=True))
                for ev in tracker.observe(float(data.ends[r]), row):
                    if ev.phase == "start":
                        started += 1
                        per_label[ev.label] = per_label.get(ev.label, 0) + 1
                        at_cut += bool(data.cuts[r] <= ev.start <= data.cuts[r] + length)
            with_event += started > 0
        result[kind] = {
            "scenes": len(scenes),
            "scenes_with_false_event": with_event,
            "false_events": sum(per_label.values()),
            "at_cut": at_cut,
            "by_label": dict(sorted(per_label.items())),
        }
    return result


def still(video: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Windows `[N, T, H, W, 3]` whose every frame is the window's last one: a frozen picture."""
    return np.repeat(video[:, -1:], video.shape[1], axis=1)


def still_picture(scorer: Scorer, data: CrossSet, scores_all: Array) -> dict[str, Any]:
    """The labels that need the picture, on the same windows with their picture frozen (sound
    kept): nothing can flash, approach or collide in a still picture, so every firing there is
    false. Per label: how often it fires on its own positives live and frozen, and on all frozen
    windows. A label that still fires on its frozen positives reads the look of a scene (a light
    bar, a big car) rather than the change."""
    names = [x for x in VIDEO_LABELS + FUSED_LABELS if x in scorer.labels]
    cols = [scorer.labels.index(x) for x in names]
    frozen = score_scenes(scorer, replace(data, video=still(data.video)), cols)
    on = scorer.window_thresholds(names, THRESHOLD)
    out: dict[str, Any] = {}
    for j, (label, col) in enumerate(zip(names, cols, strict=True)):
        t = LABELS.index(label)
        pos = (data.labels[:, t] > 0.5) & (data.care[:, t] > 0.5)
        live, still_pos = scores_all[pos, col] >= on[j], frozen[pos, j] >= on[j]
        out[label] = {
            "positives": int(pos.sum()),
            "live_positives_fire": float(live.mean()) if pos.any() else float("nan"),
            "frozen_positives_fire": float(still_pos.mean()) if pos.any() else float("nan"),
            "frozen_all_fire": float(np.mean(frozen[:, j] >= on[j])),
        }
    return out


def _uncertainty(
    res: dict[str, Any],
    labels: list[str],
    truth: Array,
    care: Array,
    units: npt.ArrayLike,
    unit: str,
    scored: tuple[Array, Thresholds],
    compare: tuple[Scorer, Array] | None,
) -> None:
    """Add the bootstrap intervals (`interval`) of this engine's `scored` windows (scores and
    the thresholds they were summarised at) and, with an engine to compare against (and its
    scores on the same windows), the paired difference this engine minus that one
    (`compare`)."""
    scores, th = scored
    own = unit_counts(truth, scores, care, th, units)
    res["interval"] = intervals(own, labels, unit)
    if compare is not None:
        other, other_scores = compare
        other_th = other.window_thresholds(labels, THRESHOLD)
        base = unit_counts(truth, other_scores, care, other_th, units)
        res["compare"] = {
            "engine": other.engine.name,
            "dir": str(other.engine.manifest.dir),
            **paired_delta(base, own, labels),
        }


def check_comparable(scorer: Scorer, other: Scorer) -> None:
    """`other` scores the same labels on the same windows as `scorer`, or a ValueError that
    says why not (before any set is generated or scored)."""
    mine, theirs = _columns(scorer)[2], _columns(other)[2]
    if mine != theirs:
        raise ValueError(f"cannot compare with {other.engine.name!r}: labels {theirs}, not {mine}")
    if other.spec != scorer.spec:
        raise ValueError(
            f"cannot compare with {other.engine.name!r}: its windows ({other.spec}) are not "
            f"{scorer.engine.name!r}'s ({scorer.spec})"
        )


def pooled_cross_set(
    spec: WindowSpec, scenes: int, seeds: Sequence[int], cache_dir: Path | None = CACHE_DIR
) -> CrossSet:
    """`scenes` scenes of each cross set in `seeds`, stacked as one set: scene indices run on
    from one seed to the next (seed k's scene i is `k * scenes + i`), so each scene stays one
    bootstrap unit. (Here, not in `crossgen`: its sources are its fingerprint.)"""
    sets = [build_cross_set(spec, scenes, s, cache_dir, progress=True) for s in seeds]
    if len(sets) == 1:
        return sets[0]
    return CrossSet(
        video=np.concatenate([d.video for d in sets]),
        audio=np.concatenate([d.audio for d in sets]),
        labels=np.concatenate([d.labels for d in sets]),
        care=np.concatenate([d.care for d in sets]),
        ends=np.concatenate([d.ends for d in sets]),
        scene=np.concatenate([d.scene + k * scenes for k, d in enumerate(sets)]),
        cuts=np.concatenate([d.cuts for d in sets]),
        kinds=[kind for d in sets for kind in d.kinds],
    )


def evaluate_cross(
    scorer: Scorer,
    scenes: int = CROSS_SCENES,
    seeds: Sequence[int] = (CROSS_SEED,),
    compare: Scorer | None = None,
) -> dict[str, Any]:
    """The cross-generator report on `scenes` scenes of each set in `seeds`, pooled (with
    `compare`: also the paired difference to that engine on the same windows)."""
    data = pooled_cross_set(scorer.spec, scenes, seeds)
    e_idx, t_idx, labels = _columns(scorer)
    all_scores = np.zeros((len(data), len(scorer.labels)), np.float32)
    all_scores[:] = score_scenes(scorer, data, list(range(len(scorer.labels))))
    truth, care = data.labels[:, t_idx], data.care[:, t_idx]
    scores, th = all_scores[:, e_idx], scorer.window_thresholds(labels, THRESHOLD)
    res = summarise(truth, care, scores, data.kinds, labels, sorted(DISTRACTOR_KINDS), th)
    other = None
    if compare is not None:
        other = (compare, score_scenes(compare, data, _columns(compare)[0]))
    _uncertainty(res, labels, truth, care, data.scene, "scene", (scores, th), other)
    res.update(
        set="cross",
        generator=cross_fingerprint(),
        scenes=scenes * len(seeds),
        seeds=list(seeds),
        **({"seed": seeds[0]} if len(seeds) == 1 else {}),
        windows=len(data),
        unscored=int((data.care[:, t_idx] < 0.5).sum()),
        windows_per_kind={k: data.kinds.count(k) for k in sorted(set(data.kinds))},
        stream_edges=stream_edges(scorer, data, all_scores),
        still_picture=still_picture(scorer, data, all_scores),
    )
    return res


def evaluate_in(
    scorer: Scorer, windows: int | None, compare: Scorer | None = None
) -> dict[str, Any]:
    """The training generator's held-out split, summarised like the cross set (each window is
    its own scene, so the bootstrap unit is the window)."""
    from engines.lab.evaluation.suite import load_eval_set
    from engines.lab.training.data import generator_fingerprint

    data = load_eval_set("heldout", scorer, windows)
    e_idx, t_idx, labels = _columns(scorer)
    video, audio = np.asarray(data.video), np.asarray(data.audio)
    scores = scorer.score(video, audio, independent=True)[:, e_idx]
    truth, care = np.asarray(data.labels)[:, t_idx], np.asarray(data.care)[:, t_idx]
    th = scorer.window_thresholds(labels, THRESHOLD)
    res = summarise(truth, care, scores, data.kinds, labels, distractor_kinds(data.kinds), th)
    other = None
    if compare is not None:
        other = (compare, compare.score(video, audio, independent=True)[:, _columns(compare)[0]])
    _uncertainty(res, labels, truth, care, np.arange(len(data)), "window", (scores, th), other)
    res.update(set="in (heldout)", generator=generator_fingerprint(), windows=len(data))
    return res


def evaluate_sets(
    scorer: Scorer,
    which: str,
    windows: int | None,
    scenes: int,
    compare: Scorer | None = None,
    seeds: Sequence[int] = (CROSS_SEED,),
) -> dict[str, Any]:
    """`which` in {"in", "cross", "all"}: the reports asked for, side by side (with `compare`,
    each with the paired difference to that engine; the cross set pools the sets `seeds`)."""
    _, _, labels = _columns(scorer)
    if compare is not None:
        check_comparable(scorer, compare)
    out: dict[str, Any] = {
        "engine": scorer.engine.name,
        "backend": scorer.report.backend,
        "threshold": threshold_record(labels, scorer.window_thresholds(labels, THRESHOLD)),
    }
    if which in ("in", "all"):
        out["in"] = evaluate_in(scorer, windows, compare)
    if which in ("cross", "all"):
        out["cross"] = evaluate_cross(scorer, scenes, seeds=seeds, compare=compare)
    return out
