"""`scenestream evaluate --rules` end to end on the bundled engines: two held-out scenes, each
engine on its own window grid through the runtime, the rules over their outputs next to
avfusion's learned labels, written to JSON and markdown."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engines.errors import UserError
from stream.commands import evaluate as eval_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULE_LABELS = ["approaching_object", "collision", "emergency_vehicle"]


def _args(tmp_path: Path, **given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "engine": ["yamnet", "nanodet"],
        "rules": True,
        "also": ["avfusion,yamnet"],
        "set_name": "in",
        "backend": "onnxruntime",
        "json": tmp_path / "rules.json",
        "markdown": tmp_path / "rules.md",
        "windows": None,
        "scenes": 2,
        "card": False,
    }
    values.update(given)
    return argparse.Namespace(**values)


def test_evaluate_rules_scores_each_configuration_on_the_same_windows(tmp_path: Path) -> None:
    assert eval_cli.run(_args(tmp_path)) == 0
    report = json.loads((tmp_path / "rules.json").read_text())
    assert report["set"] == "in"
    assert report["scenes"] == 2
    # Two 5 s held-out scenes: avfusion's windows end every 0.5 s from 1 s, 9 per scene.
    assert report["windows"] == 18
    assert sum(report["windows_per_kind"].values()) == 18
    assert report["labels"] == RULE_LABELS
    assert set(report["learned"]) == set(RULE_LABELS)
    assert [c["inputs"] for c in report["configs"]] == [
        ["yamnet", "nanodet"],
        ["avfusion", "yamnet"],
    ]
    for config in report["configs"]:
        for label in RULE_LABELS:
            rule, learned = config["labels"][label]["rule"], report["learned"][label]
            assert rule["support"] == learned["support"]  # same windows, same truth
            scored = rule["tp"] + rule["fp"] + rule["fn"] + rule["tn"]
            assert scored == learned["tp"] + learned["fp"] + learned["fn"] + learned["tn"]
            assert scored <= 18
    inputs = report["inputs"]
    assert inputs["nanodet"]["windows"] == 20  # 0.5 s windows every 0.5 s over 5 s
    assert inputs["yamnet"]["windows"] == 18  # 0.975 s windows every 0.4875 s
    assert set(inputs["yamnet"]["scores_ge_threshold"]) >= {"siren", "impact"}
    assert inputs["avfusion"]["windows_with_tracks"] == 0  # no detector, no tracks
    text = (tmp_path / "rules.md").read_text()
    assert "| emergency_vehicle | rule over yamnet + nanodet |" in text
    assert "| collision | `avfusion` learned |" in text


def test_evaluate_rules_refuses_other_sets_and_unknown_engines(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="in or cross"):
        eval_cli.run(_args(tmp_path, set_name="heldout"))
    with pytest.raises(UserError, match="not found"):
        eval_cli.run(_args(tmp_path, engine=["no-such-engine"], also=[]))
    with pytest.raises(UserError, match="--engine once"):
        eval_cli.run(_args(tmp_path, rules=False, engine=["yamnet", "nanodet"]))
