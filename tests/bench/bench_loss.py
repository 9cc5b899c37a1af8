"""Loss and jitter tolerance on the real UDP path: the loss table of the README.

    sudo python tests/bench/bench_loss.py [--seconds 10] [--baseline /path/to/other/checkout]

One service (`scenestream serve`, avfusion only, redis-server) runs in a network namespace and
one `scenestream send --scenario emergency --loop` in another (`tests.support.lossy_link`); a
third namespace in between runs the userspace delay bridge for the delay-variation rows (the
kernel here has no `sch_netem`). While the scene plays, the conditions follow each other for
`--seconds` each, with 2 s of clean media between them: random loss of 1, 5 and 10 % of the audio,
the video and both (nftables, sender-to-server RTP only), 10 and 50 ms of delay variation (uniform,
which reorders packets), and a 2 s blackout of all UDP. For each condition: the windows whose
whole span lay in it, the share published, the share published within the budget, capture-to-
publish p95, and the windows shed as stale (scrapes of /metrics at the boundaries). Needs root.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.loss_trial import Phase, TrialResult, run_trial  # noqa: E402
from tests.support.lossy_link import LossyLink, unavailable  # noqa: E402

RECOVER_S = 2.0
BLACKOUT_S = 2.0
AFTER_S = 5.0


def conditions(seconds: float) -> list[Phase]:
    """The schedule: each condition, then clean media to recover, then the blackout."""
    plan: list[tuple[str, dict[str, Any]]] = [("clean", {})]
    for pct in (1.0, 5.0, 10.0):
        for media in ("audio", "video", "both"):
            plan.append((f"{pct:g} % loss, {media}", {"loss_pct": pct, "media": media}))
    plan += [(f"{ms:g} ms delay variation", {"jitter_ms": ms}) for ms in (10.0, 50.0)]
    phases, at = [], 0.0
    for name, params in plan:
        phases.append(Phase(at, name=name, **params))
        phases.append(Phase(at + seconds, name="recover"))
        at += seconds + RECOVER_S
    phases.append(Phase(at, blackout=True, name="2 s blackout"))
    phases.append(Phase(at + BLACKOUT_S, name="after the blackout"))
    phases.append(Phase(at + BLACKOUT_S + AFTER_S, name="end"))
    return phases


def run(seconds: float, root: Path) -> list[dict[str, Any]]:
    """One trial through the schedule; a row per condition."""
    link = LossyLink().create(bridged=True)
    try:
        link.start_bridge()
        result = run_trial(link, conditions(seconds), root=root)
    finally:
        link.close()
    return _rows(result)


def _rows(result: TrialResult) -> list[dict[str, Any]]:
    rows = []
    for index, (phase, _) in enumerate(result.phase_starts):
        if phase.name in ("recover", "end"):
            continue
        row = result.summary(index)
        row["condition"] = phase.name
        stale = result.phase_counter(index, "scenestream_windows_total", outcome="stale")
        row["stale"] = int(stale)
        row["lost_packets"] = int(result.phase_counter(index, "scenestream_rtp_packets_lost_total"))
        if phase.blackout:
            _, back = result.span(index)
            later = sorted(m["window"]["end"] for m in result.scenes if m["window"]["end"] > back)
            row["resume_s"] = round(later[0] - back, 2) if later else None
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        f"| condition ({seconds:g} s each) | windows | published | on time | p95 capture→publish"
        " | stale | lost RTP packets |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["condition"] == "2 s blackout":
            resume = r.get("resume_s")
            lines.append(
                f"| 2 s blackout | — | first window ends {resume} s after media returns | — | — "
                f"| {r['stale']} | {r['lost_packets']} |"
            )
            continue
        p95 = "—" if r["p95_ms"] != r["p95_ms"] else f"{r['p95_ms']:.0f} ms"
        lines.append(
            f"| {r['condition']} | {r['expected']} | {r['published_pct']:.0f} % | "
            f"{r['on_time_pct']:.0f} % | {p95} | {r['stale']} | {r['lost_packets']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per condition")
    parser.add_argument("--baseline", type=Path, help="also run this checkout (e.g. main)")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "loss")
    args = parser.parse_args()
    if reason := unavailable():
        sys.exit(f"bench_loss: {reason}")
    args.out.mkdir(parents=True, exist_ok=True)
    for label, root in (("this tree", ROOT), ("baseline", args.baseline)):
        if root is None:
            continue
        rows = run(args.seconds, root.resolve())
        table = markdown(rows, args.seconds)
        print(f"\n{label} ({root}):\n{table}\n", flush=True)
        name = "loss" if label == "this tree" else "loss-baseline"
        (args.out / f"{name}.md").write_text(table + "\n")
        (args.out / f"{name}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
