"""`StreamReservation`: the slot a POST takes is given back on every path but `commit()`."""

from __future__ import annotations

import asyncio

import pytest

from stream.http.admission import AtCapacity, StreamAdmission, StreamLive
from stream.http.reservation import StreamReservation
from stream.metrics import Metrics

pytestmark = pytest.mark.unit


def admission(max_streams: int = 2) -> StreamAdmission:
    return StreamAdmission(max_streams, Metrics(process=False))


@pytest.mark.parametrize("error", [ValueError("boom"), asyncio.CancelledError()])
async def test_any_exception_gives_the_slot_back(error: BaseException) -> None:
    slots = admission()
    held: list[int] = []

    async def post() -> None:
        async with StreamReservation("cam1", slots, None):
            held.append(len(slots))
            raise error

    with pytest.raises(type(error)):
        await post()
    assert held == [1]
    assert len(slots) == 0


async def test_leaving_without_commit_gives_the_slot_back_and_commit_keeps_it() -> None:
    slots = admission()
    async with StreamReservation("cam1", slots, None):
        pass
    assert len(slots) == 0
    async with StreamReservation("cam1", slots, None) as reservation:
        reservation.commit()
    assert len(slots) == 1


async def test_live_stream_and_capacity_are_refused_before_anything_is_held() -> None:
    slots = admission(max_streams=1)
    async with StreamReservation("cam1", slots, None) as reservation:
        reservation.commit()
    with pytest.raises(StreamLive):
        async with StreamReservation("cam1", slots, None):
            pass
    assert slots.full_for("cam2")
    with pytest.raises(AtCapacity):
        async with StreamReservation("cam2", slots, None):
            pass
    assert len(slots) == 1
