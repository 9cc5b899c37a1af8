"""The bounded outbox between the pipeline and Redis. Pure (no asyncio, no I/O).

Policy when full — DROP_OLDEST_SCENE: scene messages are a continuous, superseded-by-the-next
signal, while lifecycle events and status changes are state a consumer cannot reconstruct, so
the oldest scene message goes first; only when no scene message is left is the oldest event or
status dropped. Every drop is counted by message type.

Messages leave in order. The sender takes a batch (`take`), then reports `done` or `failed`;
a failed (or cancelled) batch goes back to the front in its original order, so a Redis outage
or a cancellation mid-send loses nothing that fits in the outbox (delivery is at-least-once: a
batch Redis applied before the connection broke may be sent again).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["scene", "event", "status"]


@dataclass(slots=True)
class Outgoing:
    """One message waiting for Redis: its kind, the message and when it was queued."""

    kind: Kind
    message: dict[str, Any]
    queued_at: float = 0.0  # time.monotonic() when handed over (publish-stage latency)
    failed: bool = False  # already counted as a publish failure once
    key: int = field(default=0, compare=False)


class Outbox:
    """A bounded, ordered buffer of outgoing messages with a drop preference (see above)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("outbox capacity must be positive")
        self.capacity = capacity
        self._items: OrderedDict[int, Outgoing] = OrderedDict()
        self._in_flight: list[Outgoing] = []
        self._kinds: Counter[str] = Counter()
        self._next_key = 0
        self.dropped: Counter[str] = Counter()  # by kind

    def __len__(self) -> int:
        """Messages not yet acknowledged by Redis (waiting and in flight)."""
        return len(self._items) + len(self._in_flight)

    @property
    def waiting(self) -> int:
        """Messages waiting to be taken."""
        return len(self._items)

    def push(self, item: Outgoing) -> list[Outgoing]:
        """Append a message; return what had to be dropped to stay within capacity."""
        self._next_key += 1
        item.key = self._next_key
        self._items[item.key] = item
        self._kinds[item.kind] += 1
        return self._enforce()

    def take(self, limit: int) -> list[Outgoing]:
        """Take up to `limit` messages, oldest first, to send; they stay owned by the outbox
        (in flight) until `done` or `failed`."""
        if self._in_flight:
            raise RuntimeError("a batch is already in flight")
        while self._items and len(self._in_flight) < limit:
            _, item = self._items.popitem(last=False)
            self._kinds[item.kind] -= 1
            self._in_flight.append(item)
        return list(self._in_flight)

    def done(self) -> None:
        """Redis acknowledged the batch in flight."""
        self._in_flight.clear()

    def failed(self) -> list[Outgoing]:
        """The batch in flight did not make it: put it back in front, in order. Returns what
        had to be dropped to stay within capacity (new messages arrived meanwhile)."""
        for item in reversed(self._in_flight):
            self._items[item.key] = item
            self._items.move_to_end(item.key, last=False)
            self._kinds[item.kind] += 1
        self._in_flight.clear()
        return self._enforce()

    def drain(self) -> list[Outgoing]:
        """Remove and return everything not acknowledged (in order), e.g. at shutdown."""
        out = self._in_flight + list(self._items.values())
        self._in_flight.clear()
        self._items.clear()
        self._kinds.clear()
        return out

    def _enforce(self) -> list[Outgoing]:
        dropped: list[Outgoing] = []
        while len(self._items) + len(self._in_flight) > self.capacity and self._items:
            victim = self._oldest("scene") if self._kinds["scene"] else None
            if victim is None:
                victim = next(iter(self._items))
            item = self._items.pop(victim)
            self._kinds[item.kind] -= 1
            self.dropped[item.kind] += 1
            dropped.append(item)
        return dropped

    def _oldest(self, kind: Kind) -> int | None:
        for key, item in self._items.items():
            if item.kind == kind:
                return key
        return None
