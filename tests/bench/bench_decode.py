"""Decode cost of the load benchmark's media: CPU per stream for VP8 640x480@30 and Opus.

    python tests/bench/bench_decode.py [--rounds 5]

Decodes the cached bench clip (`stream.benchmark.clip`, rendered on first use) on one thread,
best of `--rounds`, and prints the cores one stream's decoding needs in real time. It separates
what any receiver must pay (decoding every frame) from the rest of the service's per-stream cost
reported by `scenestream bench`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import cast

import av

from stream.benchmark.clip import cached_clip

CACHE = Path.home() / ".cache" / "scenestream"


def decode_cost(path: Path, kind: str, rounds: int) -> tuple[float, float]:
    """(best CPU seconds to decode the clip's `kind` stream, media seconds) on one thread."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        codec = stream.codec_context.name
        packets = [p for p in container.demux(stream) if p.size]
        media_s = float(sum((p.duration or 0) * p.time_base for p in packets))
    best = float("inf")
    for _ in range(rounds):
        ctx = cast(
            "av.VideoCodecContext | av.AudioCodecContext", av.CodecContext.create(codec, "r")
        )
        ctx.thread_count = 1
        t = time.process_time()
        for packet in packets:
            ctx.decode(packet)
        best = min(best, time.process_time() - t)
    return best, media_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    clip = cached_clip(CACHE)
    for kind in ("video", "audio"):
        cpu_s, media_s = decode_cost(clip, kind, args.rounds)
        print(
            f"{kind}: {cpu_s / media_s:.4f} core per stream "
            f"({cpu_s * 1000:.0f} ms CPU for {media_s:.1f} s of media, best of {args.rounds})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
