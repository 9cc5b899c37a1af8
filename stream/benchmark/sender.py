"""Sender process: relays the clip as N WHIP streams for a while, then deletes them.

    python -m stream.benchmark.sender URL --streams N --seconds S --clip PATH [--tolerate-refusals]

Runs apart from the server under test so that its CPU is not counted as the server's. Prints
`published N` once every stream is up (or exits 3 with the server's refusal). With
`--tolerate-refusals` (the overload trial) a refused stream (`503`; a `307` is followed) is
offered again after the server's `Retry-After`, as a WHIP client would, until `RAMP_S` have
passed; the others go on. It then prints `published A refused R` (R: still refused).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

STREAM_PREFIX = "bench"
STAGGER_S = 0.05  # between publishes: a burst of N offers at once is not what we measure
RAMP_S = 60.0  # --tolerate-refusals: how long refused streams are offered again


async def relay(
    url: str, streams: int, seconds: float, clip: Path, *, tolerate_refusals: bool = False
) -> int:
    """Publish `streams` relayed copies of `clip` for `seconds` after the last one is up."""
    from stream.sender.relay import LoopingPacketTrack, load_clip
    from stream.sender.whip_client import WhipPublisher, WhipRefused
    from stream.webrtc.loopback import use_loopback_candidates

    use_loopback_candidates(only=True)
    clips = load_clip(clip)
    publishers: list[WhipPublisher] = []
    ramp_end = time.monotonic() + RAMP_S
    due = [(0.0, i) for i in range(streams)]  # (not before, stream index)
    refused: set[int] = set()
    try:
        while due:
            not_before, i = due.pop(0)
            await asyncio.sleep(max(0.0, not_before - time.monotonic()))
            publisher = WhipPublisher(f"{url}/whip/{STREAM_PREFIX}{i}")
            publishers.append(publisher)
            start = time.time() + 0.2
            tracks = [LoopingPacketTrack(c, start=start) for c in clips.values()]
            try:
                await publisher.publish(tracks, codec="vp8")
                refused.discard(i)
            except WhipRefused as exc:
                if not tolerate_refusals or exc.status != 503:
                    raise
                refused.add(i)
                publishers.remove(publisher)
                await publisher.close()
                retry = time.monotonic() + (exc.retry_after_s or 1.0)
                if retry < ramp_end:
                    due.append((retry, i))
                    due.sort()
            await asyncio.sleep(STAGGER_S)
        if tolerate_refusals:
            print(f"published {streams - len(refused)} refused {len(refused)}", flush=True)
        else:
            print(f"published {streams}", flush=True)
        await asyncio.sleep(seconds)
    except WhipRefused as exc:
        print(f"refused: {exc}", file=sys.stderr, flush=True)
        return 3
    finally:
        await asyncio.gather(*(p.close() for p in publishers), return_exceptions=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the sender process."""
    parser = argparse.ArgumentParser(description="benchmark sender: N relayed WHIP streams")
    parser.add_argument("url", help="server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--tolerate-refusals", action="store_true",
                        help="count 503 refusals and carry on with the others")  # fmt: skip
    args = parser.parse_args(argv)
    return asyncio.run(
        relay(args.url, args.streams, args.seconds, args.clip,
              tolerate_refusals=args.tolerate_refusals)
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
