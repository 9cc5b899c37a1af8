"""Reading side of a Redis Cluster: sharded pub/sub and per-key log reads.

On a cluster, channels live on the shard their name hashes to, so a subscriber uses
`SSUBSCRIBE` (redis-py's `ClusterPubSub` keeps one connection per shard) and there are no
pattern subscriptions; an `XREAD` may not span keys of different slots, so each log is read
with its own `XREAD`. Single-node Redis keeps plain `SUBSCRIBE`/`PSUBSCRIBE` and one `XREAD`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster

from stream.scaleout.advert import Keys
from stream.scaleout.redis_client import AnyRedis

DATA_TYPES = ("message", "pmessage", "smessage")
IDLE_POLL_S = 0.1  # a cluster reader with no new entry on any log waits this long
SHARD_POLL_S = 0.02  # a cluster pub/sub reader with nothing on any shard waits this long


async def subscribe_channels(
    client: AnyRedis, channels: Iterable[str], patterns: Iterable[str]
) -> PubSub:
    """A pub/sub on `channels` (and `patterns`, single-node only): SSUBSCRIBE on a cluster."""
    channels, patterns = list(channels), list(patterns)
    if isinstance(client, RedisCluster):
        if patterns:
            raise ValueError("a Redis Cluster has no pattern subscriptions for sharded channels")
        await client.initialize()  # the slot map: SSUBSCRIBE picks each channel's shard by it
        sharded = client.pubsub(ignore_subscribe_messages=True)
        if channels:
            await sharded.ssubscribe(*channels)
        return sharded
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    if channels:
        await pubsub.subscribe(*channels)
    if patterns:
        await pubsub.psubscribe(*patterns)
    return pubsub


async def add_channels(pubsub: PubSub, channels: Iterable[str]) -> None:
    """Subscribe an open pub/sub to more channels (streams discovered later)."""
    channels = list(channels)
    if not channels:
        return
    if isinstance(pubsub, ClusterPubSub):
        await pubsub.ssubscribe(*channels)
    else:
        await pubsub.subscribe(*channels)


async def next_message(pubsub: PubSub, timeout_s: float) -> dict[str, Any] | None:
    """The next data message (or None after `timeout_s`)."""
    if isinstance(pubsub, ClusterPubSub):
        # redis-py visits one shard per call, each with the whole timeout: a blocking read would
        # wait on every quiet shard before reaching the next message. Poll all shards without
        # blocking instead, and pause briefly when none has anything.
        msg: dict[str, Any] | None = await pubsub.get_sharded_message(timeout=0.0)
        if msg is None:
            await asyncio.sleep(min(timeout_s, SHARD_POLL_S))
        return msg
    plain: dict[str, Any] | None = await pubsub.get_message(timeout=timeout_s)
    return plain


async def read_logs(
    client: AnyRedis, cursors: dict[str, str], block_ms: int, count: int
) -> list[Any]:
    """New log entries from every cursor, as `XREAD` replies (`[(key, entries), ...]`)."""
    if not isinstance(client, RedisCluster):
        streams: dict[Any, Any] = dict(cursors)
        replies: Any = await client.xread(streams, block=block_ms, count=count)
        return list(replies or [])
    out: list[Any] = []
    for key, cursor in list(cursors.items()):
        reply: Any = await client.xread({key: cursor}, count=count)
        out.extend(reply or [])
    if not out:
        await asyncio.sleep(min(block_ms / 1000, IDLE_POLL_S))
    return out


async def live_streams(client: AnyRedis, prefix: str) -> set[str]:
    """Streams the workers advertise as live (their `{prefix}:_workers:{id}:streams` sets)."""
    keys = Keys(prefix)
    ids: Any = await client.zrange(keys.index, 0, -1)
    found: set[str] = set()
    for worker in ids:
        members: Any = await client.smembers(keys.streams(_text(worker)))
        found.update(_text(m) for m in members)
    return found


def _text(value: bytes | str) -> str:
    """A reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value
