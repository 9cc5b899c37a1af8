"""`scenestream bench` end to end, as users run it: one stream for a few seconds.

A smoke test, not a timing assertion: the JSON and the table are written, the service published
the stream's windows at about the engine's rate, and every figure is in a sane range.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCENESTREAM = str(Path(sys.executable).parent / "scenestream")


def run_bench(out: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCENESTREAM, "bench", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(150)
def test_one_stream_for_four_seconds(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--streams", "1", "--seconds", "4", "--no-baseline")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    doc = json.loads((tmp_path / "bench.json").read_text())
    (trial,) = doc["trials"]
    assert trial["server"] == "service"
    assert trial["streams"] == 1
    assert 3.5 <= trial["seconds"] <= 8
    lat = trial["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] < 5_000
    # 1 s windows every 0.5 s: about 2 per second reach Redis
    assert 1.0 <= trial["windows_per_s"] <= 3.0
    assert trial["messages"] >= 4
    assert trial["outcomes"].get("published", 0) >= trial["messages"] - 2
    assert 0 < trial["cpu_per_stream"] < 4
    assert 50 < trial["rss_mb"] < 4_000
    assert doc["engine"] == "avfusion"
    assert doc["capacity"] == {}
    table = (tmp_path / "bench.md").read_text()
    assert "| service | 1 |" in table
    assert "| service | 1 |" in done.stdout
    assert "[service] 1 stream(s)" in done.stdout  # progress lines


@pytest.mark.timeout(150)
def test_two_workers_share_the_streams(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--streams", "2", "--seconds", "3", "--no-baseline",
                     "--workers", "2")  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (trial,) = json.loads((tmp_path / "bench.json").read_text())["trials"]
    assert trial["workers"] == 2
    # the first worker holds its share (1), then answers 307 to the second one
    assert trial["streams_per_worker"] == [1, 1]
    assert trial["messages"] >= 4
    assert trial["outcomes"].get("published", 0) >= trial["messages"] - 2
    assert "| service ×2 | 2 |" in (tmp_path / "bench.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_overload_trial_runs_count_then_headroom(tmp_path: Path) -> None:
    """Plumbing only (1 stream held, 2 offered: a fresh worker takes both at once)."""
    done = run_bench(tmp_path, "--overload", "--streams", "1", "--seconds", "3",
                     "--no-baseline", timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["trials"] == []  # --streams is the capacity: no search, no plain trial
    over = doc["overload"]
    assert (over["capacity"], over["streams"]) == (1, 2)
    count, headroom = over["trials"]
    assert (count["admission"], headroom["admission"]) == ("count", "headroom")
    for trial in (count, headroom):
        assert trial["streams"] == 2
        assert trial["admitted_streams"] + trial["refused_streams"] == 2
        assert trial["messages"] >= 4
        assert 0 < trial["delivery"] <= 1.5
    assert count["refused_streams"] == 0  # by count, with room for 64
    assert "| headroom | 2 |" in (tmp_path / "bench.md").read_text()
    assert "## Overload: 2 streams offered (1 held)" in (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--streams", "0"], "--streams must be within 1..64"),
        (["--workers", "0"], "--workers must be within 1..8"),
        (["--workers", "2", "--no-engine"],
         "--workers applies to the service; --no-engine runs the ingest alone"),
        (["--overload", "--no-engine"],
         "--overload measures the service with its engine; drop --no-engine"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], error: str) -> None:
    done = run_bench(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"scenestream bench: {error}"]


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_naive_baseline_publishes_once_per_video_frame(tmp_path: Path) -> None:
    from stream.benchmark.campaign import ENGINE, _engine_setup
    from stream.benchmark.clip import cached_clip
    from stream.benchmark.trial import TrialPlan, run_trial
    from stream.config import load_settings

    cache = load_settings(None).engines.cache_dir
    user_dir, _, _ = _engine_setup(cache)
    plan = TrialPlan(
        server="naive", streams=1, seconds=3.0, warmup=2.0, clip=cached_clip(cache),
        engines=(ENGINE,), user_dir=user_dir, log_dir=tmp_path, expected_per_stream=30.0,
    )  # fmt: skip
    result = await run_trial(plan)
    assert 20 <= result.windows_per_s <= 40, result.as_dict()
    lat = result.latency_ms
    assert lat["p50"] is not None
    assert 0 < lat["p50"] < 5_000
    assert result.outcomes == {}  # the baseline has no /metrics: it drops nothing, it queues
    assert result.cpu_cores > 0
    assert result.sender_cpu_cores > 0  # the load generator's share of the same machine
