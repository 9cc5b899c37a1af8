"""WHIP endpoint against real aiortc peers on loopback: contract answers and session lifecycle.

Every bad input from issue 2 gets its status and leaves no session, stream or task behind.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
import weakref
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from multidict import CIMultiDict

from engines.lab.scenes.sync import SyncScene
from stream.http import api
from stream.http.problems import problem_middleware
from stream.logs import FORMAT, ContextFormatter
from stream.sender.tracks import SceneAudioTrack, SceneClock, SceneVideoTrack
from stream.sender.whip_client import WhipPublisher
from tests.support.whip_support import (
    Service,
    running_service,
    settings,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


def scene_tracks(
    video: bool = True, audio: bool = True, size: tuple[int, int] = (320, 240)
) -> list[MediaStreamTrack]:
    scene, clock = SyncScene(), SceneClock()
    tracks: list[MediaStreamTrack] = []
    if video:
        tracks.append(SceneVideoTrack(scene, clock, width=size[0], height=size[1]))
    if audio:
        tracks.append(SceneAudioTrack(scene, clock))
    return tracks


async def real_offer(video: bool = True, audio: bool = True) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for track in scene_tracks(video, audio):
        pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def post(service: Service, stream: str, body: bytes | str, *,
               content_type: str = "application/sdp", headers: dict[str, str] | None = None
               ) -> tuple[int, CIMultiDict[str], str]:  # fmt: skip
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            service.whip(stream),
            data=body,
            headers={"Content-Type": content_type, **(headers or {})},
        ) as resp,  # fmt: skip
    ):
        return resp.status, CIMultiDict(resp.headers), await resp.text()


def assert_problem(status: int, headers: Mapping[str, str], body: str, expected: int) -> Any:
    assert status == expected, body
    assert headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == expected
    assert problem["detail"]
    return problem


def assert_nothing_left(service: Service) -> None:
    assert len(service.registry) == 0
    assert service.registry.sessions() == []


async def test_publish_online_api_streams_delete_offline() -> None:
    async with running_service() as service:
        publisher = WhipPublisher(service.whip("cam1"))
        await publisher.publish(scene_tracks())
        assert publisher.location is not None
        assert publisher.location.startswith(f"{service.url}/whip/cam1/")
        await wait_for(lambda: ("online", "connected") in service.states("cam1"), 5, "online")
        await wait_for(lambda: len(service.sink.windows) >= 2, 8, "windows")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{service.url}/api/streams") as resp:
                rows = (await resp.json())["streams"]
            assert [r["stream"] for r in rows] == ["cam1"]
            assert rows[0]["fps"] > 15
            assert rows[0]["windows"] >= 2
            assert "engines" not in rows[0]  # an ingest-only worker has no downstream
            async with http.get(f"{service.url}/metrics") as resp:
                text = await resp.text()
            assert 'scenestream_frames_received_total{kind="video"}' in text
            assert "scenestream_active_streams 1.0" in text
            location = publisher.location
            await publisher.close()
            assert service.states("cam1")[-1] == ("offline", "deleted")
            assert_nothing_left(service)
            assert service.sink.ended == ["cam1"]
            async with http.delete(location) as resp:  # double DELETE
                assert_problem(resp.status, resp.headers, await resp.text(), 404)


async def test_session_lifecycle_log_lines_carry_the_stream_and_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stream")
    async with running_service() as service:
        publisher = WhipPublisher(service.whip("logcam"))
        await publisher.publish(scene_tracks())
        await wait_for(lambda: ("online", "connected") in service.states("logcam"), 5, "online")
        assert publisher.location is not None
        session = publisher.location.rsplit("/", 1)[1]
        await publisher.close()
    formatter = ContextFormatter(FORMAT)
    lines = {r.getMessage(): formatter.format(r) for r in caplog.records}
    for message in ("session created", "stream online", "stream offline"):
        assert message in lines, sorted(lines)
        assert lines[message].endswith(f"{message} stream=logcam session={session}")
    # every line of the session's story names it (worker-wide lines, e.g. headroom, need not)
    sources = ("stream.http.whip", "stream.ingest.", "stream.publish.status")
    story = [r for r in caplog.records if r.name.startswith(sources)]
    assert len(story) >= 5  # created, online, offline and two status lines
    assert [r.getMessage() for r in story if getattr(r, "stream", None) != "logcam"] == []


async def test_post_answer_carries_location_etag_and_cors() -> None:
    config = settings(server={"cors_origins": ["https://app.example"]})
    async with running_service(config) as service:
        pc, offer = await real_offer()
        origin = {"Origin": "https://app.example"}
        status, headers, answer = await post(service, "cors1", offer, headers=origin)
        assert status == 201
        assert headers["Content-Type"].startswith("application/sdp")
        assert answer.startswith("v=0")
        assert headers["ETag"].startswith('"')
        assert "Location" in headers["Access-Control-Expose-Headers"]
        assert "ETag" in headers["Access-Control-Expose-Headers"]
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        async with aiohttp.ClientSession() as http:
            preflight = {**origin, "Access-Control-Request-Method": "POST"}
            async with http.options(service.whip("cors1"), headers=preflight) as resp:
                assert resp.status == 204
                assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            async with http.patch(service.url + headers["Location"], data="a=x") as resp:
                assert_problem(resp.status, resp.headers, await resp.text(), 405)
                assert "DELETE" in resp.headers["Allow"]
            async with http.delete(service.url + headers["Location"]) as resp:
                assert resp.status == 200
        await pc.close()
        assert_nothing_left(service)


async def test_refused_cors_origin_is_logged_once_per_origin(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no `server.cors_origins` (the default) a browser app elsewhere gets no CORS headers:
    the operator reads why once per origin, however often the browser retries."""
    caplog.set_level(logging.WARNING, logger="stream.http.cors")
    async with running_service() as service, aiohttp.ClientSession() as http:

        def refusals() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "stream.http.cors"]

        async def preflight(origin: str) -> None:
            ask = {"Origin": origin, "Access-Control-Request-Method": "POST"}
            async with http.options(service.whip("cam1"), headers=ask) as resp:
                assert resp.status == 204
                assert "Access-Control-Allow-Origin" not in resp.headers

        for _ in range(3):
            await preflight("https://app.example")
        async with http.get(
            f"{service.url}/api/streams", headers={"Origin": "https://app.example"}
        ):
            pass
        [line] = refusals()
        assert "'https://app.example'" in line
        assert "server.cors_origins" in line
        await preflight("http://other.example:3000")
        await preflight("http://other.example:3000")
        assert len(refusals()) == 2
        assert "'http://other.example:3000'" in refusals()[1]
        # the service's own page: a same-origin request carries Origin too, and is not refused
        same = {"Origin": service.url}
        async with http.get(f"{service.url}/api/streams", headers=same) as resp:
            assert resp.status == 200
        assert len(refusals()) == 2
        assert all(r.levelno == logging.WARNING for r in caplog.records if r.name.endswith("cors"))


H264_HIGH_VIDEO = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 100\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=1;profile-level-id=640032\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
    "a=fingerprint:sha-256 9A:AC:69:53:94:51:B6:02:41:FD:49:54:F7:AD:63:6F:56:F2:F6:F3:B8:B5:79:"
    "2E:8F:20:0C:E4:65:0A:31:B9\r\na=setup:actpass\r\n"
)


@pytest.mark.parametrize(
    ("stream", "body", "content_type", "expected"),
    [
        ("cam1", "", "application/sdp", 400),
        ("cam1", "hello, not SDP", "application/sdp", 400),
        ("cam1", '{"type": "offer"}', "application/sdp", 400),
        ("cam1", "v=0\r\n", "application/json", 415),
        ("cam1", "v=0\r\n" + "a=x\r\n" * 10_000, "application/sdp", 413),
        ("cam1", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "application/sdp", 422),
        ("cam1", H264_HIGH_VIDEO, "application/sdp", 422),
        ("cam:1", "v=0\r\n", "application/sdp", 400),
        ("cam*1", "v=0\r\n", "application/sdp", 400),
        ("cam 1", "v=0\r\n", "application/sdp", 400),
        ("-cam", "v=0\r\n", "application/sdp", 400),
    ],
)
async def test_bad_offers_get_their_status_and_leave_nothing(
    stream: str, body: str, content_type: str, expected: int
) -> None:
    async with running_service() as service:
        status, headers, text = await post(service, stream, body, content_type=content_type)
        assert_problem(status, headers, text, expected)
        assert_nothing_left(service)


async def test_tokens_conflict_capacity_and_unknown_session() -> None:
    config = settings(server={"tokens": ["s3cret"], "max_streams": 1})
    async with running_service(config) as service:
        pc, offer = await real_offer()
        auth = {"Authorization": "Bearer s3cret"}
        assert_problem(*await post(service, "a", offer), 401)
        wrong = {"Authorization": "Bearer s3cre"}
        assert_problem(*await post(service, "a", offer, headers=wrong), 401)
        status, headers, _ = await post(service, "a", offer, headers=auth)
        assert status == 201
        assert_problem(*await post(service, "a", offer, headers=auth), 409)
        status, full_headers, text = await post(service, "b", offer, headers=auth)
        assert_problem(status, full_headers, text, 503)
        assert int(full_headers["Retry-After"]) > 0
        async with aiohttp.ClientSession() as http:
            async with http.delete(service.whip("a") + "/nosuchsession", headers=auth) as resp:
                assert_problem(resp.status, resp.headers, await resp.text(), 404)
            async with http.delete(service.url + headers["Location"]) as resp:
                assert resp.status == 401  # the token is needed to delete, too
            async with http.delete(service.url + headers["Location"], headers=auth) as resp:
                assert resp.status == 200
        await pc.close()
        assert_nothing_left(service)


async def test_post_rate_limit_per_address() -> None:
    async with running_service(settings(server={"post_rate_per_minute": 3})) as service:
        statuses = [(await post(service, "r", "junk"))[0] for _ in range(4)]
        assert statuses == [400, 400, 400, 429]
        status, headers, text = await post(service, "r", "junk")
        assert_problem(status, headers, text, 429)
        assert int(headers["Retry-After"]) >= 1


async def test_client_that_never_completes_ice_is_freed_after_setup_timeout() -> None:
    config = settings(session={"setup_timeout_s": 1.0})
    async with running_service(config) as service:
        pc, offer = await real_offer()
        status, _, _ = await post(service, "ghost", offer)  # the answer is never applied
        assert status == 201
        assert len(service.registry) == 1
        await wait_for(lambda: len(service.registry) == 0, 4, "setup timeout")
        assert service.states("ghost") == [("offline", "setup timeout")]
        assert service.sink.ended == ["ghost"]
        await pc.close()


async def test_client_that_vanishes_is_cleaned_by_the_watchdog() -> None:
    config = settings(session={"media_timeout_s": 1.0})
    async with running_service(config) as service:
        tracks = scene_tracks()
        publisher = WhipPublisher(service.whip("gone"))
        await publisher.publish(tracks)
        await wait_for(lambda: ("online", "connected") in service.states("gone"), 5, "online")
        for track in tracks:  # media stops, the connection stays up: no DELETE, no BYE
            track.stop()
        await wait_for(lambda: len(service.registry) == 0, 5, "watchdog")
        assert service.states("gone")[-1] == ("offline", "no media")
        publisher.location = None  # nothing left to DELETE
        await publisher.close()


@pytest.mark.parametrize(("video", "audio"), [(True, False), (False, True)])
async def test_single_modality_offers_are_accepted_and_marked_missing(
    video: bool, audio: bool
) -> None:
    async with running_service() as service:
        publisher = WhipPublisher(service.whip("one"))
        await publisher.publish(scene_tracks(video=video, audio=audio))
        await wait_for(lambda: len(service.sink.windows) >= 2, 10, "windows")
        missing = {"audio"} if video else {"video"}
        assert all(w.missing == missing for w in service.sink.windows)
        window = service.sink.windows[-1]
        assert window.video is not None
        assert window.audio is not None  # zeros of the full shape, flagged missing
        assert window.video.shape == (30, 120, 160, 3)
        assert window.audio.shape == (16_000,)
        await publisher.close()
        assert_nothing_left(service)


async def test_resolution_change_mid_stream() -> None:
    async with running_service() as service:
        tracks = scene_tracks(size=(320, 240))
        publisher = WhipPublisher(service.whip("zoom"))
        await publisher.publish(tracks)
        await wait_for(lambda: len(service.sink.windows) >= 1, 8, "first window")
        video = tracks[0]
        assert isinstance(video, SceneVideoTrack)
        video.resize(640, 360)
        session = service.registry.sessions()[0]
        await wait_for(lambda: session.ingest.stats.resolution == (640, 360), 5, "new size")
        before = len(service.sink.windows)
        await wait_for(lambda: len(service.sink.windows) >= before + 2, 5, "windows after")
        assert service.sink.windows[-1].video is not None
        assert service.sink.windows[-1].video.shape == (30, 120, 160, 3)
        await publisher.close()


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.slow
async def test_fifty_connect_disconnect_cycles_leave_nothing_behind() -> None:
    async with running_service() as service:
        tasks_before = len(asyncio.all_tasks())
        rss = []
        ingests: list[weakref.ref[object]] = []
        for cycle in range(50):
            publisher = WhipPublisher(service.whip(f"churn{cycle % 3}"))
            await publisher.publish(scene_tracks(size=(160, 120)))
            await wait_for(lambda: service.registry.sessions()[0].state == "live", 5, "live")
            ingests.append(weakref.ref(service.registry.sessions()[0].ingest))
            await publisher.close()
            assert_nothing_left(service)
            if cycle in (9, 49):
                gc.collect()
                rss.append(rss_mb())
        await asyncio.sleep(0.3)
        assert len(asyncio.all_tasks()) <= tasks_before
        assert rss[1] - rss[0] < 60, f"RSS grew {rss[1] - rss[0]:.0f} MB over 40 cycles"
        assert len(service.sink.ended) == 50
        gc.collect()
        alive = sum(ref() is not None for ref in ingests)
        assert alive == 0, f"{alive} stream ingests (rings) still referenced after close"


@pytest.mark.parametrize("ready", [True, False])
async def test_health_and_readiness_follow_the_injected_callback(ready: bool) -> None:
    async def is_ready() -> bool:
        return ready

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz(is_ready))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/healthz")) as resp:
            assert resp.status == 200
        async with http.get(server.make_url("/readyz")) as resp:
            assert resp.status == (200 if ready else 503)
            assert (await resp.json())["ready"] is ready
        async with http.get(server.make_url("/nowhere")) as resp:
            assert resp.status == 404
            assert resp.headers["Content-Type"].startswith("application/problem+json")


def test_api_streams_rows_carry_downstream_figures_per_engine() -> None:
    rows = [{"stream": "cam1", "fps": 30.0}, {"stream": "cam2", "fps": 29.0}]
    figures = {"cam1": {"probe": {"published": 7}}, "other": {}}
    merged = api.stream_rows(rows, figures)
    assert merged[0]["engines"] == {"probe": {"published": 7}}
    assert merged[1]["engines"] == {}
    assert "engines" not in rows[0]  # the input rows are not changed
    assert "engines" not in api.stream_rows(rows, None)[0]
