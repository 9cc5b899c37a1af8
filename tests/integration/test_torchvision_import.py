"""`scenestream engines import torchvision:ARCH`: a tiny randomly initialised SSDlite (3
classes, built here, no download) saved as a local state dict, imported, checked torch against
ONNX Runtime (`engines verify`), and run through the engine runtime; one-line errors for an
unknown architecture, a missing or unfitting weights file, and no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engines.config import EnginesConfig
from engines.runtime.interface import Scores
from engines.runtime.loader import load_engine
from engines.runtime.manifest import load_manifest
from engines.window import Window
from stream.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ARCH = "ssdlite320_mobilenet_v3_large"
NAMES = ("__background__", "person", "car")


def _torchvision() -> Any:
    from engines.runtime.nets import tv_detection

    try:
        return tv_detection.load_torchvision()
    except ImportError as exc:
        pytest.skip(str(exc))


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def tiny_weights(path: Path) -> Path:
    """A random SSDlite's state dict (batch norm set on synthetic frames, as `--weights none`)."""
    import torch

    from engines.lab.importers.tv_detector import _calibrate
    from engines.runtime.nets.tv_detection import build_model

    _torchvision()
    torch.manual_seed(0)
    model = build_model(ARCH, len(NAMES))
    _calibrate(torch, model, 320, 320)
    torch.save(model.state_dict(), path)
    return path


def test_torchvision_detector_from_a_local_state_dict_verifies_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tiny_weights(tmp_path / "ssd.pt")
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{n}\n" for n in NAMES))
    engines = tmp_path / "engines"
    code, text, _ = run_cli(
        ["engines", "import", f"torchvision:{ARCH}", "--weights", str(weights), "--names",
         str(names), "--name", "ssd", "--out", str(engines / "ssd"), "--json",
         str(tmp_path / "r.json")],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parity_max_abs_diff"] < 1e-4, report
    assert report["details"]["parity_detections"] > 0  # the check compared real detections
    manifest = load_manifest(engines / "ssd")
    assert manifest.labels == ("person", "vehicle")
    det = manifest.doc.detections
    assert det is not None
    assert (det.layout, det.box_format, det.normalized) == ("boxes", "xyxy", True)
    assert det.class_names == NAMES
    config = EnginesConfig.model_validate(
        {"cache_dir": tmp_path / "c", "backends": ["onnxruntime"]}
    )
    engine, _ = load_engine(manifest, config)
    from engines.lab.importers.tv_detector import test_frame

    video = test_frame(320, 320)[0]
    [scores] = engine.infer([Window("cam", "ssd", 0, 0.0, 0.25, video, None, None)])
    assert isinstance(scores, Scores)
    assert scores.detections
    for d in scores.detections:
        assert d.class_name in ("person", "car")
        assert all(0.0 <= v <= 1.0 for v in d.box)
        assert d.box[0] <= d.box[2]
    # `engines verify`: torchvision in torch against the ONNX graph, through the runtime.
    toml = tmp_path / "c.toml"
    toml.write_text(f'[engines]\nuser_dir = "{engines}"\ncache_dir = "{tmp_path / "c"}"\n')
    code, text, _ = run_cli(
        ["engines", "verify", "ssd", "--config", str(toml), "--backend", "torch",
         "--backend", "onnxruntime"],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    assert text.count(" ok ") >= 2, text


def test_torchvision_import_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    _torchvision()
    out = str(tmp_path / "out")

    def fails(*args: str) -> str:
        code, _, err = run_cli(["engines", "import", *args, "--out", out], capsys)
        assert code == 2
        assert err.strip().count("\n") == 0, err
        return err

    assert "unsupported torchvision detector 'maskrcnn_nope'" in fails("torchvision:maskrcnn_nope")
    assert "engine name 'My_SSD': lowercase" in fails(f"torchvision:{ARCH}", "--name", "My_SSD")
    missing = tmp_path / "missing.pt"
    assert f"{missing}: no such weights file" in fails(
        f"torchvision:{ARCH}", "--weights", str(missing)
    )
    wrong = tmp_path / "wrong.pt"
    torch.save({"head.weight": torch.zeros(2, 2)}, wrong)
    err = fails(f"torchvision:{ARCH}", "--weights", str(wrong), "--num-classes", "3")
    assert "the weights do not fit ssdlite320_mobilenet_v3_large with 3 classes" in err
    # No network: an empty torch hub cache and a proxy that refuses every connection.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    err = fails(f"torchvision:{ARCH}")
    assert "cannot download its weights from https://download.pytorch.org/" in err
    assert "no network?" in err
    assert not (tmp_path / "out" / "model.onnx").exists()
