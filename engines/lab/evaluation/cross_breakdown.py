"""Recall on the cross-generator by what was drawn: siren pattern and timbre, lamp style and
colour, alarm pattern, talker synthesis, background bed, codec.

`python -m engines.lab.evaluation.cross_breakdown [--engine avfusion] [--scenes 200]` re-draws
the first scenes of the cross set (same seeds as `scenestream evaluate --set cross`), scores them
as streams and prints, per label and drawn parameter value, the scored positive windows and the
recall; it says which families an engine misses, where the summary only says how often.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np

from engines.lab.crossgen import make_scene, windows
from engines.lab.evaluation.cross import CROSS_SEED
from engines.lab.evaluation.report import THRESHOLD
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.labels import LABELS

TAG_KEYS = ("pattern", "timbre", "style", "colours", "synth", "bed", "codec", "doppler")
# What can explain a miss of each label (a siren's pattern, not the lamp style next to it).
# In `mixed` scenes a `pattern` may be an alarm's: read those rows with that in mind.
RELEVANT = {
    "speech": ("synth", "bed"),
    "siren": ("pattern", "timbre", "doppler", "bed"),
    "horn": ("bed",),
    "alarm": ("pattern", "bed"),
    "flashing_lights": ("style", "colours", "codec"),
    "approaching_object": ("codec",),
    "emergency_vehicle": ("pattern", "style", "doppler"),
    "collision": ("codec", "bed"),
}


def tags(params: dict[str, Any]) -> Iterator[str]:
    """`key=value` for every drawn parameter worth grouping by."""
    flat: list[tuple[str, Any]] = [(k, v) for k, v in params.items() if k in TAG_KEYS]
    for src in params.get("sources", []):
        flat += [(k, v) for k, v in src.items() if k in TAG_KEYS]
    beacon = params.get("beacon")
    if isinstance(beacon, dict):
        flat += [(k, v) for k, v in beacon.items() if k in TAG_KEYS]
    flat.append(("codec", params.get("codec", "none")))
    for k, v in flat:
        yield f"{k}={v}"


def breakdown(
    scorer: Scorer, scenes: int, seed: int = CROSS_SEED
) -> dict[str, dict[str, list[int]]]:
    """`{label: {tag: [tp, positives]}}` over the first `scenes` scenes."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    cols = [scorer.labels.index(x) for x in LABELS]
    th = scorer.window_thresholds(LABELS, THRESHOLD)
    for i in range(scenes):
        scene = make_scene(seed, i, scorer.spec)
        rows = list(windows(scene, scorer.spec, f"bd-{i}"))
        video = np.stack([w.video for w, _, _ in rows])  # type: ignore[misc]
        audio = np.stack([w.audio for w, _, _ in rows])  # type: ignore[misc]
        scores = scorer.score(video, audio, stream=f"bd-{i}", t0=rows[0][0].start)[:, cols]
        truth = np.stack([y for _, y, _ in rows]) * np.stack([c for _, _, c in rows])
        drawn = sorted(set(tags(scene.params)))
        for j, label in enumerate(LABELS):
            pos = truth[:, j] > 0.5
            if not pos.any():
                continue
            tp = int((scores[pos, j] >= th[j]).sum())
            for tag in (t for t in drawn if t.split("=")[0] in RELEVANT.get(label, TAG_KEYS)):
                out[label][tag][0] += tp
                out[label][tag][1] += int(pos.sum())
    return out


def markdown(table: dict[str, dict[str, list[int]]], min_windows: int = 10) -> str:
    """Per label, each drawn value with at least `min_windows` positives, weakest first."""
    lines = ["| label | drawn | positive windows | recall |", "| --- | --- | --- | --- |"]
    for label, per in table.items():
        rows = [(tp / n, tag, n) for tag, (tp, n) in per.items() if n >= min_windows]
        for recall, tag, n in sorted(rows):
            lines.append(f"| {label} | {tag} | {n} | {recall:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line entry."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", default="avfusion")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--scenes", type=int, default=200)
    args = p.parse_args()
    scorer = load_scorer(args.engine, backend=args.backend)
    try:
        print(markdown(breakdown(scorer, args.scenes)))
    finally:
        scorer.close()


if __name__ == "__main__":
    main()
