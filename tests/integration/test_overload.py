"""Admission by headroom against a real worker: a loaded worker refuses newcomers with `503` +
`Retry-After` (counted by reason) while its admitted stream keeps streaming, and admits again
once the load is gone. The load is injected deterministically: a task on the worker's own event
loop that blocks it for 150 ms out of every 200 ms, so that every timer fires late."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from stream.sender.whip_client import WhipPublisher
from tests.integration.test_whip import post, real_offer, scene_tracks
from tests.support.whip_support import Service, running_service, settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


async def _block_the_loop(stop: asyncio.Event, turns: list[int] | None = None) -> None:
    while not stop.is_set():
        time.sleep(0.15)  # noqa: ASYNC251 - the point: a stalled event loop
        await asyncio.sleep(0.05)
        if turns is not None:
            turns[0] += 1


async def _until_live(service: Service, n: int) -> None:
    def live() -> bool:
        return sum(s.state == "live" for s in service.registry.sessions()) == n

    await wait_for(live, 10, f"{n} live sessions")


async def _refused(url: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith('scenestream_streams_refused_total{reason="loop_lag"}'):
            return float(line.split()[-1])
    return 0.0


async def test_loaded_worker_refuses_newcomers_with_503_then_admits_again() -> None:
    config = settings(server={"admission": "headroom", "max_streams": 3})
    async with running_service(config) as service:
        monitor = service.worker.load
        assert monitor is not None
        first = WhipPublisher(service.whip("carried"))
        await first.publish(scene_tracks(size=(160, 120)))
        stop = asyncio.Event()
        hog = asyncio.create_task(_block_the_loop(stop), name="loop-hog")
        try:
            await wait_for(lambda: monitor.refusal() == "loop_lag", 10, "the lag to show")
            pc, offer = await real_offer()
            status, headers, body = await post(service, "newcomer", offer)
            await pc.close()
            assert status == 503, body
            assert int(headers["Retry-After"]) > 0
            assert "overloaded (loop_lag)" in json.loads(body)["detail"]
            assert [s.stream for s in service.registry.sessions()] == ["carried"]
            assert await _refused(service.url) == 1.0
        finally:
            stop.set()
            await hog
        # The lag leaves the 5 s horizon: room again.
        await wait_for(lambda: monitor.refusal() is None, 15, "the headroom to return")
        second = WhipPublisher(service.whip("newcomer"))
        await second.publish(scene_tracks(size=(160, 120)))
        assert sorted(s.stream for s in service.registry.sessions()) == ["carried", "newcomer"]
        await _until_live(service, 2)
        await second.close()
        await first.close()


async def test_count_admission_ignores_the_load() -> None:
    config = settings(server={"admission": "count", "max_streams": 3})
    async with running_service(config) as service:
        assert service.worker.load is None
        first = WhipPublisher(service.whip("carried"))
        await first.publish(scene_tracks(size=(160, 120)))
        stop, hog_turns = asyncio.Event(), [0]
        hog = asyncio.create_task(_block_the_loop(stop, hog_turns), name="loop-hog")
        try:
            await wait_for(lambda: hog_turns[0] >= 5, 10, "the loop to be blocked a while")
            second = WhipPublisher(service.whip("newcomer"))
            await second.publish(scene_tracks(size=(160, 120)))
        finally:
            stop.set()
            await hog
        await _until_live(service, 2)
        await second.close()
        await first.close()
