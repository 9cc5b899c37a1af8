"""`scenestream engines import`: tiny randomly initialised models of real architectures, built
from configurations here (no downloads), imported into engine directories that load and run
like any other; parity between the source framework and ONNX Runtime; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.config import EnginesConfig
from engines.runtime.interface import Scores
from engines.runtime.loader import load_engine
from engines.runtime.manifest import load_manifest
from engines.window import Window
from stream.cli import main
from tests.support.detector_fixtures import DetectorConfig, export_standard_detector

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUDIOSET = [
    "Speech", "Siren", "Ambulance (siren)", "Music", "Vehicle horn, car horn, honking",
    "Smash, crash", "Dog", "Fire alarm",
]  # fmt: skip


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def onnx_only(tmp: Path) -> EnginesConfig:
    return EnginesConfig.model_validate({"cache_dir": tmp / "cache", "backends": ["onnxruntime"]})


@pytest.mark.parametrize(
    ("layout", "end2end", "objectness"),
    [("yolo", False, False), ("end2end", True, False), ("yolo_obj", False, True)],
)
def test_detector_import_runs_and_matches_the_source(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    layout: str,
    end2end: bool,
    objectness: bool,
) -> None:
    source = tmp_path / "yolo.onnx"
    export_standard_detector(DetectorConfig(), source, end2end=end2end, objectness=objectness)
    out = tmp_path / "engines" / "yolo"
    code, text, _ = run_cli(
        ["engines", "import", str(source), "--out", str(out), "--json", str(tmp_path / "r.json")],
        capsys,
    )
    assert code == 0, text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "detector"
    assert report["classes"] == 80
    assert report["parity_max_abs_diff"] < 1e-5
    manifest = load_manifest(out)
    assert manifest.labels == ("person", "vehicle")
    assert manifest.doc.detections is not None
    assert manifest.doc.detections.layout == layout
    engine, _ = load_engine(manifest, onnx_only(tmp_path))
    video = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    [scores] = engine.infer([Window("cam", manifest.name, 0, 0.0, 0.2, video, None, None)])
    assert isinstance(scores, Scores)
    assert scores.detections
    assert {d.class_name for d in scores.detections} == {"car"}


def test_detector_import_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    code, _, err = run_cli(["engines", "import", str(tmp_path / "none.onnx"), "--out", out], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "no such ONNX file" in err
    source = tmp_path / "yolo.onnx"
    export_standard_detector(DetectorConfig(classes=("car", "person", "dog")), source)
    names = tmp_path / "names.txt"
    names.write_text("car\nperson\n")
    code, _, err = run_cli(
        ["engines", "import", str(source), "--out", out, "--names", str(names)], capsys
    )
    assert code == 2
    assert "unsupported detector output output0 [1, 7, 64] for 2 classes (do the class" in err
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"not a model")
    code, _, err = run_cli(["engines", "import", str(not_onnx), "--out", out], capsys)
    assert code == 2
    assert "not an ONNX model" in err


def _tiny_ast(root: Path) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    cfg = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_length=128, num_mel_bins=128, id2label=dict(enumerate(AUDIOSET)),
        label2id={n: i for i, n in enumerate(AUDIOSET)},
    )  # fmt: skip
    path = root / "ast-tiny"
    ASTForAudioClassification(cfg).eval().save_pretrained(path)
    ASTFeatureExtractor(max_length=128).save_pretrained(path)
    return path


def _tiny_wav2vec2(root: Path, labels: list[str]) -> Path:
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16,
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    )  # fmt: skip
    path = root / "w2v-tiny"
    Wav2Vec2ForSequenceClassification(cfg).eval().save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path)
    return path


def test_filter_banks_in_the_graph_match_the_feature_extractor(tmp_path: Path) -> None:
    import torch
    from transformers import ASTFeatureExtractor

    from engines.runtime.nets.hf_audio import KaldiFbank

    extractor = ASTFeatureExtractor(max_length=128)
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 700 * t), 0.05 * rng.standard_normal(16000)])
    audio = audio.astype(np.float32)
    want = extractor(list(audio), sampling_rate=16000, return_tensors="np")["input_values"]
    got = KaldiFbank(extractor, 16000)(torch.from_numpy(audio)).numpy()
    assert got.shape == want.shape == (2, 128, 128)
    np.testing.assert_allclose(got, want, atol=5e-4)


def test_ast_import_maps_audioset_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _tiny_ast(tmp_path)
    engines = tmp_path / "engines"
    report_path = tmp_path / "r.json"
    code, text, _ = run_cli(
        ["engines", "import", str(source), "--out", str(engines / "ast-tiny"),
         "--json", str(report_path)],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report["parity_max_abs_diff"] < 1e-4
    manifest = load_manifest(engines / "ast-tiny")
    assert manifest.labels == ("speech", "siren", "horn", "impact", "alarm")
    engine, _ = load_engine(manifest, onnx_only(tmp_path))
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    [scores] = engine.infer([Window("mic", "ast-tiny", 0, 0.0, 1.0, None, None, audio)])
    assert set(scores) == set(manifest.labels)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # `engines verify`: the checkpoint in torch against the ONNX graph, through the runtime.
    config = tmp_path / "c.toml"
    config.write_text(f'[engines]\nuser_dir = "{engines}"\ncache_dir = "{tmp_path / "cache"}"\n')
    code, text, _ = run_cli(
        ["engines", "verify", "ast-tiny", "--config", str(config),
         "--backend", "torch", "--backend", "onnxruntime"],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    assert text.count(" ok ") >= 4, text


def test_waveform_classifier_keeps_its_class_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _tiny_wav2vec2(tmp_path, ["yes", "no", "up"])
    code, text, _ = run_cli(
        ["engines", "import", str(source), "--out", str(tmp_path / "kw")], capsys
    )
    assert code == 0, text
    manifest = load_manifest(tmp_path / "kw")
    assert manifest.labels == ("yes", "no", "up")
    assert manifest.doc.outputs["logits"].activation == "softmax"
    assert "max |diff|" in text


def test_audio_import_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import BertConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = str(tmp_path / "out")
    bert = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(bert)
    cases = [
        (str(bert), "unsupported architecture 'bert'"),
        (str(tmp_path), "not a transformers checkpoint (no config.json)"),
        ("some-org/some-audio-model", "a hub id needs network access"),
    ]
    for source, message in cases:
        code, _, err = run_cli(["engines", "import", source, "--out", out], capsys)
        assert code == 2, source
        assert message in err, err
        assert err.strip().count("\n") == 0, err
