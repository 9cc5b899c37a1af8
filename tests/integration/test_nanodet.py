"""NanoDet-g (a COCO detector) as the bundled `nanodet` engine, on ONNX Runtime CPU, on real
photos that scikit-image ships: it finds the astronaut as a `person` and the motorcycle as a
`vehicle` with boxes that match hand-drawn ones, finds nothing on textures, and a manifest whose
`dfl` head does not fit the graph fails at load."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from engines.config import EnginesConfig
from engines.detect.boxes import iou_matrix
from engines.runtime.engine import Engine
from engines.runtime.interface import ManifestError, Scores
from engines.runtime.loader import discover, load_engine
from engines.runtime.manifest import load_manifest
from engines.window import Window

pytestmark = pytest.mark.integration

ENGINE_DIR = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "nanodet"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if not (ENGINE_DIR / "model.onnx").exists():
        pytest.skip("engines/bundled/nanodet/model.onnx is absent (make nanodet builds it)")
    pytest.importorskip("skimage")
    cfg = EnginesConfig.model_validate(
        {"cache_dir": tmp_path_factory.mktemp("cache"), "backends": ["onnxruntime"]}
    )
    loaded, report = load_engine(discover(None).manifests["nanodet"], cfg)
    assert report.backend == "onnxruntime"
    return loaded


def run(engine: Engine, name: str) -> Scores:
    from engines.lab.photo_set import load_photo
    from engines.lab.photos import resize_like_service

    video = engine.spec.video
    assert video is not None
    frame = resize_like_service(load_photo(name), video.height, video.width)
    out = engine.infer([Window("cam", "nanodet", 0, 0.0, 0.5, frame[None], None, None)])[0]
    assert isinstance(out, Scores)
    return out


def test_finds_the_astronaut_as_a_person(engine: Engine) -> None:
    from engines.lab.photo_set import PHOTOS

    assert engine.manifest.labels == ("person", "vehicle")
    scores = run(engine, "astronaut")
    people = [d for d in scores.detections if d.label == "person"]
    assert len(people) == 1  # NMS left one box of her
    (her,) = people
    assert her.class_name == "person"
    assert her.score >= 0.5
    assert scores["person"] == pytest.approx(her.score)
    assert scores["vehicle"] == 0.0
    reference = next(p.box for p in PHOTOS if p.name == "astronaut")  # drawn by hand
    assert reference is not None
    assert iou_matrix([her.box], [reference])[0, 0] >= 0.8


def test_finds_the_motorcycle_as_a_vehicle(engine: Engine) -> None:
    scores = run(engine, "motorcycle_left")
    bikes = [d for d in scores.detections if d.class_name == "motorcycle"]
    assert bikes
    assert bikes[0].label == "vehicle"
    assert scores["vehicle"] >= 0.5
    assert scores["person"] == 0.0
    x1, y1, x2, y2 = bikes[0].box
    assert iou_matrix([bikes[0].box], [(0.16, 0.20, 0.93, 0.93)])[0, 0] >= 0.7
    assert x1 < 0.3 < 0.8 < x2  # the bike spans the frame's width ...
    assert y1 < 0.4 < 0.8 < y2  # ... and most of its height


@pytest.mark.parametrize("name", ["brick", "grass", "page"])
def test_finds_nothing_on_textures(engine: Engine, name: str) -> None:
    scores = run(engine, name)
    assert scores.detections == ()
    assert dict(scores) == {"person": 0.0, "vehicle": 0.0}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("reg_max = 10", "reg_max = 7", r"dfl head .* is \[B, 3549, 112\]; output has 124"),
        ("strides = [8, 16, 32]", "strides = [8, 16]", r"is \[B, 3380, 124\]; output has 3549"),
        ("strides = [8, 16, 32]\n", "", "layout dfl needs the head's strides"),
        ("normalized = false", "normalized = true", "layout dfl yields xyxy pixel boxes"),
    ],
)
def test_a_dfl_table_that_does_not_fit_the_graph_fails_at_load(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    if not (ENGINE_DIR / "model.onnx").exists():
        pytest.skip("engines/bundled/nanodet/model.onnx is absent (make nanodet builds it)")
    text = (ENGINE_DIR / "engine.toml").read_text()
    assert old in text
    (tmp_path / "model.onnx").symlink_to(ENGINE_DIR / "model.onnx")
    shutil.copy(ENGINE_DIR / "labels.txt", tmp_path / "labels.txt")
    (tmp_path / "engine.toml").write_text(text.replace(old, new))
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(tmp_path)
    assert re.search(r"engine\.toml: outputs\.detections", str(err.value))


def test_detections_do_not_depend_on_the_frame_s_neighbours(engine: Engine) -> None:
    """Batch size 1: every window runs alone; the same frame twice gives the same boxes."""
    assert engine.manifest.batch_sizes == (1,)
    a, b = run(engine, "camera"), run(engine, "camera")
    np.testing.assert_allclose([d.box for d in a.detections], [d.box for d in b.detections])
