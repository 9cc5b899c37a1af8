"""Evaluating an engine on a named set: window- and event-level metrics, the report, the card.

Used by `scenestream evaluate` and, after training, by `scenestream train`.

`--set` is a generated split (`heldout`: unseen backgrounds and voices; `val`; `train`) or a
directory of your clips with `labels.csv` (see `engines/lab/training/user_data.py`). The engine runs
through the service's runtime path on the chosen (or best available) backend. Prints the
markdown table; `--json` / `--markdown` write them.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engines.errors import UserError
from engines.lab.evaluation import events, report
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.lab.training.data import WindowSet, build_set, generator_fingerprint
from engines.lab.training.progress import ProgressBar
from engines.window import VideoSpec, WindowSpec

logger = logging.getLogger(__name__)

EVAL_CACHE = Path(".cache/scenestream/eval")
EVAL_WINDOWS = 2000
SET_SEEDS = {"heldout": 7, "val": 5, "train": 3}
SKIP_SCENES = frozenset({"sync"})  # a test pattern, no labels
SCENE_SEEDS = (0, 1, 2, 3, 4)


def generation_spec(spec: WindowSpec) -> WindowSpec:
    """The engine's windows, with a token video track for audio-only engines (the generator
    renders both; the engine only ever sees its own modalities)."""
    if spec.video is not None:
        return spec
    frames = max(1, round(spec.length_s * 8))
    video = VideoSpec(frames=frames, fps=frames / spec.length_s, height=16, width=16)
    return WindowSpec(spec.length_s, spec.hop_s, video=video, audio=spec.audio)


def load_eval_set(name: str, scorer: Scorer, n: int | None) -> WindowSet:
    """A generated split (cached, raw audio kept) or a user directory."""
    path = Path(name)
    if path.is_dir():
        from engines.lab.training.user_data import concat, load_user_dir

        return concat(list(load_user_dir(path, scorer.spec).values()))
    if name not in SET_SEEDS:
        raise UserError(f"--set {name!r}: not a directory and not one of {sorted(SET_SEEDS)}")
    size = n or EVAL_WINDOWS
    bar = ProgressBar(f"generate {name}", size)
    data = build_set(
        generation_spec(scorer.spec),
        size,
        seed=SET_SEEDS[name],
        split=name,
        cache_dir=EVAL_CACHE,
        workers=min(2, os.cpu_count() or 1),
        keep_audio=True,
        progress=bar,
    )
    bar.close(len(data))
    return data


def scripted_runs(
    scorer: Scorer,
    split: str,
    names: Iterable[str] | None = None,
    seeds: Sequence[int] = SCENE_SEEDS,
) -> list[events.SceneRun]:
    """Event-level runs over the shipped scene scripts (`names`, default all), one per seed,
    the i-th seed's window grid shifted by i/len(seeds) of a hop (skipped if the registry is
    missing)."""
    try:
        from engines.lab.scenes.registry import list_scenarios, load_scenario
    except ImportError:
        logger.warning("no scene registry: event-level evaluation skipped")
        return []
    available = set(list_scenarios() if names is None else names)
    takes_split = "split" in inspect.signature(load_scenario).parameters
    thresholds = events.scene_thresholds(scorer)
    runs = []
    for name in sorted(available - SKIP_SCENES):
        for i, seed in enumerate(seeds):
            kw: dict[str, Any] = {"split": split} if takes_split else {}
            scene = load_scenario(name, seed=seed, **kw)
            if math.isinf(scene.duration_s):
                continue
            # Runs spread the window grid over the hop (0, 1/5, ... 4/5 of it): onset latency is
            # then measured at the phases a live stream meets, not only on the scripts' grid.
            phase = scorer.spec.hop_s * i / len(seeds)
            runs.append(events.run_scene(scorer, scene, thresholds, phase_s=phase))
    return runs


def evaluate(
    scorer: Scorer, set_name: str, n: int | None, with_events: bool = True
) -> dict[str, Any]:
    """The full report (window level, then event level for generated sets)."""
    data = load_eval_set(set_name, scorer, n)
    result = report.evaluate_windows(scorer, data, set_name)
    result["generator"] = generator_fingerprint()
    av_engine = scorer.spec.video is not None and scorer.spec.audio is not None
    if with_events and av_engine and not Path(set_name).is_dir():
        runs = scripted_runs(scorer, "heldout" if set_name == "heldout" else "train")
        if runs:
            result["events"] = events.summarise(runs, scorer.spec.hop_s, scorer.engine.budget_s)
    return result


def render(result: dict[str, Any]) -> str:
    """Markdown of a full report."""
    text = report.markdown(result)
    if "events" in result:
        text += "\n" + events.markdown(result["events"])
    return text


def write(
    result: dict[str, Any], json_path: Path | None, md_path: Path | None, text: str | None = None
) -> None:
    """Write the report as JSON (NaN as null) and as markdown (`text`, else `render(result)`),
    where asked."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(finite(result), indent=2) + "\n")
    if md_path:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(render(result) if text is None else text)


def finite(x: Any) -> Any:
    """`x` with NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def evaluate_bundle(engine_dir: Path, seed: int = 0, n: int | None = None) -> dict[str, Any]:
    """After training: evaluate the engine directory on held-out data, write `metrics.json`
    and `MODEL_CARD.md` there."""
    from engines.lab.evaluation.card import write_card

    scorer = load_scorer(engine_dir, backend="onnxruntime")
    try:
        result = evaluate(scorer, "heldout", n)
    finally:
        scorer.close()
    result["train_seed"] = seed
    write(result, engine_dir / "metrics.json", None)
    write_card(engine_dir, result, render(result))
    print(render(result))
    return result
