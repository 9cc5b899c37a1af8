"""Label maps: a pretrained model's class names → scenestream's scene labels.

A map is a TOML file with one table, `[labels]`, of `"class name" = "scene label"` rows; classes
not named have no scene label. Shipped maps (this folder) are named by file stem (`"audioset"`,
`"coco"`); an engine manifest may instead give a path relative to its directory, and override
single rows (`label_overrides`, where an empty string removes a class from the map).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class LabelMapError(ValueError):
    """A label map cannot be found or is malformed (the text names the file)."""


def shipped() -> list[str]:
    """Names of the label maps shipped with scenestream."""
    root = resources.files("engines.labelmaps")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_label_map(name: str, base: Path | None = None) -> dict[str, str]:
    """A shipped map by name, or a map file (relative to `base`, an engine directory)."""
    if name in shipped():
        text = resources.files("engines.labelmaps").joinpath(f"{name}.toml").read_text()
        where = f"label map {name!r}"
    else:
        path = (base / name) if base is not None else Path(name)
        if not path.is_file():
            known = ", ".join(shipped())
            raise LabelMapError(f"label map {name!r}: no such file, nor a shipped map ({known})")
        text, where = path.read_text(), str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabelMapError(f"{where}: invalid TOML: {exc}") from exc
    table = doc.get("labels")
    if not isinstance(table, dict) or set(doc) - {"labels"}:
        raise LabelMapError(f"{where}: needs exactly one table, [labels]")
    for cls, label in table.items():
        if not isinstance(label, str) or not LABEL_PATTERN.match(label):
            raise LabelMapError(f"{where}: {cls!r}: {label!r} is not a scene label")
    return dict(table)


def apply_overrides(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """`base` with rows replaced; an empty label removes the class."""
    out = dict(base)
    for cls, label in overrides.items():
        if label:
            if not LABEL_PATTERN.match(label):
                raise LabelMapError(f"label_overrides: {cls!r}: {label!r} is not a scene label")
            out[cls] = label
        else:
            out.pop(cls, None)
    return out


def mapped_labels(classes: tuple[str, ...], mapping: Mapping[str, str]) -> tuple[str, ...]:
    """The scene labels the classes map to, unique, in first-appearance order."""
    return tuple(dict.fromkeys(mapping[c] for c in classes if c in mapping))
