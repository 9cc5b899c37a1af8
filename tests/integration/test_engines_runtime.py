"""A user's own engine, built here (a tiny torch model exported to ONNX), loads from a user
directory with no code change and runs through the same path as the bundled engines: manifest,
backend choice, padding to built batch sizes, per-stream state, typed errors, and the CLI."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper

from engines.config import EnginesConfig
from engines.runtime.backends.base import Arrays, Backend
from engines.runtime.engine import Engine
from engines.runtime.interface import EngineError, InputShapeError, ManifestError
from engines.runtime.loader import LoadReport, discover, load_engine, load_engines, try_backend
from engines.runtime.manifest import Manifest, load_manifest
from engines.window import Window
from stream.cli import main
from tests.support.engine_fixtures import USER_MANIFEST, to_toml, user_engines

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A user engine directory holding tiny-user: model source, state dict, ONNX, manifest."""
    with user_engines(tmp_path_factory.mktemp("user-engines")) as root:
        yield root


def config(user_dir: Path, tmp_path: Path, **kwargs: Any) -> EnginesConfig:
    return EnginesConfig.model_validate(
        {"user_dir": user_dir, "cache_dir": tmp_path / "cache", **kwargs}
    )


def windows(n: int, seed: int = 0, stream: str = "cam", seq: int = 0) -> list[Window]:
    rng = np.random.default_rng(seed)
    return [
        Window(
            stream=f"{stream}{i}",
            engine="tiny-user",
            seq=seq,
            start=0.0,
            end=0.5,
            video=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
            frame_times=None,
            audio=(rng.random(1600, dtype=np.float32) - 0.5),
        )
        for i in range(n)
    ]


def torch_reference(windows_: list[Window]) -> npt.NDArray[np.float64]:
    import torch

    module = importlib.import_module("tiny_user_model")
    model = module.load(Path(str(module.__file__)).parent).eval()
    video = torch.from_numpy(np.stack([np.asarray(w.video) for w in windows_]))
    audio = torch.from_numpy(np.stack([np.asarray(w.audio) for w in windows_]))
    with torch.inference_mode():
        out: npt.NDArray[np.float64] = torch.sigmoid(model(video, audio)).double().numpy()
    return out


def test_user_engine_loads_and_runs_on_the_preferred_available_backend(
    user_dir: Path, tmp_path: Path
) -> None:
    cfg = config(user_dir, tmp_path, enabled=["tiny-user", "silero-vad"])
    (engine, report), (vad, _) = load_engines(cfg)
    assert engine.name == "tiny-user"
    assert vad.name == "silero-vad"
    assert report.backend == "onnxruntime"  # tensorrt comes first, but not here
    assert "tensorrt does not import" in report.skipped["tensorrt"]
    assert report.details["provider"] == "CPUExecutionProvider"
    assert engine.labels == ("x", "y", "z")
    assert engine.budget_s == pytest.approx(0.12)
    assert engine.spec.hop_s == 0.25
    ws = windows(3)
    got = engine.infer(ws)
    want = torch_reference(ws)
    for row, ref in zip(got, want, strict=True):
        assert list(row) == ["x", "y", "z"]
        np.testing.assert_allclose([row[k] for k in "xyz"], ref, atol=1e-5)


def test_torch_and_onnxruntime_agree_through_the_engine_runtime(
    user_dir: Path, tmp_path: Path
) -> None:
    onnx_cfg = config(user_dir, tmp_path, backends=["onnxruntime"])
    torch_cfg = config(
        user_dir, tmp_path, overrides={"tiny-user": {"backend": "torch", "hop_s": 0.5}}
    )
    manifest = discover(user_dir).manifests["tiny-user"]
    on_ort, _ = load_engine(manifest, onnx_cfg)
    on_torch, report = load_engine(manifest, torch_cfg)
    assert report.backend == "torch"
    assert on_torch.spec.hop_s == 0.5  # the per-engine override
    ws = windows(4, seed=5)
    for a, b in zip(on_ort.infer(ws), on_torch.infer(ws), strict=True):
        np.testing.assert_allclose(list(a.values()), list(b.values()), atol=1e-4)


class RecordingBackend(Backend):
    """Wraps a real backend and records the batch size of every call."""

    name = "recording"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.batches: list[int] = []

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    @classmethod
    def supports(cls, manifest: Manifest) -> tuple[bool, str]:
        return True, ""

    def load(self, manifest: Manifest, cache_dir: Path) -> None:
        self.inner.load(manifest, cache_dir)

    def infer(self, inputs: Arrays) -> Arrays:
        self.batches.append(next(iter(inputs.values())).shape[0])
        return self.inner.infer(inputs)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    @property
    def manifest(self) -> Manifest:
        return self.inner.manifest


def test_batches_are_padded_to_built_sizes_and_split_above_the_largest(
    user_dir: Path, tmp_path: Path
) -> None:
    from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    manifest = discover(user_dir).manifests["tiny-user"]
    backend = RecordingBackend(OnnxRuntimeBackend())
    backend.load(manifest, tmp_path)
    engine = Engine(manifest, backend)
    ws = windows(9, seed=2)
    padded = engine.infer(ws)
    assert backend.batches == [4, 4, 1]
    backend.batches.clear()
    assert engine.infer(ws[:3]) == padded[:3]  # padding rows never leak into real rows
    assert backend.batches == [4]


def test_wrong_shapes_and_dtypes_raise_the_typed_error(user_dir: Path, tmp_path: Path) -> None:
    engine, _ = load_engine(discover(user_dir).manifests["tiny-user"], config(user_dir, tmp_path))
    good = windows(1)[0]
    bad = [
        Window("a", "tiny-user", 7, 0, 0.5, good.video[:3], None, good.audio),  # type: ignore[index]
        Window("a", "tiny-user", 7, 0, 0.5, good.video, None, good.audio.astype(np.float64)),  # type: ignore[union-attr]
        Window("a", "tiny-user", 7, 0, 0.5, good.video, None, None),
    ]
    for window in bad:
        with pytest.raises(InputShapeError, match=r"tiny-user: window a#7"):
            engine.infer([good, window])


def test_a_failing_backend_is_reported_and_the_next_one_used(
    user_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = discover(user_dir).manifests["tiny-user"]
    broken_doc = manifest.doc.model_copy(
        update={
            "engine": manifest.doc.engine.model_copy(
                update={"torch_factory": "tiny_user_model:broken"}
            )
        }
    )
    broken = Manifest(manifest.path, broken_doc, manifest.model_path)
    engine, report = load_engine(
        broken, config(user_dir, tmp_path, backends=["torch", "onnxruntime"])
    )
    assert engine.backend_name == "onnxruntime"
    assert "weights are corrupt" in report.skipped["torch"]
    with pytest.raises(EngineError, match=r"tiny-user: no backend can run it \(torch: .*corrupt"):
        load_engine(broken, config(user_dir, tmp_path, backends=["torch"]))
    report = LoadReport(engine="tiny-user")
    assert try_backend(broken, "torch", tmp_path, report) is None


def test_bad_user_manifest_fails_at_load_naming_file_and_field(
    user_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_root = tmp_path / "user"
    bad = bad_root / "broken"
    bad.mkdir(parents=True)
    doc = json.loads(json.dumps(USER_MANIFEST))
    doc["engine"]["name"] = "broken"
    doc["engine"]["model"] = str(user_dir / "tiny-user" / "model.onnx")
    doc["inputs"]["audio"]["shape"] = ["B", 1600]
    doc["inputs"]["audio"]["sampel_rate"] = 3200  # a typo: unknown key
    (bad / "engine.toml").write_text(to_toml(doc))
    with pytest.raises(ManifestError) as err:
        load_engines(config(bad_root, tmp_path, enabled=["broken"]))
    assert str(bad / "engine.toml") in str(err.value)
    assert "inputs.audio.sampel_rate" in str(err.value)
    # `list` keeps working and shows what is wrong.
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[engines]\nuser_dir = "{bad_root}"\n')
    out_json = tmp_path / "list.json"
    assert main(["engines", "list", "--config", str(cfg), "--json", str(out_json)]) == 0
    listing = json.loads(out_json.read_text())
    assert "inputs.audio.sampel_rate" in next(iter(listing["errors"].values()))
    assert "silero-vad" in capsys.readouterr().out


def test_cli_verify_and_bench_on_the_user_engine(
    user_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[engines]\nuser_dir = "{user_dir}"\ncache_dir = "{tmp_path / "c"}"\n')
    verify_json = tmp_path / "verify.json"
    code = main(
        ["engines", "verify", "tiny-user", "--config", str(cfg), "--json", str(verify_json)]
    )
    report = json.loads(verify_json.read_text())["verify"][0]
    assert code == 0, report
    assert report["backends"] == ["onnxruntime", "torch"]
    assert {(c["inputs"], c["batch"]) for c in report["cases"]} == {
        ("random", 1), ("random", 4), ("realistic", 1), ("realistic", 4)
    }  # fmt: skip
    assert all(c["max_abs_diff"] <= 1e-4 for c in report["cases"])
    bench_json = tmp_path / "bench.json"
    argv = ["engines", "bench", "tiny-user", "--config", str(cfg), "--backend", "onnxruntime"]
    argv += ["--batch", "1", "--batch", "4", "--iterations", "5", "--json", str(bench_json)]
    assert main(argv) == 0
    rows = json.loads(bench_json.read_text())["bench"]
    assert [(r["backend"], r["batch"]) for r in rows] == [("onnxruntime", 1), ("onnxruntime", 4)]
    assert all(r["windows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    assert main(["engines", "bench", "nope", "--config", str(cfg)]) == 2
    assert "unknown engine(s): nope" in capsys.readouterr().err


def accumulator_engine(root: Path) -> Manifest:
    """A stateful engine: level = acc + mean(audio), acc carried per stream on axis 1."""
    audio = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 160])
    acc = helper.make_tensor_value_info("acc", TensorProto.FLOAT, [1, "batch"])
    level = helper.make_tensor_value_info("level", TensorProto.FLOAT, ["batch", 1])
    acc_out = helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, "batch"])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    perm_nodes = [
        helper.make_node("ReduceMean", ["audio", "axes"], ["m"], keepdims=1),  # [B,1]
        helper.make_node("Transpose", ["m"], ["mt"], perm=[1, 0]),  # [1,B]
        helper.make_node("Add", ["acc", "mt"], ["acc_out"]),
        helper.make_node("Transpose", ["acc_out"], ["level"], perm=[1, 0]),
    ]
    graph = helper.make_graph(perm_nodes, "acc", [audio, acc], [level, acc_out], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(root / "model.onnx"))
    doc = {
        "engine": {"name": "acc", "version": "1", "model": "model.onnx", "batch_sizes": [1, 2]},
        "window": {"length_s": 0.01, "hop_s": 0.01},
        "inputs": {
            "audio": {
                "role": "audio",
                "dtype": "float32",
                "shape": ["B", 160],
                "sample_rate": 16000,
            },
            "acc": {"role": "state", "dtype": "float32", "shape": [1, "B"]},
        },
        "outputs": {"level": {"labels": ["level"]}, "acc_out": {"state_for": "acc"}},
    }
    (root / "engine.toml").write_text(to_toml(doc))
    return load_manifest(root)


def test_state_is_carried_per_stream_in_order_and_released(tmp_path: Path) -> None:
    manifest = accumulator_engine(tmp_path / "acc")
    engine, _ = load_engine(manifest, config(tmp_path, tmp_path, backends=["onnxruntime"]))

    def win(stream: str, value: float) -> Window:
        audio = np.full(160, value, dtype=np.float32)
        return Window(stream, "acc", 0, 0.0, 0.01, None, None, audio)

    assert [s["level"] for s in engine.infer([win("a", 1.0), win("b", 10.0)])] == [1.0, 10.0]
    assert [s["level"] for s in engine.infer([win("b", 10.0), win("a", 1.0)])] == [20.0, 2.0]
    # The same stream twice (and three streams with batch sizes up to 2) in one call: in order.
    levels = engine.infer([win("a", 1.0), win("a", 1.0), win("c", 5.0), win("b", 1.0)])
    assert [s["level"] for s in levels] == [3.0, 4.0, 5.0, 21.0]
    assert engine.stream_count() == 3
    engine.release("a")
    assert engine.infer([win("a", 1.0)])[0]["level"] == 1.0
    engine.close()  # service shutdown: state and backend freed
    assert engine.stream_count() == 0
    with pytest.raises(EngineError, match="before load"):
        engine.infer([win("a", 1.0)])
