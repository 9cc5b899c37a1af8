"""Event lifecycle from scores: hysteresis, minimum duration, hold, updates, ids."""

from __future__ import annotations

import pytest

from engines.config import LabelThresholds
from engines.events import DEFAULT_THRESHOLDS, Event, EventTracker, resolve_thresholds

pytestmark = pytest.mark.unit

HOP = 0.5


def lt(**kw: float) -> LabelThresholds:
    return LabelThresholds.model_validate(kw)


def run(
    tracker: EventTracker, scores: list[float], label: str = "siren", t0: float = 100.0
) -> list[tuple[float, Event]]:
    """Feed one score per hop; return (time, event) pairs."""
    out: list[tuple[float, Event]] = []
    for i, s in enumerate(scores):
        t = t0 + i * HOP
        out.extend((t, e) for e in tracker.observe(t, {label: s}))
    return out


def tracker(**th: float) -> EventTracker:
    """A tracker for `siren` with updates off (update_delta > any change)."""
    return EventTracker("cam1", {"siren": lt(**th)}, update_delta=2.0)


def test_start_and_end_with_hold_use_crossing_times() -> None:
    tr = tracker(on=0.6, off=0.4, min_duration_s=0.0, hold_s=1.0)
    evs = run(tr, [0.1, 0.2, 0.9, 0.95, 0.9, 0.3, 0.2, 0.1, 0.1])
    phases = [(e.phase, t) for t, e in evs]
    assert phases == [("start", 101.0), ("end", 103.5)]
    start, end = evs[0][1], evs[1][1]
    assert start.start == 101.0
    assert start.end is None
    assert end.start == 101.0
    assert end.end == 102.5
    assert end.peak_score == pytest.approx(0.95)
    assert start.id == end.id == "cam1-siren-1"


def test_hysteresis_keeps_event_between_off_and_on() -> None:
    tr = tracker(on=0.6, off=0.4, hold_s=0.0)
    evs = run(tr, [0.7, 0.5, 0.45, 0.55, 0.41, 0.39])
    assert [e.phase for _, e in evs] == ["start", "end"]
    assert evs[1][0] == 102.5


def test_below_on_never_starts() -> None:
    tr = tracker(on=0.6, off=0.4)
    assert run(tr, [0.59, 0.5, 0.0, 0.59]) == []


def test_min_duration_filters_blips_and_start_is_first_crossing() -> None:
    tr = tracker(on=0.6, off=0.4, min_duration_s=1.0, hold_s=0.0)
    evs = run(tr, [0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9])
    assert [e.phase for _, e in evs] == ["start"]
    t, e = evs[0]
    assert t == 102.5  # 1 s after the crossing at 101.5
    assert e.start == 101.5


def test_score_back_above_off_during_hold_continues_event() -> None:
    tr = tracker(on=0.6, off=0.4, hold_s=1.0)
    evs = run(tr, [0.9, 0.3, 0.3, 0.5, 0.3, 0.3, 0.3])
    assert [e.phase for _, e in evs] == ["start", "end"]
    assert evs[1][1].end == 102.0
    assert evs[1][0] == 103.0


def test_updates_on_material_change_are_rate_limited() -> None:
    tr = EventTracker(
        "cam1", {"siren": lt(on=0.5, off=0.3)}, update_delta=0.1, update_interval_s=1.0
    )
    # 0.6 start; 0.8 after 0.5 s (too soon); 0.8 at 1.0 s: update; small wiggles: none.
    evs = run(tr, [0.6, 0.8, 0.8, 0.82, 0.85, 0.79, 0.81])
    phases = [(e.phase, t) for t, e in evs]
    assert phases == [("start", 100.0), ("update", 101.0)]
    assert evs[1][1].score == 0.8
    assert evs[1][1].peak_score == 0.8


def test_ids_count_per_label_and_continue_across_trackers() -> None:
    th = {"siren": lt(on=0.6, off=0.4, hold_s=0.0)}
    tr = EventTracker("cam1", th)
    evs = run(tr, [0.9, 0.1, 0.9, 0.1])
    assert [e.id for _, e in evs] == ["cam1-siren-1"] * 2 + ["cam1-siren-2"] * 2
    shared: dict[str, int] = {}
    first = EventTracker("cam1", th, counters=shared)
    other_engine = EventTracker("cam1", th, counters=shared)
    assert run(first, [0.9])[0][1].id == "cam1-siren-1"
    assert run(other_engine, [0.9])[0][1].id == "cam1-siren-2"
    again = EventTracker("cam1", th, counters=shared)  # the stream reconnected
    assert run(again, [0.9], t0=200.0)[0][1].id == "cam1-siren-3"


def test_close_ends_active_events_and_drops_pending() -> None:
    tr = EventTracker(
        "cam1",
        {
            "siren": lt(on=0.6, off=0.4, hold_s=5.0),
            "horn": lt(on=0.6, off=0.4, min_duration_s=5.0),
        },
    )
    tr.observe(100.0, {"siren": 0.9, "horn": 0.9})
    tr.observe(100.5, {"siren": 0.2, "horn": 0.9})
    closed = tr.close(101.0)
    assert [(e.label, e.phase, e.end) for e in closed] == [("siren", "end", 100.5)]
    assert tr.close(102.0) == []
    assert tr.active_labels() == []


def test_out_of_order_windows_are_ignored() -> None:
    tr = tracker(on=0.6, off=0.4)
    assert tr.observe(101.0, {"siren": 0.1}) == []
    assert tr.observe(100.5, {"siren": 0.9}) == []
    assert tr.active_labels() == []


def test_thresholds_config_beats_manifest_beats_default() -> None:
    cfg = {"siren": lt(on=0.8, off=0.5)}
    manifest = {"siren": lt(on=0.7), "horn": lt(on=0.65)}
    out = resolve_thresholds(["siren", "horn", "speech"], configured=cfg, manifest=manifest)
    assert out["siren"].on == 0.8
    assert out["horn"].on == 0.65
    assert out["speech"] == DEFAULT_THRESHOLDS


def test_off_above_on_is_rejected() -> None:
    with pytest.raises(ValueError, match="off"):
        EventTracker("cam1", {"siren": lt(on=0.5, off=0.7)})
