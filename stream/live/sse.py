"""Pure parts of the live bridge: channel routing, the per-client buffer and SSE framing.

No asyncio, no I/O: the aiohttp/Redis adapter in `stream.live.page` moves messages through these.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

LiveKind = Literal["scene", "event", "status"]
CHANNEL_KINDS: dict[str, LiveKind] = {"scene": "scene", "events": "event", "status": "status"}
"""Redis channel suffix → SSE event name (the name is the message's `type`)."""


@dataclass(frozen=True)
class ChannelSet:
    """Redis channels and patterns one live client listens to."""

    channels: tuple[str, ...]
    patterns: tuple[str, ...]


def subscription(prefix: str, stream: str | None, kinds: Iterable[str]) -> ChannelSet:
    """Channels for one stream (`prefix:ID:scene`...) or patterns for all of them.

    `stream` must already match the stream-id pattern (no glob characters reach a pattern).
    `kinds` are channel kinds: `scene`, `events`, `status`.
    """
    channels: list[str] = []
    patterns: list[str] = []
    for kind in kinds:
        if kind == "status":
            channels.append(f"{prefix}:status")  # one channel for all streams, filtered later
        elif stream is None:
            patterns.append(f"{prefix}:*:{kind}")
        else:
            channels.append(f"{prefix}:{stream}:{kind}")
    return ChannelSet(tuple(channels), tuple(patterns))


def route(prefix: str, channel: str, data: str, stream: str | None) -> LiveKind | None:
    """The SSE event name for a Redis message, or None when this client does not want it."""
    if not channel.startswith(prefix + ":"):
        return None
    rest = channel[len(prefix) + 1 :]
    if rest == "status":
        if stream is not None and _stream_of(data) != stream:
            return None
        return "status"
    msg_stream, sep, kind = rest.rpartition(":")
    if not sep or kind not in CHANNEL_KINDS:
        return None
    if stream is not None and msg_stream != stream:
        return None
    return CHANNEL_KINDS[kind]


def _stream_of(data: str) -> str | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    value = obj.get("stream") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def format_event(event: str, data: str) -> bytes:
    """One SSE frame. A payload with newlines becomes several `data:` lines (joined back by the
    browser), so a message can never end a frame early."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body = "".join(f"data: {line}\n" for line in lines)
    return f"event: {event}\n{body}\n".encode()


class ClientBuffer:
    """Messages waiting to be written to one browser.

    Policy: scene messages are DROP_OLDEST beyond `max_scenes` (a newer scene supersedes an
    older one for someone watching, and a slow browser must not hold memory); events and
    status messages are never dropped: beyond `max_pending` of them the client is cut off
    (`overflowed`) so that it reconnects, rather than showing a timeline with holes.
    """

    def __init__(self, *, max_scenes: int = 16, max_pending: int = 1024) -> None:
        if max_scenes < 1 or max_pending < 1:
            raise ValueError("buffer sizes must be positive")
        self.max_scenes = max_scenes
        self.max_pending = max_pending
        self._items: deque[tuple[LiveKind, str]] = deque()
        self._scenes = 0
        self.dropped_scenes = 0
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._items)

    def push(self, kind: LiveKind, data: str) -> bool:
        """Queue one message; False once the client must be cut off."""
        if self.overflowed:
            return False
        if kind == "scene":
            if self._scenes >= self.max_scenes:
                self._drop_oldest_scene()
            self._scenes += 1
        elif len(self._items) - self._scenes >= self.max_pending:
            self.overflowed = True
            return False
        self._items.append((kind, data))
        return True

    def _drop_oldest_scene(self) -> None:
        for i, (kind, _) in enumerate(self._items):
            if kind == "scene":
                del self._items[i]
                self._scenes -= 1
                self.dropped_scenes += 1
                return

    def drain(self) -> list[tuple[LiveKind, str]]:
        """Everything queued, oldest first; the buffer is empty afterwards."""
        items = list(self._items)
        self._items.clear()
        self._scenes = 0
        return items
