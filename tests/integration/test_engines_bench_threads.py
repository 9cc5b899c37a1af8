"""`scenestream engines bench --threads N`: ONNX Runtime timed at each thread count asked (else
at `engines.onnxruntime_threads`), the count printed on every row and recorded in `--json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.cli import main
from tests.support.engine_fixtures import BASE, tiny_onnx, to_toml

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user engine directory holding the tiny real ONNX engine `tiny`."""
    root = tmp_path_factory.mktemp("user-engines")
    (root / "tiny").mkdir()
    tiny_onnx(root / "tiny" / "model.onnx")
    (root / "tiny" / "engine.toml").write_text(to_toml(BASE))
    return root


def bench(
    tmp_path: Path, user_dir: Path, *extra: str, settings: str = ""
) -> list[dict[str, object]]:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f'[engines]\nuser_dir = "{user_dir}"\ncache_dir = "{tmp_path / "c"}"\n{settings}'
    )
    out = tmp_path / "bench.json"
    argv = ["engines", "bench", "tiny", "--config", str(cfg), "--backend", "onnxruntime"]
    argv += ["--batch", "1", "--iterations", "5", "--json", str(out), *extra]
    assert main(argv) == 0
    rows: list[dict[str, object]] = json.loads(out.read_text())["bench"]
    return rows


def test_threads_flag_is_used_printed_and_recorded(
    tmp_path: Path, user_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = bench(tmp_path, user_dir, "--threads", "2")
    assert [(r["backend"], r["batch"], r["threads"]) for r in rows] == [("onnxruntime", 1, 2)]
    details = rows[0]["details"]
    assert isinstance(details, dict)
    assert details["intra_op_threads"] == 2
    printed = [line for line in capsys.readouterr().out.splitlines() if "windows/s" in line]
    assert len(printed) == 1, printed
    assert "threads 2 " in printed[0], printed


def test_each_thread_count_asked_gets_its_rows(tmp_path: Path, user_dir: Path) -> None:
    rows = bench(tmp_path, user_dir, "--threads", "1", "--threads", "3", "--batch", "4")
    assert [(r["threads"], r["batch"]) for r in rows] == [(1, 1), (1, 4), (3, 1), (3, 4)]


def test_without_the_flag_the_configured_count_runs(tmp_path: Path, user_dir: Path) -> None:
    rows = bench(tmp_path, user_dir, settings="onnxruntime_threads = 3\n")
    assert [(r["threads"], r["spinning"]) for r in rows] == [(3, True)]


def test_the_configured_spinning_is_used_printed_and_recorded(
    tmp_path: Path, user_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = bench(tmp_path, user_dir, "--threads", "2", settings="onnxruntime_spinning = false\n")
    assert [(r["threads"], r["spinning"]) for r in rows] == [(2, False)]
    printed = [line for line in capsys.readouterr().out.splitlines() if "windows/s" in line]
    assert printed[0].endswith("(no spin)"), printed


def test_a_bad_thread_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["engines", "bench", "--threads", "-1"])
    assert exit_.value.code == 2
    assert "0 (auto) or a thread count from 1 to 256" in capsys.readouterr().err
