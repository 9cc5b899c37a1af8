"""The bundled `nanodet` engine live on a real street clip: OpenCV's `vtest.avi` (people walking on
a campus path, Debian `opencv-doc`, fetched pinned by `engines.lab.photos`) is re-encoded as
H.264 with quiet audio, sent over real WebRTC (`scenestream send --file`, loopback ICE) into the
whole service with only `nanodet` enabled, and the scene messages are summarised:

    python tests/bench/bench_nanodet_live.py [--seconds 30] [--hop 0.5] [--hop 0.2]

Per hop: windows published out of those cut, capture-to-publish latency (p50, p95), people per
window, person tracks announced and how long each lasted. Tracks have no ground truth here:
read many short tracks as broken ones (a walker moves further between two frames at a longer
hop, and an IoU tracker loses him).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engines.lab.photo_set import DEFAULT_CACHE, fetch_opencv_doc
from stream.embedded_redis import EmbeddedRedis
from stream.webrtc.loopback import restore_candidates, use_loopback_candidates
from tests.e2e.conftest import PREFIX, ServiceThread, run_command, tap

FPS = 10  # vtest.avi's rate


def write_clip(source: Path, out: Path, seconds: float) -> None:
    """The first `seconds` of `source` as H.264 + quiet AAC in an mp4."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(source)) as src, av.open(str(out), "w", format="mp4") as dst:
        video = dst.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        audio = dst.add_stream("aac", rate=48_000)
        audio.layout = "stereo"
        for n, frame in enumerate(src.decode(video=0)):
            if n >= seconds * FPS:
                break
            image = frame.to_ndarray(format="rgb24")
            if n == 0:
                video.width, video.height, video.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
            encoded = av.VideoFrame.from_ndarray(image)
            encoded.pts, encoded.time_base = n, Fraction(1, FPS)
            dst.mux(video.encode(encoded))
        for first in range(0, round(seconds * 48_000), 960):
            pcm = (rng.standard_normal((1, 1920)) * 60).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            sound.sample_rate, sound.pts, sound.time_base = 48_000, first, Fraction(1, 48_000)
            dst.mux(audio.encode(sound))
        dst.mux(video.encode(None))
        dst.mux(audio.encode(None))


async def run_once(service: ServiceThread, clip: Path, stream: str, seconds: float) -> Any:
    async with tap(service.redis_url, stream) as t:
        cmd = [sys.executable, "-m", "stream.cli", "send", service.whip_url(stream),
               "--file", str(clip)]  # fmt: skip
        code, out = await run_command(cmd, seconds + 120)
        if code != 0:
            raise SystemExit(f"sender exited {code}: {out[-2000:]}")
        await asyncio.sleep(5)  # the last windows' messages
    return t


def summarise(t: Any, hop: float, seconds: float) -> dict[str, Any]:
    scenes = t.scenes_of("nanodet")
    latency = sorted(s["latency_ms"]["capture_to_publish"] for s in scenes)
    people = [sum(d["label"] == "person" for d in s["detections"]) for s in scenes]
    spans: dict[int, float] = {}
    for s in scenes:
        for tr in s["tracks"]:
            if tr["label"] == "person":
                spans[tr["id"]] = max(spans.get(tr["id"], 0.0), tr["last_seen"] - tr["first_seen"])
    durations = sorted(spans.values())
    return {
        "hop_s": hop,
        "windows": f"{len(scenes)}/{round(seconds / hop)}",
        "latency_ms_p50": round(statistics.median(latency), 1) if latency else None,
        "latency_ms_p95": round(latency[int(0.95 * (len(latency) - 1))], 1) if latency else None,
        "people_per_window": round(float(np.mean(people)), 2) if people else None,
        "person_tracks": len(durations),
        "person_tracks_up_to_1s": sum(d <= 1.0 for d in durations),
        "person_track_s_max": round(durations[-1], 1) if durations else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hop", type=float, action="append", help="window hops (repeatable)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    source = fetch_opencv_doc(args.cache, ["vtest.avi"]) / "vtest.avi"
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis:
        clip = Path(tmp) / "vtest.mp4"
        write_clip(source, clip, args.seconds)
        for hop in args.hop or [0.5]:
            use_loopback_candidates(only=True)
            service = ServiceThread(
                server={"port": 0},
                session={"include_loopback": True},
                redis={"url": redis.url, "prefix": PREFIX},
                engines={
                    "enabled": ["nanodet"],
                    "backends": ["onnxruntime"],
                    "cache_dir": str(Path(tmp) / "engines"),
                    "overrides": {"nanodet": {"hop_s": hop}},
                },
            )
            try:
                service.start()
                t = asyncio.run(run_once(service, clip, f"vtest-{hop}", args.seconds))
            finally:
                service.close()
                restore_candidates()
            print(summarise(t, hop, args.seconds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
