"""The real-sound manifest: which file of which pinned package, its licence, labels and split.

`manifest.csv` (one row a file) and `sources.csv` (one row a pinned package file, with its
SHA-256) are checked in next to this module; the audio is not (`fetch` downloads it into a cache).
`validate` states the rules the tests hold the manifest to: every file in exactly one split,
labels from the audio vocabulary, a licence on every row, every package pinned.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engines.labels import AUDIO_LABELS

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.csv"
SOURCES = HERE / "sources.csv"
MANIFEST_COLUMNS = (
    "id",
    "source",
    "package",
    "version",
    "path",
    "member",
    "licence",
    "labels",
    "dontcare",
    "kind",
    "origin",
    "split",
    "how",
    "note",
)
SOURCE_COLUMNS = ("source", "package", "version", "filename", "sha256", "bytes")
SOURCE_KINDS = ("deb", "pypi-wheel", "pypi-sdist")
SPLITS = ("eval", "train")
ORIGINS = ("recorded", "synthesized", "unknown")
# Licence words that would make a file unusable (non-commercial, no-derivatives, unknown).
FORBIDDEN_LICENCE_WORDS = ("-NC", "-ND", "NonCommercial", "NoDerivatives", "unknown")

Split = Literal["eval", "train"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One file: where it comes from, what is in it, and which split it belongs to."""

    id: str
    source: str
    package: str
    version: str
    path: str  # inside the package (deb: file system path; wheel/sdist: archive member)
    member: str  # index inside a container file (an OpenTTD .cat), else ""
    licence: str
    labels: tuple[str, ...]  # audio labels present while the sound is active
    dontcare: tuple[str, ...]  # audio labels not scored on this file (ambiguous)
    kind: str  # what the sound is (siren_yelp, horn_car, impact, music, ...)
    origin: str
    split: str
    how: str  # how the label was decided: name, credit (author's title), signal check
    note: str

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of the underlying file, whatever row it is listed on."""
        return (self.package, self.path, self.member)

    @property
    def suffix(self) -> str:
        """File suffix of the extracted clip."""
        return ".wav" if self.member else Path(self.path).suffix

    @property
    def clip_name(self) -> str:
        """File name of the extracted clip in the cache."""
        stem = Path(self.path).stem if not self.member else f"{Path(self.path).stem}-{self.member}"
        return f"{self.id}-{self.package}-{stem}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Source:
    """One pinned package file."""

    source: str
    package: str
    version: str
    filename: str
    sha256: str
    bytes: int


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(";") if x.strip())


def load_manifest(path: Path = MANIFEST) -> list[Entry]:
    """Rows of `manifest.csv`, in file order."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(MANIFEST_COLUMNS)}")
        return [_entry(row) for row in reader]


def _entry(row: dict[str, str]) -> Entry:
    return Entry(
        id=row["id"],
        source=row["source"],
        package=row["package"],
        version=row["version"],
        path=row["path"],
        member=row["member"],
        licence=row["licence"],
        labels=_split_list(row["labels"]),
        dontcare=_split_list(row["dontcare"]),
        kind=row["kind"],
        origin=row["origin"],
        split=row["split"],
        how=row["how"],
        note=row["note"],
    )


def load_sources(path: Path = SOURCES) -> list[Source]:
    """Rows of `sources.csv`."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != SOURCE_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(SOURCE_COLUMNS)}")
        return [
            Source(
                source=r["source"],
                package=r["package"],
                version=r["version"],
                filename=r["filename"],
                sha256=r["sha256"],
                bytes=int(r["bytes"]),
            )
            for r in reader
        ]


def validate(entries: Sequence[Entry], sources: Sequence[Source]) -> list[str]:
    """Every rule the manifest breaks, one line each (empty when it is sound)."""
    errors: list[str] = []
    pinned = {(s.package, s.version, s.source) for s in sources}
    ids: set[str] = set()
    splits: dict[tuple[str, str, str], str] = {}
    for e in entries:
        where = f"row {e.id} ({e.package}:{e.path}{'#' + e.member if e.member else ''})"
        if e.id in ids:
            errors.append(f"{where}: duplicate id")
        ids.add(e.id)
        if e.split not in SPLITS:
            errors.append(f"{where}: split {e.split!r} not in {SPLITS}")
        if e.key in splits:
            errors.append(f"{where}: file listed twice ({splits[e.key]} and {e.split})")
        splits[e.key] = e.split
        for label in e.labels + e.dontcare:
            if label not in AUDIO_LABELS:
                errors.append(f"{where}: {label!r} is not an audio label {AUDIO_LABELS}")
        if set(e.labels) & set(e.dontcare):
            errors.append(f"{where}: a label cannot be both present and not scored")
        if not e.licence.strip():
            errors.append(f"{where}: no licence")
        if any(w.lower() in e.licence.lower() for w in FORBIDDEN_LICENCE_WORDS):
            errors.append(f"{where}: licence {e.licence!r} is not free")
        if e.origin not in ORIGINS:
            errors.append(f"{where}: origin {e.origin!r} not in {ORIGINS}")
        if e.source not in SOURCE_KINDS:
            errors.append(f"{where}: source {e.source!r} not in {SOURCE_KINDS}")
        if (e.package, e.version, e.source) not in pinned:
            errors.append(f"{where}: {e.package} {e.version} ({e.source}) not in sources.csv")
        if not e.kind or not e.how:
            errors.append(f"{where}: kind and how are required")
    return errors


def eval_entries(entries: Sequence[Entry]) -> list[Entry]:
    """The real-sound evaluation set."""
    return [e for e in entries if e.split == "eval"]


def train_entries(entries: Sequence[Entry]) -> list[Entry]:
    """Files whose licence allows training and that are never evaluated on."""
    return [e for e in entries if e.split == "train"]
