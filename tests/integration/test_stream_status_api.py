"""`/api/streams` tells what the status channel tells: each live stream's status and reason
(the scheduler's `degraded` included), its capture clock, and the last sessions that ended."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from engines.lab.scenes.sync import SyncScene
from stream.sender.tracks import SceneAudioTrack, SceneClock, SceneVideoTrack
from stream.sender.whip_client import WhipPublisher
from tests.support.whip_support import running_service, wait_for, wait_for_async

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


async def _api(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/streams") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_api_streams_shows_status_reason_clock_and_closed_sessions() -> None:
    async with running_service() as service:
        scene, clock = SyncScene(), SceneClock()
        publisher = WhipPublisher(service.whip("cam1"))
        await publisher.publish([SceneVideoTrack(scene, clock, width=320, height=240),
                                 SceneAudioTrack(scene, clock)])  # fmt: skip
        await wait_for(lambda: ("online", "connected") in service.states("cam1"), 5, "online")

        async def row_says(**expected: str) -> bool:
            rows = (await _api(service.url))["streams"]
            return bool(rows) and all(rows[0].get(k) == v for k, v in expected.items())

        # aiortc's Sender Reports are on the wall clock: the stream goes from arrival to sender
        await wait_for_async(lambda: row_says(status="online", reason="connected", clock="sender"),
                             10, "online on the sender clock")  # fmt: skip
        # what the scheduler reports about a live stream shows up too
        service.worker.admission.stream_status("cam1", "degraded", "overloaded: 40% stale")
        assert await row_says(status="degraded", reason="overloaded: 40% stale")
        # what the live page sends a viewer who connects now
        assert service.worker.admission.statuses() == [
            ("cam1", "degraded", "overloaded: 40% stale")
        ]
        session = (await _api(service.url))["streams"][0]["session"]
        await publisher.close()
        body = await _api(service.url)
        assert body["streams"] == []
        assert service.worker.admission.statuses() == []
        assert body["closed"][0]["stream"] == "cam1"
        assert body["closed"][0]["session"] == session
        assert body["closed"][0]["reason"] == "deleted"
        # a status about a stream that is gone changes nothing
        service.worker.admission.stream_status("cam1", "online", "recovered")
        assert (await _api(service.url))["streams"] == []
