"""Pulled cameras against a real RTSP server (GStreamer's gst-rtsp-server, started here).

The camera is configured, pulled, analysed (windows with both modalities), loses its server
(`offline` with a reason), and comes back by itself when the server does. A camera playing a
flash-and-click clip is put on its RTCP Sender Reports' clock (`sender`), with the flash and the
click at the same instant and capture times never after the windows were cut. The HTTP routes are
checked for auth, validation and capacity against the same live service.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from stream.config import CameraConfig
from stream.embedded_redis import EmbeddedRedis, free_port
from stream.http.admission import StreamLive
from stream.http.cameras import Cameras
from stream.ingest.stream_ingest import StreamIngest
from tests.support.flash_clip import click_times, flash_times, pair_marks, write_flash_clip
from tests.support.whip_support import (
    SYNC_SPECS,
    Service,
    running_service,
    settings,
    wait_for,
    wait_for_async,
)

pytestmark = [pytest.mark.integration]

SERVER = Path(__file__).parents[1] / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
AUDIO_RATE = 16_000  # the probe engine's
PULL = {"open_timeout_s": 10.0, "read_timeout_s": 3.0, "reconnect_initial_s": 0.2,
        "reconnect_max_s": 1.0}  # fmt: skip


def _rtsp_server_available() -> bool:
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    try:
        return (
            subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=20).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_rtsp = pytest.mark.skipif(
    not _rtsp_server_available(),
    reason="gst-rtsp-server bindings missing (make system installs gir1.2-gst-rtsp-server-1.0)",
)


@contextlib.asynccontextmanager
async def rtsp_server(port: int, *options: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The test camera on 127.0.0.1:`port` (`options`: see rtsp_server.py), killed on exit."""
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON, str(SERVER), str(port), *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.strip() == b"ready", line
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def complete_windows(service: Service, stream: str) -> int:
    return sum(1 for w in service.sink.windows if w.stream == stream and not w.missing)


def states(service: Service, stream: str) -> list[tuple[str, str]]:
    return service.states(stream)


@needs_rtsp
@pytest.mark.flaky(reruns=1, reruns_delay=1)
async def test_rtsp_camera_is_analysed_goes_offline_and_reconnects() -> None:
    port = free_port()
    camera = {"id": "door", "url": f"rtsp://127.0.0.1:{port}/cam"}
    # A configured camera ([[cameras]] in TOML), started with the service.
    config = settings(pull=PULL).model_copy(update={"cameras": [CameraConfig(**camera)]})
    async with rtsp_server(port) as server, running_service(config) as service:
        await wait_for(lambda: complete_windows(service, "door") >= 3, 30, "windows of the camera")
        assert ("online", "connected") in states(service, "door")
        window = next(w for w in service.sink.windows if w.stream == "door" and not w.missing)
        assert window.video is not None
        assert window.video.std() > 0  # the moving ball
        assert window.audio is not None
        assert abs(window.audio).max() > 0.01  # the tone
        cams = service.worker.cameras
        assert cams is not None
        assert cams.cameras["door"].row()["state"] == "online"
        # Capture times are arrival-anchored: never ahead of now, and not far behind it.
        newest = max(w.end for w in service.sink.windows if w.stream == "door")
        assert -3 < newest - time.time() < 0.1

        server.kill()
        await server.wait()
        await wait_for(lambda: states(service, "door")[-1][0] == "offline", 15, "offline")
        reason = states(service, "door")[-1][1]
        assert reason, "offline without a reason"
        before = complete_windows(service, "door")
        async with rtsp_server(port):
            restarted = time.monotonic()
            await wait_for(lambda: states(service, "door")[-1] == ("online", "connected"), 30,
                           "the camera to reconnect")  # fmt: skip
            online_s = time.monotonic() - restarted
            await wait_for(lambda: complete_windows(service, "door") >= before + 2, 20,
                           "windows after the reconnect")  # fmt: skip
            windows_s = time.monotonic() - restarted
        print(f"offline reason: {reason!r}; back online {online_s:.1f} s after the server "
              f"restarted, windows again after {windows_s:.1f} s")  # fmt: skip


CLIP_S = 10.0
# The clip starts when the camera is connected. Its Sender Reports come at RTCP's randomised
# intervals (the first one 1-3 s into the session): media that arrived before a track's first
# report keeps its arrival-time stamps, and a backward correction is slewed out at 10 % of media
# time. Only the marks stamped once both tracks are on the sender clock are judged: a flash at
# 3 s raced the video's first report and was one frame late in one CI run of several.
EVENTS_S = (3.0, 5.0, 7.0, 9.0)
SETTLE_S = 0.5  # after both tracks' first reports: room for the slew
ALIGNED_S = 0.05  # flash and click within this on the capture clock (as for files)


@needs_rtsp
@pytest.mark.flaky(reruns=1, reruns_delay=1)
async def test_rtsp_camera_on_its_rtcp_clock_keeps_flash_and_click_aligned(tmp_path: Path) -> None:
    clip = tmp_path / "flash.mkv"
    write_flash_clip(clip, "mkv", seconds=CLIP_S, events_s=EVENTS_S)
    port = free_port()
    camera = CameraConfig(id="clip", url=f"rtsp://127.0.0.1:{port}/cam")
    config = settings(pull=PULL).model_copy(update={"cameras": [camera]})
    async with rtsp_server(port, "--clip", str(clip)), running_service(config) as service:
        cams = service.worker.cameras
        assert cams is not None
        row = cams.cameras["clip"].row
        # gst-rtsp-server's reports are on the host's clock: trusted as wall-clock time.
        await wait_for(lambda: row()["capture_clock"] == "sender", 15, "the sender clock")
        settled = time.time() + SETTLE_S  # capture times are never after arrival
        sink = service.sink

        def flashes_seen() -> int:
            return len(flash_times(w for w in sink.windows if w.stream == "clip"))

        await wait_for(lambda: flashes_seen() >= len(EVENTS_S), CLIP_S + 20, "the flashes")
        cut = [
            (w, at) for w, at in zip(sink.windows, sink.cut_at, strict=True) if w.stream == "clip"
        ]
    windows = [w for w, _ in cut]
    flashes, clicks = flash_times(windows), click_times(windows, AUDIO_RATE)
    skews = pair_marks([f for f in flashes if f >= settled], clicks)
    assert len(skews) >= 2, (flashes, clicks, settled)
    assert all(abs(s) <= ALIGNED_S for s in skews), f"click - flash = {skews}"
    # A capture time is never later than the media's arrival: no window ends after it was cut.
    lags = sorted(at - w.end for w, at in cut)
    assert lags[0] >= 0.0, f"windows ending after they were cut: {lags[:3]}"
    print(
        f"rtsp on the sender clock: click - flash {[round(s * 1e3, 1) for s in skews]} ms "
        f"(of {len(flashes)} flashes, {len(flashes) - len(skews)} before it settled), "
        f"end-to-cut p50 {lags[len(lags) // 2] * 1e3:.0f} ms, max {lags[-1] * 1e3:.0f} ms"
    )


def write_self_signed(path: Path) -> None:
    """A PEM with a throwaway RSA certificate for 127.0.0.1 and its key (the camera's TLS)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    )  # fmt: skip


@needs_rtsp
@pytest.mark.flaky(reruns=1, reruns_delay=1)
async def test_rtsps_camera_with_credentials_and_a_wrong_password(tmp_path: Path) -> None:
    pem = tmp_path / "camera.pem"
    write_self_signed(pem)
    port = free_port()
    url = f"rtsps://{{}}@127.0.0.1:{port}/cam"
    cameras = [CameraConfig(id="secure", url=url.format("viewer:secret")),
               CameraConfig(id="wrongpw", url=url.format("viewer:guess"))]  # fmt: skip
    config = settings(pull=PULL).model_copy(update={"cameras": cameras})
    server = rtsp_server(port, "--tls", str(pem), "--user", "viewer:secret")
    async with server, running_service(config) as service:
        await wait_for(lambda: complete_windows(service, "secure") >= 2, 30, "rtsps windows")

        def refused() -> bool:
            seen = states(service, "wrongpw")
            return bool(seen) and seen[-1][0] == "offline"

        await wait_for(refused, 20, "the wrong password to be refused")
        reason = states(service, "wrongpw")[-1][1]
        assert "401" in reason, reason  # "cannot connect: ... 401 Unauthorized ..."
        cams = service.worker.cameras
        assert cams is not None
        rows = [cams.cameras[name].row() for name in ("secure", "wrongpw")]
    assert rows[0]["url"] == f"rtsps://***@127.0.0.1:{port}/cam"
    assert rows[0]["state"] == "online"
    assert "secret" not in str(rows)
    assert "guess" not in str(rows) + reason


async def test_camera_routes_auth_validation_and_capacity() -> None:
    token = {"Authorization": "Bearer s3cret"}
    unreachable = f"rtsp://127.0.0.1:{free_port()}/cam"
    config = settings(server={"tokens": ["s3cret"], "max_streams": 1}, pull=PULL)
    async with running_service(config) as service, aiohttp.ClientSession() as http:
        url = f"{service.url}/api/cameras"
        async with http.post(url, json={"id": "gate", "url": unreachable}) as resp:
            assert resp.status == 401
        async with http.post(url, json={"id": "gate", "url": "file:///etc/passwd"},
                             headers=token) as resp:  # fmt: skip
            assert resp.status == 400
            assert "url" in (await resp.json())["detail"]
        async with http.post(url, json={"id": "gate", "url": unreachable,
                                        "options": {"protocol_whitelist": "file"}},
                             headers=token) as resp:  # fmt: skip
            assert resp.status == 400
            assert "protocol_whitelist" in (await resp.json())["detail"]
        async with http.post(url, json={"id": "gate", "url": unreachable}, headers=token) as resp:
            assert resp.status == 201, await resp.text()
            assert resp.headers["Location"] == "/api/cameras/gate"
        async with http.post(url, json={"id": "gate", "url": unreachable}, headers=token) as resp:
            assert resp.status == 409
        async with http.post(url, json={"id": "yard", "url": unreachable}, headers=token) as resp:
            assert resp.status == 503  # the camera holds the only slot, online or not

        async def offline() -> bool:
            async with http.get(url, headers=token) as resp:
                rows = (await resp.json())["cameras"]
            return rows[0]["state"] == "offline" and rows[0]["reason"].startswith("cannot connect")

        deadline = time.monotonic() + 20
        while not await offline():
            assert time.monotonic() < deadline, "the unreachable camera never went offline"
            await asyncio.sleep(0.1)
        async with http.get(f"{service.url}/api/streams") as resp:
            assert [r["stream"] for r in (await resp.json())["streams"]] == ["gate"]
        async with http.delete(f"{url}/gate", headers=token) as resp:
            assert resp.status == 200
        async with http.delete(f"{url}/gate", headers=token) as resp:
            assert resp.status == 404
        assert len(service.registry) == 0
        assert service.states("gate")[-1] == ("offline", "deleted")


async def test_camera_id_live_on_another_worker_is_refused(redis_server: EmbeddedRedis) -> None:
    """With scale-out, a camera claims its stream id across workers like a WHIP stream."""
    from tests.integration.test_worker_directory import KEYS, directory

    unreachable = f"rtsp://127.0.0.1:{free_port()}/cam"
    config = settings(pull=PULL)
    async with (
        directory(redis_server.url, "wa", 4) as peer,
        directory(redis_server.url, "wb", 4) as mine,
        running_service(config) as service,
    ):
        assert await peer.claim("door")  # a WHIP stream "door" is live on worker wa
        sink = service.sink

        def open_ingest(stream: str, video: bool, audio: bool) -> StreamIngest:
            return StreamIngest(stream, SYNC_SPECS, sink, service.metrics, config.ingest,
                                has_video=video, has_audio=audio)  # fmt: skip

        cameras = Cameras(config, service.registry, open_ingest, service.status,
                          service.metrics, sink.stream_ended, scaleout=mine)  # fmt: skip
        with pytest.raises(StreamLive):
            await cameras.add(CameraConfig(id="door", url=unreachable))
        assert len(service.registry) == 0  # the slot was given back
        peer.release_soon("door")
        client = aioredis.Redis.from_url(redis_server.url)

        async def released() -> bool:
            return not await client.exists(KEYS.claim("door"))

        await wait_for_async(released, 3, "the peer's claim to be released")
        await client.aclose()
        camera = await cameras.add(CameraConfig(id="door", url=unreachable))
        assert "door" in mine.owned
        await camera.close("deleted")
        assert "door" not in mine.owned
