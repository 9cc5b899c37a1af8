"""Reconnect backoff of pulled cameras."""

from __future__ import annotations

import pytest

from stream.ingest.backoff import Backoff


def test_doubles_up_to_the_ceiling() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.failures == 6


def test_reset_starts_over() -> None:
    backoff = Backoff(1.0, 30.0, jitter=0.0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_jitter_stays_within_its_fraction_and_the_ceiling(draw: float) -> None:
    backoff = Backoff(1.0, 2.0, jitter=0.2, rng=lambda: draw)
    first = backoff.next_delay()
    assert 0.8 <= first <= 1.2
    assert first == pytest.approx(1.0 + 0.2 * (2 * draw - 1))
    backoff.next_delay()
    assert backoff.next_delay() <= 2.0  # the ceiling holds with jitter too


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(5.0, 1.0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(1.0, 2.0, jitter=1.5)
