"""In-generator vs cross-generator evaluation (`scenestream evaluate --set in|cross|all`).

`in` is the training generator's held-out split (`engines/lab/scenes`); `cross` is the
independent generator `engines/lab/crossgen`, written from the label definitions alone, so a
gap between the two says how much of a score is the training generator's own habits. Both are
summarised the same way: per-label P/R/F1, macro-F1, the false-positive rate on distractor
windows, the most frequent confusions, and (cross only: the training generator has no such
scenes) false events at stream starts and stops through the service's event tracker, and the
labels that need the picture scored again on the same windows with it frozen.
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
from engines.lab.evaluation import events
from engines.lab.evaluation.report import (
    THRESHOLD,
    Thresholds,
    distractor_kinds,
    threshold_record,
    threshold_text,
    window_metrics,
)
from engines.lab.evaluation.scoring import Scorer
from engines.lab.evaluation.uncertainty import intervals, paired_delta, unit_counts
from engines.labels import FUSED_LABELS, LABELS, VIDEO_LABELS

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
    scorer: Scorer,
    truth: Array,
    care: Array,
    units: npt.ArrayLike,
    unit: str,
    scores: Array,
    compare: tuple[Scorer, Array] | None,
) -> None:
    """Add the bootstrap intervals (`interval`) and, with an engine to compare against (and its
    scores on the same windows), the paired difference this engine minus that one
    (`compare`)."""
    _, _, labels = _columns(scorer)
    own = unit_counts(truth, scores, care, scorer.window_thresholds(labels, THRESHOLD), units)
    res["interval"] = intervals(own, labels, unit)
    if compare is not None:
        other, other_scores = compare
        th = other.window_thresholds(labels, THRESHOLD)
        base = unit_counts(truth, other_scores, care, th, units)
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


def evaluate_cross(
    scorer: Scorer,
    scenes: int = CROSS_SCENES,
    seed: int = CROSS_SEED,
    compare: Scorer | None = None,
) -> dict[str, Any]:
    """The cross-generator report (with `compare`: also the paired difference to that
    engine on the same windows)."""
    data = build_cross_set(scorer.spec, scenes, seed=seed, progress=True)
    e_idx, t_idx, labels = _columns(scorer)
    all_scores = np.zeros((len(data), len(scorer.labels)), np.float32)
    all_scores[:] = score_scenes(scorer, data, list(range(len(scorer.labels))))
    truth, care = data.labels[:, t_idx], data.care[:, t_idx]
    res = summarise(
        truth,
        care,
        all_scores[:, e_idx],
        data.kinds,
        labels,
        sorted(DISTRACTOR_KINDS),
        scorer.window_thresholds(labels, THRESHOLD),
    )
    other = None
    if compare is not None:
        other = (compare, score_scenes(compare, data, _columns(compare)[0]))
    _uncertainty(res, scorer, truth, care, data.scene, "scene", all_scores[:, e_idx], other)
    res.update(
        set="cross",
        generator=cross_fingerprint(),
        scenes=scenes,
        seed=seed,
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
    res = summarise(
        truth,
        care,
        scores,
        data.kinds,
        labels,
        distractor_kinds(data.kinds),
        scorer.window_thresholds(labels, THRESHOLD),
    )
    other = None
    if compare is not None:
        other = (compare, compare.score(video, audio, independent=True)[:, _columns(compare)[0]])
    _uncertainty(res, scorer, truth, care, np.arange(len(data)), "window", scores, other)
    res.update(set="in (heldout)", generator=generator_fingerprint(), windows=len(data))
    return res


def evaluate_sets(
    scorer: Scorer, which: str, windows: int | None, scenes: int, compare: Scorer | None = None
) -> dict[str, Any]:
    """`which` in {"in", "cross", "all"}: the reports asked for, side by side (with `compare`,
    each with the paired difference to that engine)."""
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
        out["cross"] = evaluate_cross(scorer, scenes, compare=compare)
    return out


def _f(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _span(r: dict[str, Any], label: str | None = None) -> str:
    """ " [lo, hi]": the F1's bootstrap interval (macro-F1's without a label), if reported."""
    if "interval" not in r:
        return ""
    lo, hi = r["interval"]["macro_f1"] if label is None else r["interval"]["labels"][label]
    return f" [{lo:.2f}, {hi:.2f}]"


def _interval_note(sets: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    parts = [
        f"{n}: {i['units']} {i['unit']}s" for n, r in sets if (i := r.get("interval")) is not None
    ]
    if not parts:
        return []
    i = next(r["interval"] for _, r in sets if "interval" in r)
    return [
        "",
        f"F1 [lo, hi]: {i['level']:.0%} bootstrap interval over {i['draws']} resamples of "
        f"whole units ({'; '.join(parts)}): how far the number would move on another set of "
        "the same size from the same generator.",
    ]


def _compare_table(sets: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """This engine minus the compared one, per label and macro, per set: the difference on
    these windows and its paired interval."""
    done = [(n, r["compare"]) for n, r in sets if "compare" in r]
    if not done:
        return []
    c = done[0][1]
    name = f"`{c['engine']}`" + (f" (`{c['dir']}`)" if "dir" in c else "")
    out = [
        "",
        f"Difference to {name} on the same windows (this engine minus it; F1 [paired "
        "interval]; an interval that holds 0 shows no difference):",
        "",
        "| label | " + " | ".join(f"{n} ΔF1" for n, _ in done) + " |",
        "| --- |" + " --- |" * len(done),
    ]

    def cell(v: list[float]) -> str:
        return f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"

    for label in done[0][1]["labels"]:
        out.append(f"| {label} | " + " | ".join(cell(c["labels"][label]) for _, c in done) + " |")
    macro = " | ".join(f"**{cell(c['macro_f1'])}**" for _, c in done)
    out.append(f"| **macro-F1** | {macro} |")
    return out


def markdown(result: dict[str, Any]) -> str:
    """Per-label table (in vs cross), distractors, stream edges, top confusions."""
    sets = [(name, result[name]) for name in ("in", "cross") if name in result]
    head = (
        "| label | "
        + " | ".join(f"{n} P | {n} R | {n} F1 | {n} AP | {n} support" for n, _ in sets)
        + " |"
    )
    lines = [
        f"### `{result['engine']}`: in-generator vs cross-generator (backend "
        f"`{result['backend']}`, {threshold_text(result['threshold'])})",
        "",
        "; ".join(
            f"{n}: {r['windows']} windows"
            + (
                f" from {r['scenes']} scenes (seed {r['seed']}, generator `{r['generator']}`)"
                if n == "cross"
                else f" (generator `{r['generator']}`)"
            )
            for n, r in sets
        ),
        "",
        head,
        "| --- |" + " --- | --- | --- | --- | --- |" * len(sets),
    ]
    for label in sets[0][1]["labels"]:
        cells = []
        for _, r in sets:
            s = r["labels"][label]
            f1 = _f(s["f1"]) + _span(r, label)
            cells.append(
                f"{_f(s['precision'])} | {_f(s['recall'])} | {f1} | {_f(s['ap'])} | {s['support']}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| **macro-F1** | "
        + " | ".join(f" | | **{_f(r['macro_f1'])}**{_span(r)} | | " for _, r in sets)
        + " |"
    )
    lines += _interval_note(sets) + _compare_table(sets)
    lines += ["", "False positives on distractor windows (label false there, fired anyway):", ""]
    lines.append("| set | windows | any false label | " + " | ".join(sets[0][1]["labels"]) + " |")
    lines.append("| --- | --- | --- |" + " --- |" * len(sets[0][1]["labels"]))
    for n, r in sets:
        d = r["distractors"]
        per = " | ".join(_f(v["fpr"]) for v in d["labels"].values())
        lines.append(f"| {n} | {d['windows']} | {_f(d['any_false_label_rate'])} | {per} |")
    if "cross" in result:
        lines += [
            "",
            'Stream edges (cross; nothing happens, so every event is false; "at the cut": the '
            "event's first window spans the picture and sound starting or stopping):",
            "",
            "| edge | scenes | scenes with a false event | false events | at the cut | by label |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for kind, e in result["cross"]["stream_edges"].items():
            by = ", ".join(f"{k} {v}" for k, v in e["by_label"].items()) or "—"
            lines.append(
                f"| {kind} | {e['scenes']} | {e['scenes_with_false_event']} | "
                f"{e['false_events']} | {e['at_cut']} | {by} |"
            )
    if "still_picture" in result.get("cross", {}):
        lines += [
            "",
            "Still picture (cross windows with every frame replaced by the last, sound kept; "
            "nothing can flash, approach or collide, so every firing on them is false; the share "
            "of the label's positives it fires on live and frozen, and of all frozen windows):",
            "",
            "| label | positives | live | frozen | all windows frozen |",
            "| --- | --- | --- | --- | --- |",
        ]
        for label, v in result["cross"]["still_picture"].items():
            lines.append(
                f"| {label} | {v['positives']} | {_f(v['live_positives_fire'])} | "
                f"{_f(v['frozen_positives_fire'])} | {_f(v['frozen_all_fire'])} |"
            )
    for n, r in sets:
        lines += [
            "",
            f"Top confusions ({n}):",
            "",
            "| error | windows | of | rate |",
            "| --- | --- | --- | --- |",
        ]
        for c in r["confusions"]:
            lines.append(f"| {c['error']} | {c['windows']} | {c['of']} | {_f(c['rate'])} |")
    return "\n".join(lines) + "\n"


CARD_BEGIN, CARD_END = "<!-- crossgen:begin -->", "<!-- crossgen:end -->"
CARD_INTRO = """## Measured on an independent generator
`engines/lab/crossgen` was written from the label definitions alone (no code or parameters shared
with `engines/lab/scenes`): its own siren, horn, alarm and speech synthesis, lights, objects,
noise beds, distractors, camera and codec effects, and stream starts and stops. The gap between
its numbers and the held-out ones is how much of the held-out score is the training generator's
own habits. Reproduce with `scenestream evaluate --engine avfusion --set all --card`.
"""


def write_card_section(card: Path, text: str) -> None:
    """Put `text` between the card's crossgen markers (appended when the card has none)."""
    body = f"{CARD_BEGIN}\n{CARD_INTRO}\n{text.rstrip()}\n{CARD_END}"
    old = card.read_text() if card.exists() else ""
    if CARD_BEGIN in old and CARD_END in old:
        head, rest = old.split(CARD_BEGIN, 1)
        new = head + body + rest.split(CARD_END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + body + "\n"
    card.write_text(new)
