"""A worker's advertisement and the choice of a peer with room (pure: no I/O, no asyncio).

Keys (prefix configurable; none of them is part of the consumer contract). Their second segment
starts with `_`, which a stream id cannot (`STREAM_ID_PATTERN`), so they never collide with a
stream's own keys `{prefix}:{stream}:...`:
- `{prefix}:_workers:{id}`: JSON advert, `SET ... PX ttl`, refreshed about once a second;
- `{prefix}:_workers`: sorted set of worker ids (score: last refresh, Unix seconds), the index
  that lets a worker list its peers without `SCAN` (which a Redis Cluster spreads over nodes);
- `{prefix}:_workers:{id}:streams`: set of the stream ids the worker carries, so that another
  worker can publish `offline` for them when the worker disappears;
- `{prefix}:_claims:{stream}`: the worker id that owns a stream (`SET NX PX ttl`), the
  cross-worker uniqueness of stream ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Advert:
    """What a worker tells its peers: where to reach it and how full it is."""

    worker_id: str
    url: str
    streams: int
    max_streams: int
    updated_at: float

    @property
    def room(self) -> int:
        """Streams it can still take."""
        return max(0, self.max_streams - self.streams)

    def encode(self) -> str:
        """The JSON stored at `{prefix}:_workers:{id}`."""
        return json.dumps(
            {
                "worker_id": self.worker_id,
                "url": self.url,
                "streams": self.streams,
                "max_streams": self.max_streams,
                "updated_at": round(self.updated_at, 3),
            },
            separators=(",", ":"),
        )

    @staticmethod
    def decode(raw: bytes | str) -> Advert | None:
        """Parse an advert; None for anything malformed (a peer of another version)."""
        try:
            data: Any = json.loads(raw)
            return Advert(
                worker_id=str(data["worker_id"]),
                url=str(data["url"]).rstrip("/"),
                streams=int(data["streams"]),
                max_streams=int(data["max_streams"]),
                updated_at=float(data["updated_at"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def pick_peer(adverts: Iterable[Advert], self_id: str, now: float, stale_s: float) -> Advert | None:
    """The peer to redirect a POST to: the one with the most room, fresh, not ourselves.

    Most room first spreads new streams evenly; ties go to the lowest id so that every worker
    answers the same way at the same moment. An advert older than `stale_s` is ignored even if
    Redis still holds it (a stalled worker refreshes late).
    """
    fresh = [
        a
        for a in adverts
        if a.worker_id != self_id and a.room > 0 and now - a.updated_at <= stale_s
    ]
    if not fresh:
        return None
    return min(fresh, key=lambda a: (-a.room, a.worker_id))


def redirect_location(peer_url: str, stream: str) -> str:
    """The `Location` of a `307`: the same WHIP resource on the peer."""
    return f"{peer_url.rstrip('/')}/whip/{stream}"


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.index = f"{prefix}:_workers"

    def advert(self, worker_id: str) -> str:
        """The advert of one worker."""
        return f"{self.prefix}:_workers:{worker_id}"

    def streams(self, worker_id: str) -> str:
        """The set of streams one worker carries."""
        return f"{self.prefix}:_workers:{worker_id}:streams"

    def reaper(self, worker_id: str) -> str:
        """Lock taken by the one worker that publishes `offline` for a lost worker."""
        return f"{self.prefix}:_workers:{worker_id}:reaper"

    def claim(self, stream: str) -> str:
        """The owner of a stream id across workers."""
        return f"{self.prefix}:_claims:{stream}"
