"""Opening a Redis client that may be a Redis Cluster (`redis.cluster`: true, false or "auto")."""

from __future__ import annotations

import ssl
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
)

ClusterMode = bool | Literal["auto"]
AnyRedis = aioredis.Redis | RedisCluster
# What a lost or reshaping Redis raises: a cluster client adds errors outside `RedisError`
# (e.g. a slot no node covers while the cluster changes shape).
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def redis_problem(exc: BaseException) -> str:
    """What went wrong talking to Redis, in words an operator can act on (never the URL, which
    may hold a password)."""
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return "authentication failed: check the user name and password in redis.url"
    if isinstance(exc, NoPermissionError):
        return "permission denied: the ACL user of redis.url may not run a command it needs"
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError) or "SSL" in str(exc):
        return "TLS handshake failed: check the certificates of the rediss:// URL"
    if "closed by server" in str(exc) or isinstance(cause, ConnectionResetError):
        # TLS 1.3 refuses a client certificate after the handshake: the first command sees a reset
        return ("the server closed the connection (with rediss://: the TLS client certificate "
                "was refused or is missing)")  # fmt: skip
    if isinstance(exc, OSError) or type(exc).__name__ in ("ConnectionError", "TimeoutError"):
        return "unreachable"
    return f"error ({type(exc).__name__})"


async def detect_cluster(url: str, timeout_s: float = 5.0) -> bool:
    """True when the server at `url` runs in cluster mode (`INFO cluster` → `cluster_enabled:1`)."""
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        info: Any = await client.info("cluster")
        return bool(int(info.get("cluster_enabled", 0)))
    finally:
        await client.aclose()


async def resolve_cluster(url: str, mode: ClusterMode) -> bool:
    """The configured mode, with "auto" asked of the server (an unreachable one counts as plain,
    so that a Redis that is down at start keeps the single-node behaviour and its buffering)."""
    if mode != "auto":
        return bool(mode)
    try:
        return await detect_cluster(url)
    except REDIS_ERRORS:
        return False


async def close_pubsub(pubsub: PubSub) -> None:
    """Close a pub/sub connection (redis-py types `aclose` only in newer releases)."""
    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


def open_client(url: str, cluster: bool, **kwargs: Any) -> AnyRedis:
    """A plain or cluster client for `url` with the same keyword options."""
    if cluster:
        return RedisCluster.from_url(url, **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)
