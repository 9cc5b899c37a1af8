"""Whole-service scene tests: scripted scenes sent over loopback WebRTC by `scenestream send`
(its own process) to the real service, whose Redis output is checked against the scene's truth.

Times are on the capture clock relative to the truth's `start` (the capture time of scene time 0).
Hop, budget and hold are read from the engines and the thresholds the service actually runs with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engines.lab.scenes.base import FUSED_LABELS
from stream.publish.messages import InvalidMessage, validate
from tests.e2e.conftest import (
    AVFUSION_MISSING,
    HAVE_AVFUSION,
    ServiceThread,
    Tap,
    percentile,
    send_scene,
    tap,
    wait_offline,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]

needs_avfusion = pytest.mark.skipif(not HAVE_AVFUSION, reason=AVFUSION_MISSING)
SCENE_S = 12.0  # every script used here is 12 s long


async def _run(service: ServiceThread, stream: str, scenario: str, tmp: Path) -> tuple[Tap, Any]:
    async with tap(service.redis_url, stream) as t:
        truth = await send_scene(
            service.whip_url(stream), scenario, tmp / "truth.json", seconds=SCENE_S + 1
        )
        await wait_offline(t)
    return t, truth


def _assert_all_valid(t: Tap) -> None:
    assert t.scenes, "no scene message reached Redis"
    assert t.status, "no status message reached Redis"
    bad = []
    for msg in t.all():
        try:
            validate(msg)
        except InvalidMessage as exc:
            bad.append(f"{exc}: {msg}")
    assert not bad, "messages failing the schema:\n" + "\n".join(bad[:5])


def _assert_p99_within_budget(service: ServiceThread, t: Tap, engine: str) -> float:
    latencies = [m["latency_ms"]["capture_to_publish"] for m in t.scenes_of(engine)]
    assert latencies, f"no scene message from {engine}"
    p99 = percentile(latencies, 0.99)
    budget_ms = service.engine(engine).budget_s * 1000.0
    print(f"{engine}: {len(latencies)} windows, capture-to-publish p99 {p99:.0f} ms")
    assert p99 <= budget_ms, f"{engine} p99 capture-to-publish {p99:.0f} ms > budget {budget_ms}"
    return p99


def _timeline(t: Tap, t0: float) -> str:
    return "\n".join(
        f"  {m['engine']:<10} {m['label']:<18} {m['phase']:<6} start {m['start'] - t0:6.2f} s"
        + (f" end {m['end'] - t0:6.2f} s" if m.get("end") is not None else "")
        + f" (published at {m['published_at'] - t0:6.2f} s)"
        for m in t.log
    )


@needs_avfusion
# Real-time bounds on a shared 2-core machine: one stall elsewhere can miss them; a rerun
# must pass the same bounds (every failed attempt is still reported).
@pytest.mark.flaky(reruns=2, reruns_delay=1)
async def test_emergency_scene_raises_one_emergency_vehicle_event_on_time(
    service: ServiceThread, tmp_path: Path
) -> None:
    t, truth = await _run(service, "e2e-emergency", "emergency", tmp_path)
    t0 = float(truth["start"])
    print("events:\n" + _timeline(t, t0))
    _assert_all_valid(t)
    engine = service.engine("avfusion")
    hop, budget = engine.spec.hop_s, engine.budget_s
    hold = service.thresholds("avfusion", "emergency_vehicle").hold_s
    [truth_iv] = [iv for iv in truth["intervals"] if iv["label"] == "emergency_vehicle"]
    begin, finish = truth_iv["start"] - t0, truth_iv["end"] - t0
    assert (begin, finish) == (4.0, 9.0), truth_iv

    starts = t.events_of("emergency_vehicle", "start")
    ends = t.events_of("emergency_vehicle", "end")
    assert len(starts) == 1, f"expected one emergency_vehicle start:\n{_timeline(t, t0)}"
    assert len(ends) == 1, _timeline(t, t0)
    assert ends[0]["id"] == starts[0]["id"], _timeline(t, t0)
    start_s, end_s = starts[0]["start"] - t0, ends[0]["end"] - t0
    assert begin <= start_s <= begin + hop + budget, (start_s, begin, hop, budget)
    assert finish <= end_s <= finish + hold + budget, (end_s, finish, hold, budget)
    other_fused = {m["label"] for m in t.log if m["label"] in FUSED_LABELS} - {"emergency_vehicle"}
    assert not other_fused, f"unexpected fused events {other_fused}:\n{_timeline(t, t0)}"
    _assert_p99_within_budget(service, t, "avfusion")


@needs_avfusion
async def test_radio_siren_raises_no_emergency_vehicle(
    service: ServiceThread, tmp_path: Path
) -> None:
    t, truth = await _run(service, "e2e-radio", "radio-siren", tmp_path)
    print("events:\n" + _timeline(t, float(truth["start"])))
    _assert_all_valid(t)
    assert not t.events_of("emergency_vehicle", "start"), _timeline(t, float(truth["start"]))
    assert t.scenes_of("avfusion"), "avfusion published no scene message"


async def test_conversation_raises_speech_events_from_silero(
    service: ServiceThread, tmp_path: Path
) -> None:
    t, truth = await _run(service, "e2e-talk", "conversation", tmp_path)
    t0 = float(truth["start"])
    print("events:\n" + _timeline(t, t0))
    _assert_all_valid(t)
    speech = [m for m in t.events_of("speech", "start") if m["engine"] == "silero-vad"]
    assert speech, f"no speech event from silero-vad:\n{_timeline(t, t0)}"
    [truth_iv] = [iv for iv in truth["intervals"] if iv["label"] == "speech"]
    first = speech[0]["start"] - t0
    assert truth_iv["start_s"] - 0.5 <= first <= truth_iv["end_s"], (first, truth_iv)
    _assert_p99_within_budget(service, t, "silero-vad")
