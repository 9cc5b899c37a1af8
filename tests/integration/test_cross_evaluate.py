"""`scenestream evaluate --set cross --card` end to end on the bundled engine: cross scenes
scored through the runtime, stream edges through the service's event tracker, the report
written to JSON and into the model card between its markers."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engines.errors import UserError
from engines.lab.crossgen import CrossSet, make_scene, windows
from engines.lab.evaluation.cross import (
    score_scenes,
    still,
    still_picture,
    stream_edges,
)
from engines.lab.evaluation.cross_markdown import CARD_BEGIN
from engines.lab.evaluation.scoring import load_scorer
from engines.labels import LABELS
from stream.commands import evaluate as eval_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUNDLED = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "avfusion"


def _scene_set(spec: object, kinds: tuple[str, ...]) -> CrossSet:
    parts, cut_of = [], []
    for i, kind in enumerate(kinds):
        scene = make_scene(3, i, spec, kind=kind)  # type: ignore[arg-type]
        parts.append((kind, list(windows(scene, spec, f"scene-{i}"))))  # type: ignore[arg-type]
        cut_of.append(float(scene.params.get("edge_s", np.nan)))
    rows = [(k, i, r) for i, (k, rs) in enumerate(parts) for r in rs]
    return CrossSet(
        video=np.stack([r[0].video for _, _, r in rows]),  # type: ignore[misc]
        audio=np.stack([r[0].audio for _, _, r in rows]),  # type: ignore[misc]
        labels=np.stack([r[1] for _, _, r in rows]),
        care=np.stack([r[2] for _, _, r in rows]),
        ends=np.array([r[0].end for _, _, r in rows]),
        scene=np.array([i for _, i, _ in rows]),
        cuts=np.array([cut_of[i] for _, i, _ in rows]),
        kinds=[k for k, _, _ in rows],
    )


def _edge_set(spec: object) -> CrossSet:
    return _scene_set(spec, ("stream_start", "stream_stop"))


def _evaluate_args(**given: object) -> argparse.Namespace:
    """`scenestream evaluate` arguments: the bundled engine on a few cross scenes unless given."""
    args = {
        "engine": "avfusion",
        "set_name": "cross",
        "backend": "onnxruntime",
        "json": None,
        "markdown": None,
        "windows": None,
        "scenes": 2,
        "card": False,
        "compare": None,
        "cross_seed": None,
    }
    return argparse.Namespace(**{**args, **given})


def test_stream_edges_count_events_on_scenes_with_no_label() -> None:
    scorer = load_scorer(BUNDLED, backend="onnxruntime")
    try:
        data = _edge_set(scorer.spec)
        assert data.labels.sum() == 0  # nothing happens at a stream edge
        scores = score_scenes(scorer, data, list(range(len(scorer.labels))))
        edges = stream_edges(scorer, data, scores)
    finally:
        scorer.close()
    assert set(edges) == {"stream_start", "stream_stop"}
    for e in edges.values():
        assert e["scenes"] == 1
        assert e["false_events"] == sum(e["by_label"].values())
        assert e["scenes_with_false_event"] == int(e["false_events"] > 0)
        assert 0 <= e["at_cut"] <= e["false_events"]
        assert set(e["by_label"]) <= set(LABELS)


def test_stream_edge_events_are_told_apart_by_whether_their_window_spans_the_cut() -> None:
    """Scores made by hand: in the start scene, speech fires on the first window (no picture
    yet, before the cut) and horn on the first window that sees the picture start; in the stop
    scene, alarm fires on a window long after the cut."""
    scorer = load_scorer(BUNDLED, backend="onnxruntime")
    try:
        data = _edge_set(scorer.spec)
        length = scorer.spec.length_s
        scores = np.zeros((len(data), len(scorer.labels)), np.float32)
        start = np.flatnonzero(data.scene == 0)
        assert data.ends[start[0]] < data.cuts[start[0]]
        scores[start[0], scorer.labels.index("speech")] = 1.0
        spans = start[
            (data.ends[start] >= data.cuts[start]) & (data.ends[start] <= data.cuts[start] + length)
        ]
        scores[spans[0], scorer.labels.index("horn")] = 1.0
        stop = np.flatnonzero(data.scene == 1)
        scores[stop[-1], scorer.labels.index("alarm")] = 1.0
        assert data.ends[stop[-1]] > data.cuts[stop[-1]] + length
        edges = stream_edges(scorer, data, scores)
    finally:
        scorer.close()
    assert edges["stream_start"]["by_label"] == {"horn": 1, "speech": 1}
    assert edges["stream_start"]["at_cut"] == 1
    assert edges["stream_stop"]["by_label"] == {"alarm": 1}
    assert edges["stream_stop"]["at_cut"] == 0


def test_evaluate_cross_writes_json_and_the_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = tmp_path / "avfusion"
    shutil.copytree(BUNDLED, engine)
    monkeypatch.chdir(tmp_path)  # the scene cache goes under the working directory
    args = _evaluate_args(engine=str(engine), json=tmp_path / "cross.json", scenes=3, card=True)
    assert eval_cli.run(args) == 0
    report = json.loads((tmp_path / "cross.json").read_text())["cross"]
    assert report["scenes"] == 3
    assert report["windows"] > 20
    assert set(report["labels"]) == set(LABELS)
    card = (engine / "MODEL_CARD.md").read_text()
    assert card.count(CARD_BEGIN) == 1
    assert "from 3 scenes" in card
    assert (tmp_path / ".cache" / "scenestream" / "crossgen").is_dir()
    assert "Still picture" in card
    assert "| flashing_lights |" in card


def test_evaluate_compare_reports_intervals_and_the_paired_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = tmp_path / "candidate"
    shutil.copytree(BUNDLED, engine)
    monkeypatch.chdir(tmp_path)
    args = _evaluate_args(
        engine=str(engine),
        json=tmp_path / "cross.json",
        markdown=tmp_path / "cross.md",
        scenes=4,
        compare="avfusion",
    )
    assert eval_cli.run(args) == 0
    report = json.loads((tmp_path / "cross.json").read_text())["cross"]
    interval = report["interval"]
    assert (interval["unit"], interval["units"]) == ("scene", 4)
    assert interval["macro_f1"][0] <= report["macro_f1"] <= interval["macro_f1"][1]
    # the same weights under another name: no difference, on every draw
    assert report["compare"]["macro_f1"] == [0.0, 0.0, 0.0]
    assert set(report["compare"]["labels"]) == set(LABELS)
    assert "Difference to `avfusion`" in (tmp_path / "cross.md").read_text()


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"set_name": "heldout", "compare": "avfusion"}, "--set in\\|cross\\|all"),
        ({"card": True, "compare": "avfusion"}, "leave out --compare"),
        ({"compare": "silero-vad"}, "labels"),
        ({"compare": "no-such-engine"}, "no-such-engine"),
        ({"set_name": "heldout", "cross_seed": 12}, "--set cross\\|all"),
        ({"set_name": "in", "cross_seed": 12}, "--set cross\\|all"),
        ({"set_name": "all", "card": True, "cross_seed": 12}, "leave out --cross-seed"),
        ({"cross_seed": -1}, "0 or more"),
        ({"cross_seed": [12, 13, 12]}, "each seed once"),
        ({"set_name": "all", "card": True, "cross_seed": [11, 12]}, "leave out --cross-seed"),
    ],
)
def test_evaluate_refuses_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: dict[str, object], reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=reason):
        eval_cli.run(_evaluate_args(**given))
    assert not (tmp_path / ".cache").exists()  # nothing generated


def test_evaluate_cross_seed_scores_another_set_of_scenes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    reports = {}
    for seed in (None, 12):
        args = _evaluate_args(json=tmp_path / f"cross-{seed}.json", cross_seed=seed)
        assert eval_cli.run(args) == 0
        reports[seed] = json.loads(args.json.read_text())["cross"]
    assert (reports[None]["seed"], reports[12]["seed"]) == (11, 12)
    # Both seeds pooled: one set of their four scenes (each a bootstrap unit), the same windows.
    args = _evaluate_args(
        json=tmp_path / "pooled.json", markdown=tmp_path / "pooled.md", cross_seed=[11, 12]
    )
    assert eval_cli.run(args) == 0
    pooled = json.loads(args.json.read_text())["cross"]
    assert (pooled["seeds"], pooled["scenes"], "seed" in pooled) == ([11, 12], 4, False)
    assert pooled["windows"] == reports[None]["windows"] + reports[12]["windows"]
    assert pooled["interval"]["units"] == 4
    assert "from 4 scenes (seeds 11, 12," in args.markdown.read_text()
    cached = {p.name for p in (tmp_path / ".cache" / "scenestream" / "crossgen").rglob("*.npz")}
    assert cached == {"s11-0.npz", "s11-1.npz", "s12-0.npz", "s12-1.npz"}
    folder = next((tmp_path / ".cache" / "scenestream" / "crossgen").iterdir())
    with np.load(folder / "s11-0.npz") as a, np.load(folder / "s12-0.npz") as b:
        assert a["audio"].shape != b["audio"].shape or not np.array_equal(a["audio"], b["audio"])


def test_a_frozen_window_repeats_its_last_frame() -> None:
    video = np.random.default_rng(0).integers(0, 256, (3, 8, 4, 4, 3), dtype=np.uint8)
    frozen = still(video)
    assert frozen.shape == video.shape
    assert (frozen == video[:, -1:]).all()


def test_still_picture_scores_the_picture_labels_on_frozen_windows() -> None:
    """Lights and an emergency vehicle, live and with the picture frozen: the shipped model
    fires on the live flashing and (mostly) not on the frozen picture."""
    scorer = load_scorer(BUNDLED, backend="onnxruntime")
    try:
        data = _scene_set(scorer.spec, ("lights", "emergency"))
        scores = score_scenes(scorer, data, list(range(len(scorer.labels))))
        result = still_picture(scorer, data, scores)
    finally:
        scorer.close()
    assert set(result) == {
        "flashing_lights",
        "approaching_object",
        "emergency_vehicle",
        "collision",
    }
    lights = result["flashing_lights"]
    on = (data.labels[:, LABELS.index("flashing_lights")] > 0.5) & (
        data.care[:, LABELS.index("flashing_lights")] > 0.5
    )
    assert lights["positives"] == int(on.sum()) > 0
    for v in result.values():
        for key in ("live_positives_fire", "frozen_positives_fire", "frozen_all_fire"):
            assert np.isnan(v[key]) or 0.0 <= v[key] <= 1.0
    assert lights["live_positives_fire"] > 0.5 > lights["frozen_positives_fire"]
