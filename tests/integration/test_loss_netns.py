"""Loss tolerance on the real UDP path: the service in one network namespace, `scenestream send`
in another, nftables dropping 5 % of the sender's audio and video RTP, then a 2 s blackout.

One ~25 s trial (plus the service's start): the windows cut while 5 % of both media are lost
must still be published (>= 95 %) with capture-to-publish p95 within the engine's budget, and
after the blackout windows must resume within one hop of the media returning.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.loss_trial import Phase, TrialResult, run_trial
from tests.support.lossy_link import LossyLink, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
AVFUSION = ROOT / "engines" / "bundled" / "avfusion" / "model.onnx"
LOSS_PCT = 5.0
BLACKOUT_S = 2.0


def _why_not() -> str | None:
    if reason := unavailable():
        return reason
    missing = [tool for tool in ("redis-server", "curl") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (make system installs them)"
    if not AVFUSION.exists():
        return f"bundled avfusion model not trained yet ({AVFUSION} absent)"
    return None


def _around(trial: TrialResult, t0: float) -> str:
    """The windows near `t0`, for assertion messages."""
    rows = []
    for m in sorted(trial.scenes, key=lambda m: m["window"]["end"]):
        if abs(m["window"]["end"] - t0) < 3.0:
            rows.append(
                f"  end {m['window']['end'] - t0:+.2f} s, capture-to-publish "
                f"{m['latency_ms']['capture_to_publish']:.0f} ms, missing {m.get('missing', [])}"
            )
    return "\n".join(rows)


# Real-time bounds on a shared 2-core machine: one stall elsewhere can miss them; a rerun
# must pass the same bounds (every failed attempt is still reported).
@pytest.mark.flaky(reruns=1, reruns_delay=1)
def test_loss_and_blackout_on_a_real_udp_path() -> None:
    if reason := _why_not():
        pytest.skip(reason)
    link = LossyLink().create()
    try:
        trial = run_trial(
            link,
            [
                Phase(0.0, name="clean"),
                Phase(2.0, LOSS_PCT, "both", name="loss"),
                Phase(16.0, blackout=True, name="blackout"),
                Phase(16.0 + BLACKOUT_S, name="after"),
                Phase(23.0, name="end"),
            ],
        )
    finally:
        link.close()

    # 5 % of audio and video RTP lost: windows still cut on time, the gaps carried in them
    loss = trial.summary(1)
    print(f"5 % loss on both: {loss}")
    assert trial.counter("scenestream_rtp_packets_lost_total", kind="audio") > 0, trial.log
    assert trial.counter("scenestream_rtp_packets_lost_total", kind="video") > 0, trial.log
    assert loss["published_pct"] >= 95.0, loss
    assert loss["p95_ms"] <= trial.budget_ms, loss
    assert loss["with_gaps"] > 0, "lost audio should show as gaps in the windows"

    # a 2 s blackout of all UDP: the first grid end after the media returns is at most one hop
    # away, and its window is published (50 ms for the rule change to take effect)
    _, media_back = trial.span(2)
    ends = sorted(m["window"]["end"] for m in trial.scenes if m["window"]["end"] > media_back)
    assert ends, f"no window after the blackout:\n{trial.log}"
    print(f"first window after the blackout ends {ends[0] - media_back:.2f} s after media returned")
    assert ends[0] <= media_back + trial.hop_s + 0.05, _around(trial, media_back)
    after = trial.summary(3)
    assert after["published_pct"] >= 90.0, after
