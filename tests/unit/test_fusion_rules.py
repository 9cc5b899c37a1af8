"""Fusion rules on recorded scene-message sequences (tests/fixtures/fusion, written by
tests/support/fusion_scenarios.py through the real interpretation stage), their configuration,
and the same rules live in the interpretation stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.events import DEFAULT_THRESHOLDS, Event
from engines.rules import FusedEvents, RulesConfig, observation_from_scene
from stream.config import ConfigError, Settings, load_settings
from stream.publish import messages as m
from tests.support.fusion_scenarios import T0, record

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "fusion"
LABELS_AT = {"tagger": "window", "detector": "end"}


def replay(name: str, rules: RulesConfig | None = None) -> list[Event]:
    """The rule events a recorded stream raises."""
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    active = (rules or RulesConfig()).active()
    fused = FusedEvents(
        f"fusion-{name}", active, dict.fromkeys([r.label for r in active], DEFAULT_THRESHOLDS)
    )
    events: list[Event] = []
    for line in lines:
        msg = m.decode(line)  # every recorded message is valid against the shipped schema
        events += fused.observe(observation_from_scene(msg, LABELS_AT[msg["engine"]]))
    return events + fused.close()


def starts(events: list[Event]) -> dict[str, float]:
    return {e.label: e.start - T0 for e in events if e.phase == "start"}


def test_recordings_hold_detections_and_tracks() -> None:
    msgs = [json.loads(x) for x in (FIXTURES / "collision.jsonl").read_text().splitlines()]
    tracks = [t for msg in msgs for t in msg.get("tracks", [])]
    assert {t["id"] for t in tracks} == {1}
    assert min(t["ttc_s"] for t in tracks if t["ttc_s"] is not None) < 0.5
    assert all("detections" not in msg for msg in msgs if msg["engine"] == "tagger")


def test_approaching_object_fires_when_time_to_contact_drops_under_3_s() -> None:
    # Contact at 8 s: the rule holds from 5 s on; no impact, no collision.
    fired = starts(replay("approaching"))
    assert set(fired) == {"approaching_object"}
    assert 4.75 <= fired["approaching_object"] <= 5.5


def test_collision_needs_a_fast_growing_track_then_an_impact() -> None:
    fired = starts(replay("collision"))
    assert set(fired) == {"approaching_object", "collision"}
    # The impact is heard at 6.0 s; the audio window reporting it arrives about a second later.
    assert 6.0 <= fired["collision"] <= 7.25
    assert "collision" not in starts(replay("impact-only"))  # an impact beside a parked car


def test_emergency_vehicle_needs_a_siren_and_a_vehicle() -> None:
    fired = starts(replay("emergency"))
    assert set(fired) == {"emergency_vehicle"}
    assert 3.0 <= fired["emergency_vehicle"] <= 3.75  # siren from 2 s, a vehicle tracked at 3.25 s
    assert starts(replay("radio-siren")) == {}  # a siren with nothing in view


def test_rules_are_configurable() -> None:
    rules = RulesConfig.model_validate(
        {"approaching_object": {"ttc_s": 1.0}, "emergency_vehicle": {"enabled": False}}
    )
    assert [r.label for r in rules.active()] == ["approaching_object", "collision"]
    fired = starts(replay("approaching", rules))
    assert 6.75 <= fired["approaching_object"] <= 7.5  # TTC under 1 s from 7 s
    assert starts(replay("emergency", rules)) == {}
    # auto: a rule whose label an engine already learns (avfusion) stays off.
    assert [r.label for r in RulesConfig().active({"collision"})] == [
        "approaching_object",
        "emergency_vehicle",
    ]


def test_rule_config_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[rules.collision]\nttc_s = -1\n")
    with pytest.raises(ConfigError, match=r"rules.collision.ttc_s"):
        load_settings(path)
    path.write_text("[rules.collision]\nttc = 1\n")
    with pytest.raises(ConfigError, match=r"rules.collision.ttc"):
        load_settings(path)
    path.write_text("[tracking]\nhigh_score = 0.3\nlow_score = 0.4\n")
    with pytest.raises(ConfigError, match="low_score"):
        load_settings(path)


def test_live_interpretation_raises_the_same_rule_events_and_valid_messages() -> None:
    scenes, events = record("collision")
    for msg in scenes + events:
        m.validate(msg)
    live = {(e["label"], e["phase"]): e["start"] - T0 for e in events if e["engine"] == "rules"}
    replayed = {(e.label, e.phase): e.start - T0 for e in replay("collision")}
    assert live == pytest.approx(replayed)
    track_events = [e for e in events if "track" in e]
    assert track_events[0]["phase"] == "start"
    assert track_events[-1]["phase"] == "end"
    assert {e["id"] for e in track_events} == {"fusion-collision-vehicle-track1"}
    assert {e["label"] for e in track_events} == {"vehicle"}


def test_rules_off_by_config() -> None:
    off = Settings.model_validate(
        {
            "rules": {
                k: {"enabled": False}
                for k in ("approaching_object", "collision", "emergency_vehicle")
            }
        }
    )
    _, events = record("collision", settings=off)
    assert not [e for e in events if e["engine"] == "rules"]
