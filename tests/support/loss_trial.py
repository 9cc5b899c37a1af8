"""One loss trial on the real UDP path: `scenestream serve` (with redis-server and a
`scenestream events` subscriber) in one network namespace, `scenestream send` in another, and a
schedule of nftables impairments (`tests.support.lossy_link`) applied while the scene plays.

The result holds every scene message the service published, so windows can be counted per phase
of the schedule: a window belongs to a phase when its whole span lies inside it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.lossy_link import LossyLink, Media

ROOT = Path(__file__).resolve().parents[2]
PORT = 8080
REDIS_PORT = 6379


@dataclass(frozen=True)
class Phase:
    """From `at_s` seconds after the first published window on: this impairment."""

    at_s: float
    loss_pct: float = 0.0
    media: Media = "both"
    blackout: bool = False
    jitter_ms: float = 0.0  # delay variation (needs a bridged `LossyLink`)
    name: str = ""


@dataclass
class TrialResult:
    """What one trial saw (capture-clock and wall times are on this host's clock)."""

    scenes: list[dict[str, Any]]
    phase_starts: list[tuple[Phase, float]]  # each phase with the wall time it began
    phase_metrics: list[str]  # a /metrics scrape at the start of each phase
    ended_at: float  # wall time the last phase ended
    metrics: str
    hop_s: float = 0.5
    length_s: float = 1.0
    budget_ms: float = 200.0
    log: str = ""

    def span(self, index: int) -> tuple[float, float]:
        """Wall-time span of phase `index`."""
        start = self.phase_starts[index][1]
        end = (
            self.phase_starts[index + 1][1] if index + 1 < len(self.phase_starts) else self.ended_at
        )
        return start, end

    def expected_ends(self, start: float, end: float) -> list[float]:
        """Grid window ends whose whole window lies in `[start, end)`."""
        first = math.ceil((start + self.length_s) / self.hop_s - 1e-9)
        last = math.floor(end / self.hop_s - 1e-9)
        return [k * self.hop_s for k in range(first, last + 1)]

    def windows_in(self, start: float, end: float) -> dict[float, dict[str, Any]]:
        """Published scene messages by window end (rounded to the grid) inside `[start, end)`."""
        ends = set(self.expected_ends(start, end))
        out = {}
        for msg in self.scenes:
            key = round(msg["window"]["end"] / self.hop_s) * self.hop_s
            if key in ends:
                out[key] = msg
        return out

    def summary(self, index: int) -> dict[str, Any]:
        """Published share, capture-to-publish p95 and on-time share of phase `index`."""
        start, end = self.span(index)
        expected = self.expected_ends(start, end)
        got = self.windows_in(start, end)
        c2p = sorted(m["latency_ms"]["capture_to_publish"] for m in got.values())
        on_time = sum(1 for v in c2p if v <= self.budget_ms)
        return {
            "phase": self.phase_starts[index][0].name,
            "expected": len(expected),
            "published": len(got),
            "published_pct": 100.0 * len(got) / len(expected) if expected else float("nan"),
            "on_time_pct": 100.0 * on_time / len(expected) if expected else float("nan"),
            "p95_ms": percentile(c2p, 0.95) if c2p else float("nan"),
            "with_gaps": sum(1 for m in got.values() if m["window"]["gaps"]),
            "missing_modality": sum(1 for m in got.values() if m.get("missing")),
        }

    def counter(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus counter's samples matching `labels` in the final scrape."""
        return counter(self.metrics, name, **labels)

    def phase_counter(self, index: int, name: str, **labels: str) -> float:
        """How much a counter grew during phase `index` (scrapes at the phase boundaries)."""
        ends = [*self.phase_metrics[1:], self.metrics]
        return counter(ends[index], name, **labels) - counter(
            self.phase_metrics[index], name, **labels
        )


def counter(metrics: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples matching `labels` in a scrape."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def _python(link: LossyLink, ns: str, *args: str) -> list[str]:
    return [*link.netns(ns), sys.executable, "-m", "stream.cli", *args]


def _wait(
    predicate: Any, timeout_s: float, what: str, procs: Sequence[subprocess.Popen[Any]]
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: {proc.args!r} exited {proc.returncode}")
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


def _curl(link: LossyLink, path: str) -> str | None:
    url = f"http://{link.server_ip}:{PORT}{path}"
    done = subprocess.run([*link.netns(link.server), "curl", "-sf", "--max-time", "5", url],
                          capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    return done.stdout if done.returncode == 0 else None


def _subscribers(link: LossyLink, channel: str) -> int:
    done = subprocess.run(
        [*link.netns(link.server), "redis-cli", "-p", str(REDIS_PORT), "pubsub", "numsub", channel],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    lines = done.stdout.split()
    return int(lines[1]) if done.returncode == 0 and len(lines) > 1 else 0


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[Any]]]:
    procs: list[subprocess.Popen[Any]] = []
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def run_trial(
    link: LossyLink,
    phases: Sequence[Phase],
    *,
    engines: Sequence[str] = ("avfusion",),
    scenario: str = "emergency",
    startup_timeout_s: float = 120.0,
    root: Path = ROOT,
) -> TrialResult:
    """Play `scenario` through `link` while `phases` run (see `Phase`); the last phase's
    `at_s` is when the trial ends. `root` is the source tree the service and sender run from
    (another checkout gives a baseline). Every process it starts is stopped before it returns."""
    total_s = phases[-1].at_s
    env = dict(os.environ, SCENESTREAM_ENGINES__ENABLED=json.dumps(list(engines)),
               PYTHONPATH=str(root))  # fmt: skip
    redis_url = f"redis://127.0.0.1:{REDIS_PORT}"
    with tempfile.TemporaryDirectory(prefix="scenestream-loss-") as tmp, _processes() as procs:
        scenes_path, log_path = Path(tmp) / "scenes.jsonl", Path(tmp) / "serve.log"
        log = log_path.open("w")
        procs.append(subprocess.Popen(
            [*link.netns(link.server), "redis-server", "--port", str(REDIS_PORT), "--save", "",
             "--appendonly", "no", "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        procs.append(subprocess.Popen(
            _python(link, link.server, "serve", "--host", link.server_ip, "--port", str(PORT),
                    "--redis", redis_url),
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        _wait(lambda: _curl(link, "/readyz") is not None, startup_timeout_s, "service ready", procs)
        with scenes_path.open("w") as scenes_out:
            procs.append(subprocess.Popen(
                _python(link, link.server, "events", "--redis", redis_url, "--stream", "cam",
                        "--kind", "scene", "--json"),
                cwd=root, env=env, stdout=scenes_out, stderr=log,
            ))  # fmt: skip
            _wait(lambda: _subscribers(link, "scenestream:cam:scene") > 0, 60,
                  "the scene subscriber", procs)  # fmt: skip
            procs.append(subprocess.Popen(
                _python(link, link.sender, "send", f"http://{link.server_ip}:{PORT}/whip/cam",
                        "--scenario", scenario, "--loop", "--seconds", str(total_s + 20)),
                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            _wait(lambda: scenes_path.stat().st_size > 0, 60, "first scene message", procs)
            began = time.time()
            starts: list[tuple[Phase, float]] = []
            scrapes: list[str] = []
            for phase in phases[:-1]:
                delay = began + phase.at_s - time.time()
                if delay > 0:
                    time.sleep(delay)
                link.impair(phase.loss_pct, phase.media, blackout=phase.blackout)
                if link.bridged:
                    link.jitter(phase.jitter_ms)
                starts.append((phase, time.time()))
                scrapes.append(_curl(link, "/metrics") or "")
            time.sleep(max(0.0, began + total_s - time.time()))
            ended = time.time()
            link.impair()
            time.sleep(1.0)  # the last windows' budget
            metrics = _curl(link, "/metrics") or ""
        log.close()
        scenes = [json.loads(line) for line in scenes_path.read_text().splitlines() if line]
        return TrialResult(
            scenes=[m for m in scenes if m.get("type") == "scene"],
            phase_starts=starts,
            phase_metrics=scrapes,
            ended_at=ended,
            metrics=metrics,
            log=log_path.read_text()[-40000:],
        )
