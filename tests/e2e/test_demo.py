"""`scenestream demo --seconds 20`: the whole path with nothing set up (embedded Redis, the
service with the bundled engines, the synthetic camera playing `emergency`) exits 0 and prints
the live events and a summary."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.e2e.conftest import AVFUSION_MISSING, HAVE_AVFUSION, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

EVENT_LINE = re.compile(r"demo-cam\s+start\s+(?P<label>\w+)\s+score \d\.\d\d")


@pytest.mark.skipif(not HAVE_AVFUSION, reason=AVFUSION_MISSING)
def test_demo_runs_twenty_seconds_and_prints_events() -> None:
    cmd = [sys.executable, "-m", "stream.cli", "demo", "--seconds", "20"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    out = done.stdout
    print(out[-4000:])
    assert done.returncode == 0, f"demo exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    started = {m["label"] for m in EVENT_LINE.finditer(out)}
    assert "emergency_vehicle" in started, f"no emergency_vehicle start printed:\n{out[-3000:]}"
    summary = [line for line in out.splitlines() if line.startswith("summary: ")]
    assert len(summary) == 1, out[-3000:]
    assert "emergency_vehicle x" in summary[0], summary[0]
