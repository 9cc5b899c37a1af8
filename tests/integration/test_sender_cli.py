"""`scenestream send` as a user runs it (a subprocess) against the live ingest service."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engines.lab.scenes.sync import SyncScene
from stream.embedded_redis import free_port
from tests.support.whip_support import Service, running_service, settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


async def start_send(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "scenestream"), "send", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, within_s: float = 20) -> tuple[int, str]:
    _, stderr = await asyncio.wait_for(proc.communicate(), within_s)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


def live(service: Service) -> bool:
    return any(s.state == "live" for s in service.registry.sessions())


async def test_send_scenario_publishes_then_deletes(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    async with running_service() as service:
        before = time.time()
        proc = await start_send(service.whip("cam1"), "--scenario", "sync", "--seconds", "2.5",
                                "--truth", str(truth))  # fmt: skip
        await wait_for(lambda: live(service), 15, "the sender to connect")
        code, stderr = await finish(proc)
        assert code == 0, stderr
        assert "publishing to http://127.0.0.1" in stderr
        assert len(service.registry) == 0  # the sender sent DELETE
        assert service.states("cam1")[-1] == ("offline", "deleted")
        assert service.sink.windows, "no window was cut"
        document = json.loads(truth.read_text())
        assert document["scenario"] == "sync"
        assert document["intervals"] == []
        assert before < document["start"] < before + 10  # scene time 0 on the capture clock
        first = service.sink.windows[0]
        assert first.frame_times is not None
        assert first.frame_times.max() > document["start"]


async def test_refused_offer_is_one_clear_line() -> None:
    async with running_service(settings(server={"tokens": ["s3cret"]})) as service:
        proc = await start_send(service.whip("cam1"), "--scenario", "sync", "--seconds", "1")
        code, stderr = await finish(proc)
        assert code == 2
        assert stderr.strip().splitlines() == [
            "scenestream send: offer refused: 401 missing or invalid bearer token"
        ]


async def test_unreachable_server_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/whip/cam1"
    code, stderr = await finish(await start_send(url, "--scenario", "sync"))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("scenestream send: offer refused: cannot reach")


# Real-time bounds on a shared 2-core machine: one stall elsewhere can miss them; a rerun
# must pass the same bounds (every failed attempt is still reported).
@pytest.mark.flaky(reruns=2, reruns_delay=1)
@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
async def test_ctrl_c_or_sigterm_deletes_the_session(sig: signal.Signals, expected: int) -> None:
    async with running_service() as service:
        proc = await start_send(service.whip("cam1"), "--scenario", "sync")
        await wait_for(lambda: live(service), 15, "the sender to connect")
        proc.send_signal(sig)
        code, stderr = await finish(proc)
        assert code == expected, stderr
        assert len(service.registry) == 0
        assert service.states("cam1")[-1] == ("offline", "deleted")


async def test_killed_sender_is_cleaned_by_the_watchdog() -> None:
    async with running_service(settings(session={"media_timeout_s": 1.0})) as service:
        proc = await start_send(service.whip("cam1"), "--scenario", "sync")
        await wait_for(lambda: live(service), 15, "the sender to connect")
        proc.kill()  # no DELETE, no RTCP BYE, no DTLS close: the publisher just vanishes
        await proc.wait()
        await wait_for(lambda: len(service.registry) == 0, 5, "the media watchdog")
        assert service.states("cam1")[-1] == ("offline", "no media")


def write_clip(path: Path, seconds: float = 1.0) -> None:
    """A short VP8 + Opus WebM of the sync pattern."""
    scene = SyncScene()
    with av.open(str(path), "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=30)
        video.width, video.height, video.pix_fmt, video.gop_size = 320, 240, "yuv420p", 15
        audio = out.add_stream("libopus", rate=48_000)
        for n in range(round(seconds * 30)):
            frame = av.VideoFrame.from_ndarray(scene.render_video(n / 30, 240, 320), "rgb24")
            frame.pts, frame.time_base = n, Fraction(1, 30)
            out.mux(video.encode(frame))
        for n in range(round(seconds * 50)):
            mono = scene.render_audio(n * 0.02, 960, 48_000)
            pcm = (np.repeat(mono, 2) * 32767).astype(np.int16).reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48_000, n * 960
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


@pytest.mark.slow
async def test_send_file_loop_relays_packets_across_loop_points(tmp_path: Path) -> None:
    clip = tmp_path / "clip.webm"
    write_clip(clip)
    async with running_service() as service:
        proc = await start_send(service.whip("file1"), "--file", str(clip), "--loop",
                                "--seconds", "3.5")  # fmt: skip
        await wait_for(lambda: live(service), 15, "the sender to connect")
        session = service.registry.sessions()[0]
        await asyncio.sleep(2.5)  # the 1 s clip has looped at least once by now
        fps = session.ingest.stats.fps(time.monotonic())
        received = dict(session.ingest.stats.received)
        code, stderr = await finish(proc)
        assert code == 0, stderr
        assert 20 < fps < 40, f"{fps} fps across loop points"
        assert received["video"] > 60
        assert received["audio"] > 100
        windows = service.sink.windows
        assert windows
        assert all(not w.missing for w in windows[1:])


async def test_send_devices_camera_and_microphone() -> None:
    """`--device` twice (a camera and a microphone), here FFmpeg's virtual `lavfi` devices so that
    the capture path (live source, decode, encode) runs without hardware."""
    camera = "lavfi:testsrc=size=640x480:rate=30"
    microphone = "lavfi:sine=frequency=440:sample_rate=48000"
    async with running_service() as service:
        proc = await start_send(service.whip("dev1"), "--device", camera, "--device", microphone,
                                "--seconds", "3")  # fmt: skip
        await wait_for(lambda: live(service), 15, "the sender to connect")
        session = service.registry.sessions()[0]
        await asyncio.sleep(2.0)
        fps = session.ingest.stats.fps(time.monotonic())
        received = dict(session.ingest.stats.received)
        code, stderr = await finish(proc)
        assert code == 0, stderr
        assert session.ingest.stats.resolution == (640, 480)
        assert 20 < fps < 40
        assert received["audio"] > 50
        assert service.states("dev1")[-1] == ("offline", "deleted")
        assert [w for w in service.sink.windows if not w.missing], "no window with both modalities"


async def test_missing_device_is_one_clear_line() -> None:
    async with running_service() as service:
        proc = await start_send(service.whip("dev2"), "--device", "/dev/video99", "--seconds", "1")
        code, stderr = await finish(proc)
    assert code != 0
    assert "cannot open v4l2 device /dev/video99" in stderr
    assert "Traceback" not in stderr
