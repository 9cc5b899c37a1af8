"""ONNX Runtime intra-op threads: `engines.onnxruntime_threads` (and its per-engine override) is
validated with clear errors and reaches the real session: its options read back, its thread
pool counted in /proc, and `describe()` reporting what the session got; so does
`engines.onnxruntime_spinning`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engines.config import EnginesConfig
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, default_threads
from engines.runtime.loader import load_engine
from engines.runtime.manifest import Manifest, load_manifest
from stream.config import ConfigError, load_settings
from tests.support.engine_fixtures import BASE, tiny_onnx, to_toml

pytestmark = pytest.mark.unit

TASKS = Path("/proc/self/task")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The tiny real ONNX engine of the shared fixtures (ONNX Runtime imported: its import
    starts a thread of its own, not to be counted as the session's)."""
    import onnxruntime  # noqa: F401

    root = tmp_path_factory.mktemp("tiny")
    tiny_onnx(root / "model.onnx")
    (root / "engine.toml").write_text(to_toml(BASE))
    return load_manifest(root)


def os_threads() -> int:
    return len(os.listdir(TASKS))


def test_default_is_auto_and_a_file_and_the_environment_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().engines.onnxruntime_threads == 0
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[engines]\nonnxruntime_threads = 2\n[engines.overrides.tiny]\nonnxruntime_threads = 3\n"
    )
    engines = load_settings(cfg).engines
    assert engines.onnxruntime_threads_for("avfusion") == 2
    assert engines.onnxruntime_threads_for("tiny") == 3  # the per-engine override wins
    assert engines.onnxruntime_spinning is True
    monkeypatch.setenv("SCENESTREAM_ENGINES__ONNXRUNTIME_THREADS", "1")
    monkeypatch.setenv("SCENESTREAM_ENGINES__ONNXRUNTIME_SPINNING", "false")
    engines = load_settings(cfg).engines
    assert engines.onnxruntime_threads_for("avfusion") == 1
    assert engines.onnxruntime_spinning is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", r"engines\.onnxruntime_threads: .*0 \(auto.*from 1 to 256, not -1"),
        ("257", r"engines\.onnxruntime_threads: .*from 1 to 256, not 257"),
        ("true", r"engines\.onnxruntime_threads: .*not true/false"),
        ("1.5", r"engines\.onnxruntime_threads: .*integer"),
        ('"two"', r"engines\.onnxruntime_threads: .*integer"),
    ],
)
def test_bad_thread_counts_are_refused_with_the_key_named(
    tmp_path: Path, value: str, message: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[engines]\nonnxruntime_threads = {value}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


def test_a_bad_override_names_the_engine(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[engines.overrides.avfusion]\nonnxruntime_threads = -2\n")
    with pytest.raises(ConfigError, match=r"engines\.overrides\.avfusion\.onnxruntime_threads"):
        load_settings(cfg)


def test_the_backend_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        OnnxRuntimeBackend(threads=-1)


@pytest.mark.skipif(not TASKS.is_dir(), reason="counts threads in /proc (Linux)")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_session_gets_the_thread_count(tiny: Manifest, tmp_path: Path, threads: int) -> None:
    backend = OnnxRuntimeBackend(threads=threads, use_gpu=False)
    before = os_threads()
    backend.load(tiny, tmp_path)
    # The intra-op pool: the calling thread plus threads - 1 of ONNX Runtime's own.
    assert os_threads() - before == threads - 1
    assert backend.threads == threads  # read back from the session's own options
    assert backend.describe()["intra_op_threads"] == threads
    backend.close()


@pytest.mark.parametrize("spinning", [True, False])
def test_the_session_gets_the_spinning_choice(
    tiny: Manifest, tmp_path: Path, spinning: bool
) -> None:
    backend = OnnxRuntimeBackend(threads=2, use_gpu=False, spinning=spinning)
    backend.load(tiny, tmp_path)
    assert backend.describe()["intra_op_spinning"] is spinning  # the session's own options
    backend.close()


def test_zero_and_none_mean_the_automatic_count(tiny: Manifest, tmp_path: Path) -> None:
    for threads in (None, 0):
        backend = OnnxRuntimeBackend(threads=threads, use_gpu=False)
        backend.load(tiny, tmp_path)
        assert backend.describe()["intra_op_threads"] == default_threads()
        backend.close()


def test_the_loader_passes_the_configured_count(tiny: Manifest, tmp_path: Path) -> None:
    settings = {"cache_dir": tmp_path, "backends": ["onnxruntime"], "onnxruntime_threads": 2}
    engine, report = load_engine(tiny, EnginesConfig.model_validate(settings))
    assert report.backend == "onnxruntime"
    assert report.details["intra_op_threads"] == 2
    engine.close()
    assert report.details["intra_op_spinning"] is True  # ONNX Runtime's own default
    engine.close()
    settings["overrides"] = {"tiny": {"onnxruntime_threads": 3}, "other": {"budget_ms": 50}}
    settings["onnxruntime_spinning"] = False
    engine, report = load_engine(tiny, EnginesConfig.model_validate(settings))
    assert report.details["intra_op_threads"] == 3
    assert report.details["intra_op_spinning"] is False
    engine.close()
