"""Named scenarios: the shipped scripts in `scripts/`, the `sync` test pattern, or a script file."""

from __future__ import annotations

from pathlib import Path

from engines.lab.scenes.base import SceneRenderer
from engines.lab.scenes.script import ScriptError, build_script, load_script

SCRIPTS_DIR = Path(__file__).with_name("scripts")
BUILTIN = ("sync",)


def list_scenarios() -> list[str]:
    """Every scenario name `load_scenario` accepts, sorted."""
    return sorted([*BUILTIN, *(p.stem for p in SCRIPTS_DIR.glob("*.toml"))])


def load_scenario(name_or_path: str | Path, seed: int = 0, split: str = "train") -> SceneRenderer:
    """A scenario by name (`list_scenarios()`) or a path to a `.toml` script.

    `split` picks the pools of backgrounds and voices (`heldout` for unseen ones); the `sync`
    test pattern ignores it. Unknown names and bad scripts raise `ScriptError` (one line).
    """
    text = str(name_or_path)
    if text == "sync":
        from engines.lab.scenes.sync import SyncScene

        return SyncScene(seed=seed)
    path = Path(text)
    if path.suffix != ".toml" or not path.exists():
        shipped = SCRIPTS_DIR / f"{text}.toml"
        if not shipped.exists():
            if path.suffix == ".toml":
                raise ScriptError(f"{text}: no such script file")
            known = ", ".join(list_scenarios())
            raise ScriptError(f"unknown scenario {text!r} (known: {known}; or a .toml file)")
        path = shipped
    return build_script(load_script(path), seed=seed, split=split)
