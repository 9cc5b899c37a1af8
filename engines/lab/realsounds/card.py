"""The model card's real-sound section: the table `scenestream evaluate --set real` wrote into
the engine directory (`realsounds.json` / `realsounds.md`), the data sources and their licences.

The table is quoted only while it describes the model in the directory (the SHA-256 of the
model file is recorded at evaluation); after retraining the section says it is stale and how
to re-measure, rather than quoting another model's numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.lab.realsounds.manifest import Entry, load_manifest

JSON_NAME = "realsounds.json"
MD_NAME = "realsounds.md"
COMMAND = (
    "python -m engines.lab.realsounds.fetch && scenestream evaluate --engine {engine} "
    "--set real --json {dir}/realsounds.json --markdown {dir}/realsounds.md"
)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class _Row:
    licences: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    eval: int = 0
    train: int = 0


def sources_table(entries: Sequence[Entry]) -> str:
    """Markdown: per package and version, its licences and how many files each split uses."""
    rows: dict[tuple[str, str], _Row] = {}
    for e in entries:
        r = rows.setdefault((e.package, e.version), _Row())
        r.licences.add(e.licence)
        r.kinds.add(e.kind.split("_")[0])
        if e.split == "eval":
            r.eval += 1
        else:
            r.train += 1
    lines = [
        "| package (Debian unless noted) | version | licence(s) | eval files | train files "
        "| what |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    pypi = {e.package for e in entries if e.source.startswith("pypi")}
    for (pkg, ver), r in sorted(rows.items()):
        name = f"{pkg} (PyPI)" if pkg in pypi else pkg
        lic = "; ".join(sorted(r.licences)) if len(r.licences) <= 3 else _cc_summary(r.licences)
        kinds = ", ".join(sorted(r.kinds))
        lines.append(f"| {name} | {ver} | {lic} | {r.eval} | {r.train} | {kinds} |")
    return "\n".join(lines) + "\n"


def _cc_summary(licences: set[str]) -> str:
    """Per-file licences (e.g. 'CC-BY-3.0 (author; ed. editor)') summarised by licence."""
    names = sorted({x.split(" (")[0] for x in licences})
    return f"per file ({', '.join(names)}; authors in the manifest)"


def confusions(result: dict[str, Any], top: int = 3, min_windows: int = 10) -> str:
    """One line per audio label: the kinds of negative sound it fires on most (clean)."""
    clean = result.get("conditions", {}).get("clean")
    if not clean:
        return ""
    lines = []
    for label in clean["labels"]:
        worst = sorted(
            (
                (per[label]["rate"], kind, per[label])
                for kind, per in clean["fpr_by_kind"].items()
                if kind != "all negatives"
                and label in per
                and per[label]["windows"] >= min_windows
                and per[label]["rate"]
            ),
            key=lambda x: (-x[0], x[1]),
        )[:top]
        if worst:
            cells = ", ".join(f"{k} {r['rate']:.0%} of {r['windows']}" for _, k, r in worst)
            lines.append(f"- `{label}` fires most on: {cells} windows.")
    return "\n".join(lines) + "\n" if lines else ""


def section(engine_dir: Path, engine: str) -> str:
    """The card's real-sound section ("" when the engine was never evaluated on the set)."""
    json_path, md_path = engine_dir / JSON_NAME, engine_dir / MD_NAME
    if not json_path.exists() or not md_path.exists():
        return ""
    result = json.loads(json_path.read_text())
    model = engine_dir / "model.onnx"
    command = COMMAND.format(engine=engine, dir=engine_dir)
    head = "\n## Measured (real recordings, reported separately)\n"
    measured = result.get("model_sha256")
    if measured and model.exists() and file_sha256(model) != measured:
        return head + f"Stale: measured on another model file. Re-measure with `{command}`.\n"
    entries = load_manifest()
    n_eval = sum(1 for e in entries if e.split == "eval")
    n_train = len(entries) - n_eval
    return (
        head
        + f"""Real recordings that Debian and PyPI packages ship (sound themes, game and toy sound
effects, speech prompts, spoken stamp descriptions; `engines/lab/realsounds/manifest.csv`):
{n_eval} files form the evaluation set, {n_train} other free-licensed files are listed for training
and never evaluated on. Labels were decided without listening, from file names, the packages'
credits (the OpenTTD sound set names each source recording) and the pitch track of each clip;
ambiguous labels (a steam whistle as `horn`, chanting crowds as `speech`) are not scored on that
file. Clips are normalised to −20 dBFS, placed after 0.5 s of silence and before 0.5 s more, cut
into this engine's windows and labelled by its window rule; the video is a neutral still frame,
so only the audio labels are scored (the video and fused labels must stay off). Few sirens,
horns and alarms ship as free recordings: those rows rest on a handful of clips. Re-measure with
`{command}`.

{md_path.read_text()}
Confusions that remain (clean, kinds with at least 10 negative windows):

{confusions(result)}
Sources and licences:

{sources_table(entries)}"""
    )
