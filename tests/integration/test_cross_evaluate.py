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

from engines.lab.crossgen import CrossSet, make_scene, windows
from engines.lab.evaluation.cross import CARD_BEGIN, score_scenes, stream_edges
from engines.lab.evaluation.scoring import load_scorer
from engines.labels import LABELS
from stream.commands import evaluate as eval_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUNDLED = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "avfusion"


def _edge_set(spec: object) -> CrossSet:
    parts = []
    for i, kind in enumerate(("stream_start", "stream_stop")):
        scene = make_scene(3, i, spec, kind=kind)  # type: ignore[arg-type]
        parts.append((kind, list(windows(scene, spec, f"edge-{i}"))))  # type: ignore[arg-type]
    rows = [(k, i, r) for i, (k, rs) in enumerate(parts) for r in rs]
    return CrossSet(
        video=np.stack([r[0].video for _, _, r in rows]),  # type: ignore[misc]
        audio=np.stack([r[0].audio for _, _, r in rows]),  # type: ignore[misc]
        labels=np.stack([r[1] for _, _, r in rows]),
        care=np.stack([r[2] for _, _, r in rows]),
        ends=np.array([r[0].end for _, _, r in rows]),
        scene=np.array([i for _, i, _ in rows]),
        kinds=[k for k, _, _ in rows],
    )


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
        assert set(e["by_label"]) <= set(LABELS)


def test_evaluate_cross_writes_json_and_the_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = tmp_path / "avfusion"
    shutil.copytree(BUNDLED, engine)
    monkeypatch.chdir(tmp_path)  # the scene cache goes under the working directory
    args = argparse.Namespace(
        engine=str(engine),
        set_name="cross",
        backend="onnxruntime",
        json=tmp_path / "cross.json",
        markdown=None,
        windows=None,
        scenes=3,
        card=True,
    )
    assert eval_cli.run(args) == 0
    report = json.loads((tmp_path / "cross.json").read_text())["cross"]
    assert report["scenes"] == 3
    assert report["windows"] > 20
    assert set(report["labels"]) == set(LABELS)
    card = (engine / "MODEL_CARD.md").read_text()
    assert card.count(CARD_BEGIN) == 1
    assert "from 3 scenes" in card
    assert (tmp_path / ".cache" / "scenestream" / "crossgen").is_dir()
