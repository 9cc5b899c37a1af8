"""The bounded outbox: order, drop preference, retry after failure, every drop counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.publish.outbox import Kind, Outbox, Outgoing

pytestmark = pytest.mark.unit


def msg(kind: Kind, n: int) -> Outgoing:
    return Outgoing(kind, {"n": n})


def ns(items: list[Outgoing]) -> list[int]:
    return [i.message["n"] for i in items]


def test_messages_leave_in_order() -> None:
    box = Outbox(10)
    for n in range(5):
        box.push(msg("scene" if n % 2 else "event", n))
    assert ns(box.take(3)) == [0, 1, 2]
    box.done()
    assert ns(box.take(10)) == [3, 4]
    box.done()
    assert len(box) == 0


def test_full_outbox_drops_oldest_scene_first_and_counts() -> None:
    box = Outbox(4)
    box.push(msg("event", 0))
    box.push(msg("scene", 1))
    box.push(msg("status", 2))
    box.push(msg("scene", 3))
    dropped = box.push(msg("event", 4))
    assert ns(dropped) == [1]
    dropped = box.push(msg("scene", 5))
    assert ns(dropped) == [3]
    assert box.dropped == {"scene": 2}
    assert ns(box.take(10)) == [0, 2, 4, 5]


def test_without_scene_messages_the_oldest_event_goes() -> None:
    box = Outbox(2)
    box.push(msg("event", 0))
    box.push(msg("status", 1))
    assert ns(box.push(msg("event", 2))) == [0]
    assert box.dropped == {"event": 1}


def test_failed_batch_goes_back_in_front_in_order() -> None:
    box = Outbox(10)
    for n in range(4):
        box.push(msg("event", n))
    assert ns(box.take(2)) == [0, 1]
    box.push(msg("event", 4))
    assert box.failed() == []
    assert ns(box.take(10)) == [0, 1, 2, 3, 4]


def test_in_flight_counts_toward_capacity_and_is_never_dropped() -> None:
    box = Outbox(3)
    for n in range(3):
        box.push(msg("scene", n))
    box.take(2)
    assert ns(box.push(msg("scene", 3))) == [2]  # waiting scene dropped, in-flight kept
    assert box.failed() == []  # back in front, still within capacity
    assert ns(box.take(10)) == [0, 1, 3]
    assert ns(box.push(msg("scene", 4))) == [4]  # all three in flight: the newcomer goes
    box.failed()
    assert ns(box.take(10)) == [0, 1, 3]


def test_take_twice_without_done_is_an_error() -> None:
    box = Outbox(3)
    box.push(msg("scene", 0))
    box.take(1)
    with pytest.raises(RuntimeError):
        box.take(1)


def test_drain_returns_everything_unacknowledged() -> None:
    box = Outbox(5)
    for n in range(3):
        box.push(msg("event", n))
    box.take(1)
    assert ns(box.drain()) == [0, 1, 2]
    assert len(box) == 0


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.sampled_from(["scene", "event", "status"]),
            st.tuples(st.just("take"), st.integers(1, 5), st.booleans()),
        ),
        max_size=80,
    ),
    capacity=st.integers(1, 8),
)
def test_nothing_lost_uncounted_and_order_kept(
    ops: list[str | tuple[str, int, bool]], capacity: int
) -> None:
    box = Outbox(capacity)
    pushed: list[Outgoing] = []
    sent: list[Outgoing] = []
    dropped: list[Outgoing] = []
    for n, op in enumerate(ops):
        if isinstance(op, str):
            item = Outgoing(op, {"n": n})  # type: ignore[arg-type]
            pushed.append(item)
            dropped += box.push(item)
        else:
            _, limit, ok = op
            batch = box.take(limit)
            if ok:
                sent += batch
                box.done()
            else:
                dropped += box.failed()
        assert len(box) <= capacity
    rest = box.drain()
    assert sorted(ns(sent + dropped + rest)) == sorted(ns(pushed))
    assert ns(sent + rest) == sorted(ns(sent + rest))  # delivery order = push order
    assert sum(box.dropped.values()) == len(dropped)
