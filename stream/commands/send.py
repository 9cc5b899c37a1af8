"""`scenestream send URL (--scenario NAME | --file PATH [--loop] | --device DEV)`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from aiortc.mediastreams import MediaStreamTrack

from engines.errors import UserError
from engines.lab.scenes.base import SceneRenderer
from stream.sender.health import StreamFailed, check_stream
from stream.sender.tracks import SceneAudioTrack, SceneClock, SceneVideoTrack
from stream.sender.whip_client import WhipPublisher, WhipRefused
from stream.webrtc.loopback import use_loopback_candidates

logger = logging.getLogger(__name__)

# After the last frame of a file: the service's jitter buffers, its window cutter (which may wait
# `ingest.max_wait_s` for a modality) and its watchdog tick get this long before the DELETE, so
# that the window ending at the file's last instant is cut too.
END_OF_FILE_TAIL_S = 1.5
HEALTH_CHECK_AFTER_S = 4.0  # connected this long, the service must have frames of every kind


def run(args: argparse.Namespace) -> int:
    """Publish until the source ends, `--seconds` pass, or Ctrl-C; always DELETEs the session."""
    if args.truth is not None and not args.scenario:
        raise UserError("--truth needs --scenario (files and devices carry no ground truth)")
    if urlsplit(args.url).scheme not in ("http", "https"):
        raise UserError(f"not a WHIP URL: {args.url!r} (expected http://host:port/whip/STREAM)")
    try:
        return asyncio.run(_send(args))
    except WhipRefused as exc:
        raise UserError(f"offer refused: {exc}") from None
    except StreamFailed as exc:
        print(f"scenestream send: the service reports the stream failed: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        return 1


async def _send(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        logging.getLogger("aioice").setLevel(logging.WARNING)  # per-candidate lines are noise
    if _is_loopback(args.url):
        use_loopback_candidates()  # same-host server: 127.0.0.1 must be a candidate
    tracks, codec, scene_clock = await _open_source(args)
    publisher = WhipPublisher(args.url, token=args.token)
    ended, source_done, lost = asyncio.Event(), asyncio.Event(), asyncio.Event()
    terminated = asyncio.Event()

    @publisher.pc.on("connectionstatechange")
    def _state() -> None:
        state = publisher.pc.connectionState
        print(f"connection {state}", file=sys.stderr, flush=True)
        if state in ("failed", "closed"):
            lost.set()
            ended.set()

    live = list(tracks)

    def _track_ended(track: MediaStreamTrack) -> None:
        if track in live:
            live.remove(track)
        if not live:  # every track has sent its last frame
            source_done.set()

    for track in tracks:
        track.on("ended", lambda t=track: _track_ended(t))
    loop, interrupted = asyncio.get_running_loop(), asyncio.Event()

    def _interrupt() -> None:
        # Ctrl-C takes the same orderly path as SIGTERM (DELETE, close), rather than cancelling
        # tasks mid-flight; a second Ctrl-C gets Python's default handling (KeyboardInterrupt).
        interrupted.set()
        ended.set()
        loop.remove_signal_handler(signal.SIGINT)

    def _terminate() -> None:
        terminated.set()
        ended.set()

    with contextlib.suppress(NotImplementedError):  # SIGTERM (a supervisor): stop and DELETE
        loop.add_signal_handler(signal.SIGTERM, _terminate)
        loop.add_signal_handler(signal.SIGINT, _interrupt)
    try:
        await publisher.publish(tracks, codec=codec)
        print(f"publishing to {publisher.location}", file=sys.stderr, flush=True)
        seconds = args.seconds if args.seconds is not None else math.inf
        kinds, published = {t.kind for t in tracks}, time.monotonic()
        waiter = asyncio.create_task(_until_done(ended, source_done), name="send:until-done")
        checker = asyncio.create_task(
            _check_after(publisher, kinds, HEALTH_CHECK_AFTER_S), name="send:health"
        )
        try:
            done, _ = await asyncio.wait(
                {waiter, checker}, timeout=None if math.isinf(seconds) else seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            if checker in done:
                checker.result()  # raises StreamFailed
                await asyncio.wait({waiter}, timeout=None if math.isinf(seconds) else seconds)
        finally:
            checker_ran = checker.done() or time.monotonic() - published >= HEALTH_CHECK_AFTER_S
            for task in (waiter, checker):
                task.cancel()
            await asyncio.gather(waiter, checker, return_exceptions=True)
        if interrupted.is_set():
            return 130
        if lost.is_set():
            raise StreamFailed("the connection was closed by the service or the network")
        # Stopped by a supervisor, or by `--seconds` before the service could see anything:
        # nothing to judge. Otherwise the service must have decoded every kind that was sent.
        if not terminated.is_set() and (source_done.is_set() or checker_ran):
            await check_stream(publisher.url, publisher.token, kinds)
        return 0
    finally:
        published = publisher.location is not None
        publisher.pc.remove_all_listeners("connectionstatechange")  # quiet teardown
        await publisher.close()
        for track in tracks:
            track.stop()
        if published:
            print("session deleted", file=sys.stderr, flush=True)
        if args.truth is not None and scene_clock is not None:
            _write_truth(args.truth, *scene_clock)


async def _until_done(ended: asyncio.Event, source_done: asyncio.Event) -> None:
    """Until a stop (signal, lost connection), or the source's end plus the end-of-file tail."""
    stop = asyncio.create_task(ended.wait())
    done = asyncio.create_task(source_done.wait())
    try:
        await asyncio.wait({stop, done}, return_when=asyncio.FIRST_COMPLETED)
        if done.done() and not stop.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), END_OF_FILE_TAIL_S)
    finally:
        stop.cancel()
        done.cancel()


async def _check_after(publisher: WhipPublisher, kinds: set[str], delay_s: float) -> None:
    """Once, `delay_s` after publishing: fail early when the service sees none of some kind."""
    await asyncio.sleep(delay_s)
    await check_stream(publisher.url, publisher.token, kinds)
    await asyncio.Event().wait()  # passed: leave the outcome to the other task


Source = tuple[Sequence[MediaStreamTrack], str | None, tuple[SceneRenderer, SceneClock] | None]


async def _open_source(args: argparse.Namespace) -> Source:
    """(tracks, forced video codec or None, the scene and its clock for a scenario).

    Stopping the tracks releases the source.
    """
    if args.scenario:
        scene = load_scene(args.scenario)
        clock = SceneClock(
            loop_s=scene.duration_s if args.loop and math.isfinite(scene.duration_s) else None
        )
        tracks = [SceneVideoTrack(scene, clock), SceneAudioTrack(scene, clock)]
        return tracks, args.codec, (scene, clock)
    if args.file:
        return (*await _open_file(args.file, loop=args.loop, codec=args.codec), None)
    return (*_open_device(args.device), None)


def _write_truth(path: Path, scene: SceneRenderer, clock: SceneClock) -> None:
    """The scenario's labelled intervals, also on the capture clock (Unix seconds).

    `start` is the capture time of scene time 0, so a consumer lines up events with the truth
    as `start + start_s`. A looping scenario lists its first pass (repeat every `loop_s`).
    """
    if not clock.started:
        return  # nothing was sent
    intervals = [
        {"label": iv.label, "start_s": iv.start_s, "end_s": iv.end_s,
         "start": clock.start + iv.start_s, "end": clock.start + iv.end_s}
        for iv in scene.truth
    ]  # fmt: skip
    duration = scene.duration_s if math.isfinite(scene.duration_s) else None
    document = {"scenario": scene.name, "start": clock.start, "duration_s": duration,
                "loop_s": clock.loop_s, "intervals": intervals}  # fmt: skip
    try:
        path.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the truth file {path}: {exc}") from None
    print(f"truth written to {path}", file=sys.stderr, flush=True)


def load_scene(name: str, seed: int = 0) -> SceneRenderer:
    """A scenario by name or script path (`engines.lab.scenes.registry`)."""
    from engines.lab.scenes.registry import load_scenario

    try:
        return load_scenario(name, seed)
    except UserError:
        raise  # the registry's own one-line message
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise UserError(f"unknown scenario {name!r}: {exc}") from None


async def _open_file(
    path: Path, *, loop: bool, codec: str
) -> tuple[list[MediaStreamTrack], str | None]:
    """Tracks of a file paced from one clock: relayed where WebRTC carries the codec, decoded
    (and encoded by aiortc in `codec`) where not (`stream.sender.file_source`)."""
    from stream.sender.file_source import open_file_tracks, plan_file

    try:
        plan = await asyncio.to_thread(plan_file, path, loop=loop)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # PyAV raises many kinds for an unreadable file
        raise UserError(f"cannot open {path}: {exc}") from None
    for stream in plan.streams:
        how = "relayed" if stream.relay else "decoded and re-encoded"
        print(f"{stream.kind}: {stream.codec}, {how}", file=sys.stderr, flush=True)
    tracks, _ = open_file_tracks(plan, loop=loop)
    return tracks, plan.video_codec or codec


def device_input(device: str) -> tuple[str, str, dict[str, str]]:
    """`(input, FFmpeg format, options)` for a `--device` value.

    `/dev/videoN` is a V4L2 camera (asked for 640x480@30), `FORMAT:INPUT` names any FFmpeg input
    format this PyAV build has (`pulse:default`, `x11grab::0.0`, `lavfi:testsrc`), anything
    else (`hw:1,0`, `default`) is an ALSA input.
    """
    if device.startswith("/dev/video"):
        return device, "v4l2", {"video_size": "640x480", "framerate": "30"}
    fmt, sep, rest = device.partition(":")
    if sep and fmt in _input_formats():
        return rest, fmt, {}
    return device, "alsa", {}


def _input_formats() -> set[str]:
    import av

    return {name for names in av.formats_available for name in names.split(",")}


def _open_device(devices: list[str]) -> tuple[list[MediaStreamTrack], str | None]:
    """The first video and the first audio track among the devices (a camera and a mic)."""
    from aiortc.contrib.media import MediaPlayer

    video: MediaStreamTrack | None = None
    audio: MediaStreamTrack | None = None
    for device in devices:
        url, fmt, options = device_input(device)
        try:
            player = MediaPlayer(url, format=fmt, options=options)
        except Exception as exc:  # PyAV raises many kinds for a missing device
            raise UserError(f"cannot open {fmt} device {url}: {exc}") from None
        video = video or player.video
        audio = audio or player.audio
    tracks = [t for t in (video, audio) if t is not None]
    if not tracks:
        raise UserError(f"no audio or video track on {', '.join(devices)}")
    return tracks, None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
