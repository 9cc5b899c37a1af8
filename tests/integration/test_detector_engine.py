"""Detector engines and label maps through the engine runtime: `[outputs.detections]` manifests
(validated against the ONNX graph), decoding in the engine, scores per mapped label, and a score
output mapped from AudioSet class names with the shipped map (overridable per engine)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engines.config import EnginesConfig
from engines.labelmaps import load_label_map, shipped
from engines.runtime.interface import ManifestError, Scores
from engines.runtime.loader import load_engine
from engines.runtime.manifest import load_manifest
from engines.window import Window
from tests.support.detector_fixtures import DetectorConfig, build_detector_engine, detector_manifest
from tests.support.engine_fixtures import to_toml

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_detector_engine(tmp_path_factory.mktemp("det"))


def cfg(tmp: Path) -> EnginesConfig:
    return EnginesConfig.model_validate({"cache_dir": tmp / "cache", "backends": ["onnxruntime"]})


def frames(n: int, seed: int = 0) -> list[Window]:
    rng = np.random.default_rng(seed)
    return [
        Window(f"cam{i}", "tiny-yolo", 0, 0.0, 0.25,
               rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8), None, None)
        for i in range(n)
    ]  # fmt: skip


def test_detector_runs_and_returns_boxes_with_scores(detector_dir: Path, tmp_path: Path) -> None:
    manifest = load_manifest(detector_dir)
    assert manifest.labels == ("person", "vehicle")  # coco.toml maps the 80 classes
    engine, _ = load_engine(manifest, cfg(tmp_path))
    out = engine.infer(frames(3))  # 3 windows: padded to the built batch size 4
    assert len(out) == 3
    for scores in out:
        assert isinstance(scores, Scores)
        assert 1 <= len(scores.detections) <= 8  # max_detections
        assert {d.label for d in scores.detections} == {"vehicle"}
        assert scores["vehicle"] == pytest.approx(max(d.score for d in scores.detections))
        for d in scores.detections:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= 1
            assert 0 <= y1 < y2 <= 1
    # A window's detections do not depend on what else is in its batch.
    alone = engine.infer(frames(3)[1:2])[0]
    assert isinstance(alone, Scores)
    batched = out[1]
    assert isinstance(batched, Scores)
    np.testing.assert_allclose(
        sorted(d.box for d in alone.detections),
        sorted(d.box for d in batched.detections),
        atol=1e-4,
    )


def write(tmp: Path, doc: dict[str, Any], model: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "model.onnx").write_bytes(model.read_bytes())
    (tmp / "engine.toml").write_text(to_toml(doc))
    return tmp


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"output": "nope"}, "no graph output 'nope'"),
        ({"layout": "boxes"}, "layout boxes names the graph outputs"),
        ({"label_map": "nosuchmap"}, "no such file, nor a shipped map"),
        ({"class_names": ["a", "a"]}, "class names must be unique"),
        (
            {"class_names": ["a", "b"], "keep_unmapped": True},
            r"2 classes but the head output0 is \(84, 64\)",
        ),
        ({"score_threshold": 2}, "score_threshold"),
        ({"label_overrides": {"car": "Not A Label"}}, "is not a scene label"),
    ],
)
def test_bad_detection_tables_fail_at_load(
    detector_dir: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    doc = copy.deepcopy(detector_manifest(DetectorConfig()))
    doc["outputs"]["detections"].update(change)
    path = write(tmp_path / "bad", doc, detector_dir / "model.onnx")
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_label_overrides_and_unmapped_classes(detector_dir: Path, tmp_path: Path) -> None:
    doc = copy.deepcopy(detector_manifest(DetectorConfig()))
    doc["outputs"]["detections"]["label_overrides"] = {"car": "car", "dog": "animal", "bus": ""}
    manifest = load_manifest(write(tmp_path / "o", doc, detector_dir / "model.onnx"))
    assert manifest.labels == ("person", "vehicle", "car", "animal")
    engine, _ = load_engine(manifest, cfg(tmp_path))
    scores = engine.infer(frames(1))[0]
    assert isinstance(scores, Scores)
    assert {d.label for d in scores.detections} == {"car"}


def test_shipped_label_maps() -> None:
    assert shipped() == ["audioset", "coco"]
    audioset = load_label_map("audioset")
    assert audioset["Ambulance (siren)"] == "siren"
    assert audioset["Air horn, truck horn"] == "horn"
    assert audioset["Smoke detector, smoke alarm"] == "alarm"
    assert audioset["Female speech, woman speaking"] == "speech"
    assert audioset["Smash, crash"] == "impact"
    assert set(audioset.values()) == {"siren", "horn", "alarm", "speech", "impact"}
    assert set(load_label_map("coco").values()) == {"vehicle", "person"}


AUDIOSET_CLASSES = [
    "Speech",
    "Siren",
    "Ambulance (siren)",
    "Music",
    "Vehicle horn, car horn, honking",
]


def test_audio_classifier_scores_are_mapped_to_scene_labels(tmp_path: Path) -> None:
    """A tagger whose logits are the mean sample value times fixed weights per class."""
    n = len(AUDIOSET_CLASSES)
    audio = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 1600])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [1, n], [1.0, 2.0, 3.0, 4.0, 5.0])
    nodes = [
        helper.make_node("ReduceMean", ["audio", "axes"], ["m"], keepdims=1),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "tagger", [audio], [logits], [axes, weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    root = tmp_path / "tagger"
    root.mkdir()
    onnx.save(model, str(root / "model.onnx"))
    doc = {
        "engine": {"name": "tagger", "version": "1", "model": "model.onnx"},
        "window": {"length_s": 0.1, "hop_s": 0.1},
        "inputs": {
            "audio": {
                "role": "audio",
                "dtype": "float32",
                "shape": ["B", 1600],
                "sample_rate": 16000,
            }
        },
        "outputs": {
            "logits": {
                "labels": AUDIOSET_CLASSES,
                "activation": "none",
                "label_map": "audioset",
                "label_overrides": {"Music": "music"},
            }
        },
        "thresholds": {"siren": {"on": 0.5}},
    }
    (root / "engine.toml").write_text(to_toml(doc))
    manifest = load_manifest(root)
    assert manifest.labels == ("speech", "siren", "music", "horn")
    engine, _ = load_engine(manifest, cfg(tmp_path))
    w = Window("s", "tagger", 0, 0.0, 0.1, None, None, np.full(1600, 0.1, dtype=np.float32))
    # siren is the best of "Siren" (0.2) and "Ambulance (siren)" (0.3).
    assert engine.infer([w])[0] == pytest.approx(
        {"speech": 0.1, "siren": 0.3, "music": 0.4, "horn": 0.5}, rel=1e-4
    )
    doc["thresholds"] = {"Siren": {"on": 0.5}}  # thresholds name scene labels, not classes
    (root / "engine.toml").write_text(to_toml(doc))
    with pytest.raises(ManifestError, match=r"thresholds\.Siren"):
        load_manifest(root)
