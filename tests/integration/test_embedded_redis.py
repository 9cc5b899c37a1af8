"""The redis fixture and the embedded server are a real redis-server."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from stream.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration


async def test_real_server_roundtrip(redis_server: EmbeddedRedis) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        info = await client.info("server")
        assert "redis_version" in info
    finally:
        await client.aclose()
