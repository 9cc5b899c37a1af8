"""Real recordings for training: the real-sound manifest's `train` split, when it is fetched.

`python -m engines.lab.realsounds.fetch --split train` puts the files in the real-sound cache
(`$SCENESTREAM_REAL_CACHE`, else `.cache/scenestream/realsounds` under the working directory or
the repository). Without them the bank is empty and the generator synthesises instead (CI does
not fetch). `eval` files are never read here.

Honest labels: a clip carries exactly the manifest's labels (`speech` for the spoken Tux Paint
descriptions and commentary, none for vehicles, animals, traffic, music and UI sounds), on its
active spans (`realsounds.clips.active_spans`, pauses under 0.5 s bridged). Clips with a
`dontcare` label (crowd chants, whistles that may be horns) and `EXCLUDED` ones are left out:
a label that may or may not be there cannot be taught either way.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.lab.scenes.audio import F32
from engines.lab.scenes.speech import cache_root

SR = 16000
BANK_VERSION = 1
CACHE_ENV = "SCENESTREAM_REAL_CACHE"  # as engines.lab.realsounds.evaluate
REPO_ROOT = Path(__file__).resolve().parents[4]
EXCLUDED = {"0031": "an air horn sounds in it but its span is not located"}


@dataclass(frozen=True, slots=True)
class Recording:
    """One training clip at 16 kHz (unit RMS over its active part), its labels and where they
    hold (seconds from the clip's start)."""

    id: str
    samples: F32
    labels: tuple[str, ...]
    spans: tuple[tuple[float, float], ...]


def cache_dirs() -> list[Path]:
    """Where fetched clips are looked for, in order."""
    from engines.lab.realsounds.fetch import DEFAULT_CACHE

    env = os.environ.get(CACHE_ENV)
    dirs = [Path(env)] if env else []
    return [*dirs, Path.cwd() / DEFAULT_CACHE, REPO_ROOT / DEFAULT_CACHE]


@functools.lru_cache(maxsize=1)
def recording_bank() -> tuple[Recording, ...]:
    """Every usable fetched `train` clip (empty when none is fetched)."""
    from engines.lab.realsounds.manifest import load_manifest, train_entries

    entries = [e for e in train_entries(load_manifest()) if not e.dontcare and e.id not in EXCLUDED]
    found: list[tuple[str, tuple[str, ...], Path]] = []
    for e in entries:
        for d in cache_dirs():
            path = d / "clips" / e.clip_name
            if path.exists():
                found.append((e.id, e.labels, path))
                break
    if not found:
        return ()
    stamp = [(i, lab, p.stat().st_size, p.stat().st_mtime_ns) for i, lab, p in found]
    key = hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]
    store = cache_root() / f"recordings-v{BANK_VERSION}-{key}.npz"
    if store.exists():
        return _load(store, found)
    bank = tuple(_decode(i, labels, path) for i, labels, path in found)
    _save(store, bank)
    return tuple(r for r in bank if len(r.samples) > 0)


def _decode(clip_id: str, labels: tuple[str, ...], path: Path) -> Recording:
    from engines.lab.realsounds.clips import active_rms, active_spans, decode_audio

    try:
        x = decode_audio(path, SR)
    except (ValueError, OSError):
        return Recording(clip_id, np.zeros(0, np.float32), labels, ())
    spans = active_spans(x, SR)
    rms = active_rms(x, SR, spans)
    y = (x / rms if rms > 0 else x).astype(np.float32)
    return Recording(clip_id, y, labels, tuple(spans))


def _save(store: Path, bank: tuple[Recording, ...]) -> None:
    """Write atomically; a read-only cache only costs decoding again next time."""
    offsets = np.cumsum([0, *(len(r.samples) for r in bank)])
    spans = np.array([(i, a, b) for i, r in enumerate(bank) for a, b in r.spans], dtype=np.float64)
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, data=np.concatenate([r.samples for r in bank]), offsets=offsets,
                 spans=spans.reshape(-1, 3))  # fmt: skip
        os.replace(tmp, store)
    except OSError:
        pass


def _load(store: Path, found: list[tuple[str, tuple[str, ...], Path]]) -> tuple[Recording, ...]:
    with np.load(store) as npz:
        data, offsets, spans = npz["data"], npz["offsets"], npz["spans"]
    out = []
    for i, (clip_id, labels, _) in enumerate(found):
        own = tuple((float(a), float(b)) for j, a, b in spans if int(j) == i)
        samples = data[offsets[i] : offsets[i + 1]]
        if len(samples):
            out.append(Recording(clip_id, samples, labels, own))
    return tuple(out)
