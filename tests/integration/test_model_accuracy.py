"""Accuracy regression of the shipped avfusion engine on a CI-sized held-out set.

Runs the bundled engine through the service's runtime path (ONNX Runtime) on a few hundred
held-out windows (unseen backgrounds and voices, seeds not used in training) and checks them
against regression floors, then runs held-out renderings of scripted scenes window by window
through the service's event tracker and checks the events and their onset latency (on the
scene's clock, so not a timing test either).

The floors are not the targets. Since the training generator gained its sound and sight
variety (issue 16), the held-out split is much harder (the release before that variety scores
0.64 macro-F1 on the first varied generator; the shipped model 0.88 on the model card's 2,000
windows of today's and 0.91 on these 320), and the shipped model misses some of the targets
(`TARGETS`: macro-F1 0.95, fused F1 0.90, onset p95 within one hop plus the budget); the model
card and the README report them as measured, pass or fail. The floors sit a little below what the
shipped model measures here, so a retrained model that is worse fails CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.lab.evaluation import events, suite
from engines.lab.evaluation.report import TARGETS, evaluate_windows
from engines.lab.evaluation.scoring import Scorer, load_scorer
from engines.lab.training.data import build_set

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUNDLED = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "avfusion"
# Measured on this set with the shipped model: macro-F1 0.907; emergency_vehicle / collision
# F1 0.962 / 0.952, distractor false positives 1.0 % / 1.0 %; onset p95 0.88 s (target 0.7; the
# model card's 40 scripted scenes 0.60 s): `siren` reaches its 0.65 threshold a window later
# than the previous release its 0.5 here (p95 0.90 s against 0.69 s on these 25 runs).
FLOORS = {
    "macro_f1_min": 0.88,
    "fused_f1_min": TARGETS["fused_f1_min"],
    "fused_distractor_fpr_max": 0.03,
    "fused_f1_ablated_max": TARGETS["fused_f1_ablated_max"],
    "onset_latency_p95_max_s": 0.95,
}
WINDOWS = 320
SEED = 11  # held-out seed of its own (training uses 0/1, the model card's set 7)


# Scripts with every audio label, the lights and both fused labels; each at five phases of the
# window grid, as a live stream meets an onset anywhere in its hop.
SCRIPTS = ("emergency", "conversation", "collision", "radio-siren", "separated")
PHASES = 5


@pytest.fixture(scope="module")
def scorer() -> Iterator[Scorer]:
    if not (BUNDLED / "model.onnx").exists():
        pytest.skip("no bundled avfusion model")
    scorer = load_scorer(BUNDLED, backend="onnxruntime")
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def report(scorer: Scorer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    data = build_set(
        scorer.spec,
        WINDOWS,
        seed=SEED,
        split="heldout",
        cache_dir=tmp_path_factory.mktemp("heldout"),
        workers=1,
        keep_audio=True,
    )
    return evaluate_windows(scorer, data, "heldout-ci")


@pytest.fixture(scope="module")
def scripted_runs(scorer: Scorer) -> list[events.SceneRun]:
    return suite.scripted_runs(scorer, "heldout", names=SCRIPTS, seeds=range(SEED, SEED + PHASES))


@pytest.fixture(scope="module")
def scripted(scorer: Scorer, scripted_runs: list[events.SceneRun]) -> dict[str, Any]:
    return events.summarise(scripted_runs, scorer.spec.hop_s, scorer.engine.budget_s)


def test_macro_f1(report: dict[str, object]) -> None:
    assert report["macro_f1"] >= FLOORS["macro_f1_min"], report["labels"]  # type: ignore[operator]


@pytest.mark.parametrize("label", ["emergency_vehicle", "collision"])
def test_fused_labels(report: dict[str, object], label: str) -> None:
    labels = report["labels"]
    assert isinstance(labels, dict)
    assert labels[label]["f1"] >= FLOORS["fused_f1_min"], labels[label]
    pooled = report["distractors"]["pooled"][label]  # type: ignore[index]
    assert pooled["negatives"] > 20, "the CI set holds enough distractor windows"
    assert pooled["fpr"] <= FLOORS["fused_distractor_fpr_max"], pooled


@pytest.mark.parametrize("label", ["emergency_vehicle", "collision"])
@pytest.mark.parametrize("cut", ["audio_silenced", "video_blanked"])
def test_fused_labels_need_both_modalities(report: dict[str, object], label: str, cut: str) -> None:
    ablated = report["ablation"][cut]["labels"][label]["f1"]  # type: ignore[index]
    assert ablated < FLOORS["fused_f1_ablated_max"], (cut, label, ablated)


def _found(runs: list[events.SceneRun], script: str, label: str) -> int:
    """Runs of `script` in which `label` was detected at all."""
    return sum(any(d.label == label for d in r.detected) for r in runs if r.name == script)


def test_scripted_events_are_found_without_false_fused_events(
    scripted: dict[str, Any], scripted_runs: list[events.SceneRun]
) -> None:
    labels = scripted["labels"]
    # The distractor scripts never raise a fused label: a siren with no lights, lights and
    # siren seconds apart, and (in `collision`) an impact with nothing moving.
    for script in ("radio-siren", "separated"):
        assert _found(scripted_runs, script, "emergency_vehicle") == 0, script
    assert labels["collision"]["tp"] == PHASES, labels["collision"]
    assert labels["collision"]["fp"] == 0, labels["collision"]
    # The emergency vehicle approaches from far away with small lamps: on time (within the
    # 1 s collar) in at least 4 of the 5 grid phases, and seen in every one.
    assert labels["emergency_vehicle"]["tp"] >= PHASES - 1, labels["emergency_vehicle"]
    assert _found(scripted_runs, "emergency", "emergency_vehicle") == PHASES
    for label in ("speech", "siren"):
        assert labels[label]["fn"] == 0, (label, labels[label])
    assert labels["flashing_lights"]["fn"] <= 1, labels["flashing_lights"]


def test_onset_latency_near_one_hop_plus_the_budget(scripted: dict[str, Any]) -> None:
    """The event target: the window that starts an event ends at most one hop plus the engine's
    budget after the true onset (p95 over every event of the scripts). The shipped model
    measures 0.87 s on these five seeds (siren 0.90, `emergency_vehicle` 0.84: few events,
    late grid phases) and 0.60 s on the card's 40 scripted scenes, against the 0.7 s target:
    the floor guards against worse, the card reports the measure."""
    assert scripted["latency_target_s"] == pytest.approx(0.7)
    per_label = {k: v["onset_latency_p95_s"] for k, v in scripted["labels"].items()}
    assert scripted["onset_latency_p95_s"] <= FLOORS["onset_latency_p95_max_s"], per_label
