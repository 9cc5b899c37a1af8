"""`scenestream events`: subscribe (see `stream.subscribe`) and print one line a message."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import datetime
from typing import Any, Literal

from stream.publish.messages import Message
from stream.subscribe import DEFAULT_KINDS, Subscription


def _clock(t: Any) -> str:
    if not isinstance(t, int | float):
        return "-"
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def format_line(msg: Message) -> str:
    """One human-readable line for a message."""
    when, stream = _clock(msg.get("published_at")), msg.get("stream")
    kind = msg.get("type")
    if kind == "event":
        span = f"{_clock(msg['start'])}–{_clock(msg['end']) if msg['end'] else '…'}"
        return (
            f"{when}  {stream}  {msg['phase']:<6} {msg['label']:<20} score {msg['score']:.2f} "
            f"peak {msg['peak_score']:.2f}  {span}  {msg['id']} ({msg['engine']})"
        )
    if kind == "status":
        return f"{when}  {stream}  status {msg['state']} ({msg['reason']})"
    active = ", ".join(msg.get("active", [])) or "-"
    latency = msg.get("latency_ms", {}).get("capture_to_publish", 0.0)
    return (
        f"{when}  {stream}  scene  #{msg.get('seq')} {msg.get('engine')}  active: {active}  "
        f"({latency:.0f} ms)"
    )


async def _print_messages(
    url: str, prefix: str, streams: list[str] | None, kinds: list[str], as_json: bool,
    seconds: float | None, cluster: bool | Literal["auto"] = "auto",
) -> int:  # fmt: skip
    async with Subscription(
        url, prefix=prefix, streams=streams, kinds=kinds, cluster=cluster
    ) as sub:
        try:
            async with asyncio.timeout(seconds):
                async for msg in sub:
                    line = json.dumps(msg, separators=(",", ":")) if as_json else format_line(msg)
                    print(line, flush=True)
        except TimeoutError:
            pass
    return 0


def run(args: argparse.Namespace) -> int:
    """`scenestream events`: subscribe and print, one line a message."""
    from engines.errors import UserError
    from stream.config import load_settings

    settings = load_settings().redis
    url = args.redis or settings.url
    if not url:
        raise UserError("no Redis URL: pass --redis or set SCENESTREAM_REDIS__URL")
    if args.seconds is not None and args.seconds <= 0:
        raise UserError("--seconds must be positive")
    kinds = list(dict.fromkeys(args.kind or DEFAULT_KINDS))
    streams = [args.stream] if args.stream else None
    try:
        return asyncio.run(
            _print_messages(
                url, args.prefix, streams, kinds, args.json, args.seconds, settings.cluster
            )
        )
    except BrokenPipeError:  # `scenestream events | head`
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 0
