"""Engine manifests: valid ones resolve; every user mistake fails at load, naming file and field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto

from engines.runtime.interface import ManifestError
from engines.runtime.loader import BUNDLED_DIR
from engines.runtime.manifest import load_manifest
from tests.support.engine_fixtures import BASE, tiny_onnx, to_toml

pytestmark = pytest.mark.unit


def write_engine(tmp_path: Path, doc: dict[str, Any], **onnx_args: Any) -> Path:
    tiny_onnx(tmp_path / "model.onnx", **onnx_args)
    (tmp_path / "engine.toml").write_text(to_toml(doc))
    return tmp_path / "engine.toml"


def test_valid_manifest_resolves_window_spec_and_labels(tmp_path: Path) -> None:
    m = load_manifest(write_engine(tmp_path, BASE))
    assert m.name == "tiny"
    assert m.labels == ("a", "b")
    assert m.batch_sizes == (1, 2, 4)  # sorted
    assert m.model_path == (tmp_path / "model.onnx").resolve()
    assert not m.stateful
    spec = m.window_spec()
    assert (spec.length_s, spec.hop_s) == (0.5, 0.25)
    assert spec.labels_at == "window"  # by default scores describe the whole window
    assert spec.event_time(10.0, 10.5) == 10.25
    assert spec.video is not None
    assert spec.audio is not None
    assert (spec.video.frames, spec.video.height, spec.video.width) == (4, 8, 8)
    assert (spec.audio.samples, spec.audio.sample_rate) == (1600, 3200)
    assert m.doc.thresholds["b"].on == 0.7


def test_an_engine_can_say_its_scores_describe_the_window_end(tmp_path: Path) -> None:
    spec = load_manifest(
        write_engine(tmp_path, _set(BASE, "window.labels_at", "end"))
    ).window_spec()
    assert spec.labels_at == "end"
    assert spec.event_time(10.0, 10.5) == 10.5
    bundled = load_manifest(Path(__file__).parents[2] / "engines" / "bundled" / "avfusion")
    assert bundled.window_spec().labels_at == "end"


def test_directory_is_accepted_in_place_of_the_file(tmp_path: Path) -> None:
    write_engine(tmp_path, BASE)
    assert load_manifest(tmp_path).name == "tiny"


def test_bundled_silero_points_into_the_installed_package() -> None:
    m = load_manifest(BUNDLED_DIR / "silero-vad")
    assert m.model_path is not None
    assert "site-packages" in str(m.model_path)
    assert m.model_path.name == "silero_vad_16k_op15.onnx"
    assert m.stateful
    assert m.doc.streaming is not None
    assert m.labels == ("speech",)
    spec = m.window_spec()
    assert spec.video is None
    assert spec.audio is not None
    assert spec.audio.samples == 16 * 512  # 0.512 s at 16 kHz = 16 chunks
    assert m.doc.inputs["state"].batch_axis == 1


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, leaf = dotted.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return out


_DELETE = object()

BAD = [
    ("engine.bogus", 1, "engine.bogus"),
    ("engine.name", "Has Spaces", "engine.name"),
    ("engine.model", "missing.onnx", "engine.model"),
    ("engine.batch_sizes", [], "engine.batch_sizes"),
    ("engine.budget_ms", -5, "engine.budget_ms"),
    ("inputs.video.dtype", "float32", "inputs.video"),
    ("inputs.video.dtype", "complex", "inputs.video.dtype"),
    ("inputs.video.fps", _DELETE, "inputs.video.fps"),
    ("inputs.video.shape", ["B", 5, 8, 8, 3], "inputs.video.shape"),  # T != length*fps
    ("inputs.audio.shape", ["B", 1600, 1], "inputs.audio"),
    ("inputs.audio.role", "sound", "inputs.audio.role"),
    (
        "inputs.extra",
        {"role": "constant", "dtype": "int64", "shape": [], "value": 1},
        "inputs.extra",
    ),
    ("outputs.scores.labels", ["a", "b", "c"], "outputs.scores.labels"),
    ("outputs.nope", {"labels": ["z"]}, "outputs.nope"),
    ("outputs.scores.activation", "relu", "outputs.scores.activation"),
    ("thresholds.zzz", {"on": 0.5}, "thresholds.zzz"),
    ("thresholds.b.on", 1.5, "thresholds.b.on"),
    ("window.hop_s", 0, "window.hop_s"),
    ("window.labels_at", "start", "window.labels_at"),
]


@pytest.mark.parametrize(("field", "value", "named"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_manifest_names_file_and_field(
    tmp_path: Path, field: str, value: Any, named: str
) -> None:
    path = write_engine(tmp_path, _set(BASE, field, value))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    message = str(err.value)
    assert str(path) in message
    assert named in message


def test_manifest_shape_disagreeing_with_the_graph(tmp_path: Path) -> None:
    # The manifest is self-consistent (T = 0.5 s * 16 fps = 8) but the graph takes T = 4.
    doc = _set(BASE, "inputs.video.fps", 16.0)
    doc = _set(doc, "inputs.video.shape", ["B", 8, 8, 8, 3])
    with pytest.raises(ManifestError, match=r"inputs\.video\.shape: axis 1 is 8 but the graph"):
        load_manifest(write_engine(tmp_path, doc))


def test_graph_input_missing_from_the_manifest(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["inputs"]["audio"]
    with pytest.raises(ManifestError, match=r"inputs\.audio: graph input not declared"):
        load_manifest(write_engine(tmp_path, doc))


def test_graph_dtype_disagreeing_with_the_manifest(tmp_path: Path) -> None:
    path = write_engine(tmp_path, BASE, audio_type=TensorProto.FLOAT16)
    with pytest.raises(
        ManifestError, match=r"inputs\.audio\.dtype: float32 but the graph has float16"
    ):
        load_manifest(path)


def test_graph_fixing_the_batch_axis_restricts_batch_sizes(tmp_path: Path) -> None:
    path = write_engine(tmp_path, BASE)
    model = onnx.load(str(tmp_path / "model.onnx"))
    for value in model.graph.input:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(ManifestError, match=r"batch_sizes must be \[1\]"):
        load_manifest(path)
    (tmp_path / "engine.toml").write_text(to_toml(_set(BASE, "engine.batch_sizes", [1])))
    assert load_manifest(path).batch_sizes == (1,)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "engine.toml").write_text("[engine\nname = 1")
    with pytest.raises(ManifestError, match="invalid TOML"):
        load_manifest(tmp_path / "engine.toml")
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "nowhere" / "engine.toml")


def test_model_package_must_exist(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    del doc["engine"]["model"]
    doc["engine"]["model_package"] = "silero_vad:data/not-there.onnx"
    with pytest.raises(ManifestError, match=r"engine\.model_package: file not found"):
        load_manifest(write_engine(tmp_path, doc))
    doc["engine"]["model_package"] = "no_such_package_here:model.onnx"
    with pytest.raises(ManifestError, match=r"engine\.model_package: package"):
        load_manifest(write_engine(tmp_path, doc))


STREAMING: dict[str, Any] = {
    "engine": {"name": "vad", "version": "1", "torch_factory": "x.y:z", "batch_sizes": [1, 2]},
    "window": {"length_s": 0.064, "hop_s": 0.064},
    "streaming": {"chunk": 512, "context": 64},
    "inputs": {
        "input": {"role": "audio", "dtype": "float32", "shape": ["B", 576], "sample_rate": 16000},
        "state": {"role": "state", "dtype": "float32", "shape": [2, "B", 128]},
    },
    "outputs": {"output": {"labels": ["speech"]}, "stateN": {"state_for": "state"}},
}


def test_streaming_manifest_without_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "engine.toml").write_text(to_toml(STREAMING))
    m = load_manifest(tmp_path)
    assert m.model_path is None
    assert m.stateful
    assert m.window_spec().audio is not None
    assert m.window_spec().audio.samples == 1024  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("window.hop_s", 0.032, "window.hop_s"),  # overlapping windows would replay audio
        ("streaming.chunk", 500, "streaming"),  # chunk + context != input width
        ("window.length_s", 0.05, "window.length_s"),  # not a whole number of chunks
        ("outputs.stateN.state_for", "nothing", "outputs.stateN.state_for"),
        ("outputs.stateN", {"labels": ["x"]}, "inputs.state"),  # state never fed back
        ("inputs.state.shape", [2, 128], "inputs.state.shape"),  # no batch axis
    ],
)
def test_streaming_mistakes(tmp_path: Path, field: str, value: Any, named: str) -> None:
    (tmp_path / "engine.toml").write_text(to_toml(_set(STREAMING, field, value)))
    with pytest.raises(ManifestError) as err:
        load_manifest(tmp_path)
    assert named in str(err.value)
