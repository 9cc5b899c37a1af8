"""The per-stream tracker and time to contact on synthetic box sequences."""

from __future__ import annotations

import pytest

from engines.detect.decode import Detection
from engines.detect.tracker import Tracker, TrackerParams
from engines.detect.ttc import growth_rate, time_to_contact

DT = 0.1


def det(cx: float, cy: float, w: float, h: float, score: float = 0.9, cls: int = 0) -> Detection:
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return Detection(box=box, score=score, class_id=cls, class_name=f"c{cls}", label=f"c{cls}")


def test_crossing_tracks_keep_their_ids() -> None:
    tracker = Tracker(TrackerParams(min_hits=2, max_age_s=0.5))
    ids_at: dict[int, tuple[float, float]] = {}
    for k in range(30):
        t = k * DT
        # Same class, crossing at x = 0.5 around k = 15, one a little lower and taller.
        a = det(0.2 + 0.02 * k, 0.50, 0.10, 0.20)
        b = det(0.8 - 0.02 * k, 0.52, 0.10, 0.24)
        step = tracker.update(t, [a, b])
        for track in step.tracks:
            ids_at.setdefault(track.id, (track.box[0], t))
        if k == 29:
            by_id = {tr.id: tr.box for tr in step.tracks}
    assert sorted(by_id) == [1, 2]
    # Track 1 started at the left and must end at the right, track 2 the other way round.
    assert ids_at[1][0] < 0.3
    assert by_id[1][0] > 0.7
    assert ids_at[2][0] > 0.6
    assert by_id[2][0] < 0.3


def test_occlusion_gap_keeps_the_id_and_long_gap_ends_it() -> None:
    tracker = Tracker(TrackerParams(min_hits=2, max_age_s=0.5))
    started, ended = [], []
    for k in range(30):
        t = k * DT
        dets = [] if 10 <= k < 14 or k >= 20 else [det(0.1 + 0.01 * k, 0.5, 0.1, 0.1)]
        if k == 15:  # partly hidden: a low-score detection keeps the track alive
            dets = [det(0.1 + 0.01 * k, 0.5, 0.1, 0.1, score=0.2)]
        step = tracker.update(t, dets)
        started += [(tr.id, t) for tr in step.started]
        ended += [(tr.id, t) for tr in step.ended]
        if k == 12:
            assert [tr.state for tr in step.tracks] == ["lost"]
        if k == 15:
            assert [(tr.id, tr.state) for tr in step.tracks] == [(1, "confirmed")]
    assert started == [(1, pytest.approx(0.1))]
    # Last seen at k = 19; ended once unseen for more than max_age_s.
    assert ended == [(1, pytest.approx(2.5))]


def test_low_score_detection_never_starts_a_track_and_blips_are_dropped() -> None:
    tracker = Tracker(TrackerParams(min_hits=3))
    assert tracker.update(0.0, [det(0.5, 0.5, 0.1, 0.1, score=0.3)]).tracks == []
    assert tracker.tracks == []
    tracker.update(0.1, [det(0.5, 0.5, 0.1, 0.1)])
    tracker.update(0.2, [det(0.5, 0.5, 0.1, 0.1)])
    step = tracker.update(0.3, [])  # unconfirmed after 2 hits: forgotten, never announced
    assert step.started == []
    assert step.ended == []
    assert tracker.tracks == []
    assert tracker.update(0.25, [det(0.5, 0.5, 0.1, 0.1)]).tracks == []  # late frame ignored


def test_classes_are_not_mixed() -> None:
    tracker = Tracker(TrackerParams(min_hits=1))
    tracker.update(0.0, [det(0.5, 0.5, 0.2, 0.2, cls=0)])
    step = tracker.update(0.1, [det(0.5, 0.5, 0.2, 0.2, cls=1)])
    assert [tr.id for tr in step.started] == [2]
    assert [tr.state for tr in step.tracks] == ["lost", "confirmed"]
    assert [tr.id for tr in tracker.close()] == [1, 2]


def test_ttc_of_a_box_growing_at_a_known_rate() -> None:
    # An object 20 m away closing at 5 m/s: contact at t = 4 s; its image size is 1 / distance.
    contact = 4.0
    times = [k * DT for k in range(11)]
    sizes = [0.5 / (20.0 - 5.0 * t) for t in times]
    assert time_to_contact(times, sizes) == pytest.approx(contact - times[-1], rel=0.05)
    assert time_to_contact(times, list(reversed(sizes))) is None  # receding
    assert time_to_contact(times, [0.1] * len(times)) is None  # steady
    assert growth_rate(times[:2], sizes[:2]) is None


def test_track_ttc_through_the_tracker() -> None:
    tracker = Tracker(TrackerParams(min_hits=2, ttc_window_s=1.0))
    contact = 3.0
    ttc = None
    for k in range(15):
        t = k * DT
        side = 0.02 * contact / (contact - t)  # an object 3 s from contact at t = 0
        step = tracker.update(t, [det(0.5, 0.5, side, side)])
        if step.tracks:
            ttc = step.tracks[0].ttc(1.0)
    assert ttc == pytest.approx(contact - 1.4, rel=0.1)
