"""Scene scripts: a small TOML format that strings segments on a timeline.

```toml
name = "emergency"
duration = 12.0
description = "street, then an emergency vehicle approaching with siren and lights"

[look]                 # optional; anything left out is drawn from the seed
backdrop = "street"    # street | rural | plaza | night
shake = 0.005          # camera shake amplitude, fraction of the frame
noise = 0.01           # sensor noise standard deviation

[sound]                # optional
ambience = "street"    # street | rain | crowd | wind | hum | none, or a noise family:
                       # pink | brown | traffic | hvac | babble
reverb = false         # or a number: RT60 in seconds
level = 0.2            # RMS of the loudest source

[[segment]]
kind = "emergency_vehicle"
start = 4.0
end = 9.0
motion = "approach"    # kind-specific parameters, see PARAMS
siren = "wail"
snr_db = 12
```

`parse_script` validates everything and raises `ScriptError` naming the file, the segment and
the key; `build_script` turns a parsed script plus a seed into a `Scene`.
"""

from __future__ import annotations

import dataclasses
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import UserError
from engines.lab.scenes.audio import AMBIENCE_KINDS, Ambience
from engines.lab.scenes.compose import SegmentSpec, compose_scene
from engines.lab.scenes.mix import Reverb
from engines.lab.scenes.pools import check_split, random_ambience, random_backdrop, random_look
from engines.lab.scenes.scene import Scene
from engines.lab.scenes.segments import SEGMENT_KINDS
from engines.lab.scenes.sounds.noises import NOISE_KINDS
from engines.lab.scenes.video import BACKDROP_FAMILIES, SHAKE_MARGIN, Backdrop

_VEHICLE = frozenset({"motion", "lamps", "shape", "colour", "flash_hz", "stop_at"})
PARAMS: dict[str, frozenset[str]] = {
    "siren": frozenset({"siren", "snr_db"}),
    "horn": frozenset({"horn", "snr_db"}),
    "alarm": frozenset({"alarm", "snr_db"}),
    "speech": frozenset({"snr_db"}),
    "tonal": frozenset({"distractor", "snr_db"}),
    "noise": frozenset({"noise", "snr_db"}),
    "recording": frozenset({"snr_db"}),
    "impact": frozenset({"at", "snr_db"}),
    "vehicle": _VEHICLE,
    "emergency_vehicle": _VEHICLE | {"siren", "snr_db"},
    "lights": _VEHICLE,
    "hazard_lights": _VEHICLE,
    "approach": _VEHICLE,
    "collision": frozenset({"shape", "colour", "stop_at", "snr_db"}),
}
_TOP = frozenset({"name", "duration", "description", "look", "sound", "segment"})
_LOOK = frozenset({"backdrop", "shake", "noise", "gain"})
# Allowed ranges: shake stays inside the backdrop's margin, noise and gain keep a picture.
_RANGES = {"shake": (0.0, SHAKE_MARGIN), "noise": (0.0, 0.3), "gain": (0.05, 3.0),
           "level": (0.01, 1.0), "reverb": (0.0, 3.0)}  # fmt: skip
_SOUND = frozenset({"ambience", "reverb", "level"})


class ScriptError(UserError, ValueError):
    """A scene script that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Script:
    """A validated scene script."""

    name: str
    duration_s: float
    description: str
    look: dict[str, Any]
    sound: dict[str, Any]
    segments: tuple[SegmentSpec, ...]


def load_script(path: Path) -> Script:
    """Read and validate a script file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{path}: invalid TOML: {exc}") from None
    return parse_script(data, source=str(path))


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScriptError(f"{where} must be a number, not {value!r}")
    return float(value)


def _unknown(where: str, keys: set[str], allowed: frozenset[str]) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise ScriptError(
            f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def parse_script(data: dict[str, Any], *, source: str = "<script>") -> Script:
    """Validate a decoded script; every problem is a `ScriptError` naming its place."""
    _unknown(source, set(data), _TOP)
    if "duration" not in data:
        raise ScriptError(f"{source}: missing 'duration' (seconds)")
    duration = _number(f"{source}: duration", data["duration"])
    if duration <= 0:
        raise ScriptError(f"{source}: duration must be positive")
    look, sound = dict(data.get("look", {})), dict(data.get("sound", {}))
    _unknown(f"{source}: [look]", set(look), _LOOK)
    _unknown(f"{source}: [sound]", set(sound), _SOUND)
    for table, values in (("look", look), ("sound", sound)):
        for key, (lo, hi) in _RANGES.items():
            if key in values and not (key == "reverb" and isinstance(values[key], bool)):
                v = _number(f"{source}: [{table}] {key}", values[key])
                if not lo <= v <= hi:
                    raise ScriptError(f"{source}: [{table}] {key} must be in [{lo}, {hi}], not {v}")
    if look.get("backdrop", BACKDROP_FAMILIES[0]) not in BACKDROP_FAMILIES:
        raise ScriptError(
            f"{source}: [look] backdrop must be one of {', '.join(BACKDROP_FAMILIES)}"
        )
    if sound.get("ambience", "none") not in (*AMBIENCE_KINDS, *NOISE_KINDS, "none"):
        raise ScriptError(
            f"{source}: [sound] ambience must be one of "
            f"{', '.join((*AMBIENCE_KINDS, *NOISE_KINDS))}, none"
        )
    segments = tuple(
        _segment(f"{source}: segment {i + 1}", seg, duration)
        for i, seg in enumerate(data.get("segment", []))
    )
    name = str(data.get("name", Path(source).stem))
    return Script(name, duration, str(data.get("description", "")), look, sound, segments)


def _segment(where: str, seg: Any, duration: float) -> SegmentSpec:
    if not isinstance(seg, dict):
        raise ScriptError(f"{where}: must be a table ([[segment]])")
    for key in ("kind", "start", "end"):
        if key not in seg:
            raise ScriptError(f"{where}: missing {key!r}")
    kind = seg["kind"]
    if kind not in SEGMENT_KINDS:
        raise ScriptError(f"{where}: unknown kind {kind!r} (known: {', '.join(SEGMENT_KINDS)})")
    where = f"{where} ({kind})"
    start, end = _number(f"{where}: start", seg["start"]), _number(f"{where}: end", seg["end"])
    if not 0 <= start < end:
        raise ScriptError(f"{where}: needs 0 <= start < end, got start={start} end={end}")
    if start >= duration:
        raise ScriptError(f"{where}: starts at {start} s, after the scene ends ({duration} s)")
    params = {k: v for k, v in seg.items() if k not in ("kind", "start", "end")}
    _unknown(where, set(params), PARAMS[kind])
    return (kind, start, end, params)


def build_script(script: Script, *, seed: int = 0, split: str = "train") -> Scene:
    """The scene of `script` for `seed`; what it leaves open comes from the split's pools."""
    check_split(split)
    # the name too, so seed 0 of two scripts does not draw the same vehicles and sounds
    rng = np.random.default_rng([seed, 77, zlib.crc32(script.name.encode())])
    family = script.look.get("backdrop")
    backdrop = random_backdrop(rng, split)
    if family is not None:
        backdrop = Backdrop(family, backdrop.seed)
    look = random_look(rng, split, backdrop)
    given = {k: _number(f"[look] {k}", v) for k, v in script.look.items() if k != "backdrop"}
    look = dataclasses.replace(
        look,
        shake=given.get("shake", look.shake),
        noise=given.get("noise", look.noise),
        gain=given.get("gain", look.gain),
    )
    kind = script.sound.get("ambience")
    drawn = random_ambience(rng, split)
    ambience: Ambience | None = drawn
    if kind == "none":
        ambience = None
    elif kind is not None:
        ambience = Ambience(kind, drawn.seed)
    rt60 = script.sound.get("reverb", False)
    rt60 = 0.5 if rt60 is True else float(rt60 or 0.0)
    reverb = Reverb(rt60, 0.3, seed) if rt60 > 0 else None
    try:
        return compose_scene(
            script.name, script.duration_s, rng=rng, split=split, look=look, ambience=ambience,
            segments=script.segments, reverb=reverb, level=float(script.sound.get("level", 0.2)),
        )  # fmt: skip
    except ValueError as exc:
        raise ScriptError(f"{script.name}: {exc}") from None
