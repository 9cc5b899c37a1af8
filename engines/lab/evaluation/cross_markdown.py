"""The in/cross comparison as text: the markdown tables `scenestream evaluate --set in|cross|all`
prints (per label with bootstrap intervals, the paired difference to a compared engine,
distractors, stream edges, still picture, confusions) and the model card section it writes.
The numbers come from `engines.lab.evaluation.cross`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.lab.evaluation.report import threshold_text


def _seeds(report: dict[str, Any]) -> str:
    """`seed 11`, or `seeds 14, 15, 16` for a pooled set (an older report has `seed` only)."""
    seeds = report.get("seeds", [report.get("seed")])
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


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
                f" from {r['scenes']} scenes ({_seeds(r)}, generator `{r['generator']}`)"
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
