"""Ingest benchmark: CPU per stream of the service (windows cut, no engine) vs a bare receiver.

    .venv/bin/python tests/bench/bench_ingest.py --streams 4 --seconds 20 [--content pattern]

N loopback streams of 640x480@30 VP8 + Opus are relayed from a pre-encoded clip (the sender
neither decodes nor encodes). Two receivers run side by side, each fed its own N streams and
each in its own process so that its CPU time is its own: a bare aiortc receiver that only
drains the tracks, and the scenestream ingest service (rings, capture clock, windows cut for one
224x224@8 fps + 16 kHz engine spec, counted by a sink). Reported: CPU seconds per stream-second
for both, their ratio (target ≤ 1.15 at N = 4; median over rounds), and the service's frame
handling time from `recv()` to the ring (p50/p99/max, target p99 ≤ 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from stream.benchmark import clip

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


# -- the clip -------------------------------------------------------------------------------------


def make_clip(path: Path, content: str, seconds: float = 4.0) -> None:
    """Render the clip once: camera-like content (a camera's bitrate) or the flat `sync` pattern."""
    from engines.lab.scenes.sync import SyncScene

    clip.make_clip(path, seconds, scene=clip.CameraLike() if content == "camera" else SyncScene())


# -- receivers (each runs in its own process) ------------------------------------------------------


async def serve_bare(port: int) -> None:
    """A bare aiortc WHIP receiver: answers offers and drains every track, nothing else."""
    from aiohttp import web
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    pcs: dict[str, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def drain(track: Any) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            return

    async def post(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", lambda t: tasks.add(asyncio.create_task(drain(t))))
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        key = f"{request.match_info['stream']}/{len(pcs)}"
        pcs[key] = pc
        return web.Response(status=201, text=pc.localDescription.sdp,
                            headers={"Location": f"/whip/{key}"})  # fmt: skip

    async def delete(request: web.Request) -> web.Response:
        pc = pcs.pop(f"{request.match_info['stream']}/{request.match_info['session']}", None)
        if pc is not None:
            await pc.close()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/whip/{stream}", post)
    app.router.add_delete("/whip/{stream}/{session}", delete)
    await _run_until_term(app, port)


async def serve_service(port: int, report: Path) -> None:
    """The ingest service (windows cut, counted, no engine), timing every frame into the rings."""
    from stream.ingest.stream_ingest import StreamIngest
    from stream.ingest.window_sink import CountingWindowSink
    from stream.metrics import Metrics
    from stream.publish.status import LogStatusSink
    from stream.service import Service
    from stream.webrtc.loopback import use_loopback_candidates
    from tests.bench.bench_support import record_ingest_times

    times = record_ingest_times(StreamIngest)
    sink = CountingWindowSink()
    service = Service(_settings(port), metrics=Metrics(process=False), window_sink=sink,
                      status=LogStatusSink())  # fmt: skip
    await service.start()
    use_loopback_candidates(only=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await service.close()
    result = {"ingest_s": times, "windows": sum(sink.submitted.values())}
    await asyncio.to_thread(report.write_text, json.dumps(result))


def _settings(port: int) -> Any:
    from stream.config import load_settings

    return load_settings(None, server={"port": port, "max_streams": 64,
                                       "post_rate_per_minute": 100_000})  # fmt: skip


async def _run_until_term(app: Any, port: int) -> None:
    from aiohttp import web

    from stream.webrtc.loopback import use_loopback_candidates

    use_loopback_candidates(only=True)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


# -- the sender ----------------------------------------------------------------------------------


async def send(url: str, streams: int, seconds: float, clip: Path) -> None:
    """Publish `streams` relayed copies of the clip for `seconds`, then DELETE them."""
    from stream.sender.relay import LoopingPacketTrack, load_clip
    from stream.sender.whip_client import WhipPublisher
    from stream.webrtc.loopback import use_loopback_candidates

    use_loopback_candidates(only=True)
    clips = load_clip(clip)
    publishers = []
    for i in range(streams):
        publisher = WhipPublisher(f"{url}/whip/bench{i}")
        start = time.time() + 0.2
        await publisher.publish([LoopingPacketTrack(c, start=start) for c in clips.values()],
                                codec="vp8")  # fmt: skip
        publishers.append(publisher)
    await asyncio.sleep(seconds)
    await asyncio.gather(*(p.close() for p in publishers))


# -- one measured phase --------------------------------------------------------------------------


def measure(streams: int, seconds: float, warmup: float, clip: Path, port: int,
            report: Path) -> dict[str, float]:  # fmt: skip
    """Run the bare receiver and the service side by side, each fed `streams` streams by its
    own sender, and measure both processes' CPU over the same steady interval (so background
    load on a shared machine hits both alike)."""
    servers: dict[str, subprocess.Popen[bytes]] = {}
    senders: list[subprocess.Popen[bytes]] = []
    ports = {"bare": port, "service": port + 1}
    try:
        for role, p in ports.items():
            cmd = [sys.executable, __file__, "--role", role, "--port", str(p), "--report",
                   str(report)]  # fmt: skip
            servers[role] = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT)
            stdout = servers[role].stdout
            if stdout is None or stdout.readline().strip() != b"ready":
                raise RuntimeError(f"{role} receiver did not start")
        for p in ports.values():
            senders.append(subprocess.Popen(
                [sys.executable, __file__, "--role", "send", "--port", str(p), "--streams",
                 str(streams), "--seconds", str(seconds + warmup + 1), "--clip", str(clip)],
                cwd=ROOT,
            ))  # fmt: skip
        procs = {role: psutil.Process(server.pid) for role, server in servers.items()}
        time.sleep(warmup)
        cpu0 = {role: sum(proc.cpu_times()[:2]) for role, proc in procs.items()}
        wall0 = time.monotonic()
        time.sleep(seconds)
        cpu1 = {role: sum(proc.cpu_times()[:2]) for role, proc in procs.items()}
        wall = time.monotonic() - wall0
        for sender in senders:
            sender.wait(timeout=60)
    finally:
        for server in servers.values():
            server.send_signal(signal.SIGTERM)
        for server in servers.values():
            server.wait(timeout=30)
    return {role: (cpu1[role] - cpu0[role]) / wall / streams for role in ports}


def summary(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of `values` (nan when empty)."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    array = np.asarray(values)
    return {"p50": float(np.median(array)), "p99": float(np.percentile(array, 99)),
            "max": float(array.max())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=18_181)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--content",
        choices=["camera", "pattern"],
        default="camera",
        help="textured camera-like clip (~1 Mbps) or the flat sync pattern",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measurements (median reported)")
    parser.add_argument("--role", choices=["bench", "bare", "service", "send"], default="bench")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--clip", type=Path)
    args = parser.parse_args()
    if args.role == "bare":
        return asyncio.run(serve_bare(args.port))
    if args.role == "service":
        return asyncio.run(serve_service(args.port, args.report))
    if args.role == "send":
        return asyncio.run(
            send(f"http://127.0.0.1:{args.port}", args.streams, args.seconds, args.clip)
        )

    with tempfile.TemporaryDirectory() as tmp:
        clip, report = Path(tmp) / "sync.webm", Path(tmp) / "service.json"
        print("rendering the clip ... ", end="", flush=True)
        make_clip(clip, args.content)
        clip_bytes = clip.stat().st_size
        print(f"{clip_bytes // 1024} KiB")
        runs: dict[str, list[float]] = {"bare": [], "service": []}
        times: dict[str, list[float]] = {"video": [], "audio": []}
        windows = 0
        ratios = []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}: {args.streams} streams into each receiver, "
                  f"{args.seconds:.0f} s", flush=True)  # fmt: skip
            result = measure(args.streams, args.seconds, args.warmup, clip, args.port, report)
            for role, value in result.items():
                runs[role].append(value)
            ratios.append(result["service"] / result["bare"])
            bare_s, service_s = result["bare"], result["service"]
            print(f"  CPU s per stream-second: bare {bare_s:.4f}, service {service_s:.4f}, "
                  f"ratio {ratios[-1]:.3f}", flush=True)  # fmt: skip
            service = json.loads(report.read_text())
            windows += service["windows"]
            for kind, values in service["ingest_s"].items():
                times[kind] += [v * 1e3 for v in values]
    bare, serv = statistics.median(runs["bare"]), statistics.median(runs["service"])
    out = {
        "streams": args.streams,
        "seconds": args.seconds,
        "content": args.content,
        "clip_kbps": round(clip_bytes * 8 / 4.0 / 1000),
        "cpu_per_stream_bare": bare,
        "cpu_per_stream_service": serv,
        "ratio": statistics.median(ratios),
        "runs": runs,
        "windows": windows,
        "ingest_ms": {kind: summary(values) for kind, values in times.items()},
        "frames_timed": {kind: len(vals) for kind, vals in times.items()},
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
