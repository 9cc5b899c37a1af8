"""Shared e2e fixtures: the whole service on a real redis-server with loopback ICE, a sender
subprocess that returns the scene's ground truth, and a raw tap on the service's Redis output.

The service runs on an event loop of its own in a background thread, one per test module: its
engines load and warm once (seconds of CPU), and each test's own loop stays free of the service's
tasks (the leaked-task guard in `tests/conftest.py` checks only the test's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from engines.config import LabelThresholds
from engines.events import resolve_thresholds
from engines.runtime.engine import Engine
from stream.config import load_settings
from stream.embedded_redis import EmbeddedRedis
from stream.interpret import manifest_defaults
from stream.service import Service
from stream.webrtc.loopback import restore_candidates, use_loopback_candidates

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
AVFUSION_MODEL = ROOT / "engines" / "bundled" / "avfusion" / "model.onnx"
# A user engine directory (the service reads this variable too) may supply avfusion instead.
USER_DIR = os.environ.get("SCENESTREAM_ENGINES__USER_DIR")
HAVE_AVFUSION = AVFUSION_MODEL.exists() or bool(
    USER_DIR and (Path(USER_DIR) / "avfusion" / "engine.toml").exists()
)
AVFUSION_MISSING = f"bundled avfusion model not trained yet ({AVFUSION_MODEL} absent)"
PREFIX = "e2e"


class ServiceThread:
    """A `Service` running on its own event loop in a daemon thread."""

    def __init__(self, **overrides: Any) -> None:
        self.settings = load_settings(None, **overrides)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="e2e-service", daemon=True
        )
        self.service = Service(self.settings)

    def start(self, timeout_s: float = 240.0) -> ServiceThread:
        """Start the loop and the service (engines load and warm here)."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(timeout_s)
        return self

    def close(self, timeout_s: float = 60.0) -> None:
        """Graceful service shutdown, then stop the loop and join the thread."""
        try:
            asyncio.run_coroutine_threadsafe(self.service.close(), self.loop).result(timeout_s)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()

    @property
    def url(self) -> str:
        """Base HTTP URL of the service."""
        return self.service.url

    @property
    def redis_url(self) -> str:
        """The Redis the service publishes to."""
        return self.service.redis_url

    def whip_url(self, stream: str) -> str:
        """The WHIP endpoint of one stream."""
        return f"{self.url}/whip/{stream}"

    def engine(self, name: str) -> Engine:
        """A loaded engine by name."""
        found = [e for e in self.service.engines if e.name == name]
        assert found, f"engine {name} not loaded (loaded: {[e.name for e in self.service.engines]})"
        return found[0]

    def thresholds(self, engine: str, label: str) -> LabelThresholds:
        """The thresholds the service's interpretation uses for one label (config > manifest)."""
        eng = self.engine(engine)
        override = self.settings.engines.overrides.get(engine)
        resolved = resolve_thresholds(
            eng.labels,
            configured=override.thresholds if override else None,
            manifest=manifest_defaults(eng),
        )
        return resolved[label]


def enabled_engines() -> list[str]:
    """The bundled engines this checkout can run: avfusion only once its model exists."""
    return ["avfusion", "silero-vad"] if HAVE_AVFUSION else ["silero-vad"]


@pytest.fixture(scope="module")
def e2e_redis() -> Iterator[EmbeddedRedis]:
    """A real redis-server shared by one test module."""
    with EmbeddedRedis() as server:
        yield server


@contextlib.contextmanager
def service_thread(**overrides: Any) -> Iterator[ServiceThread]:
    """A started `ServiceThread` with these settings and loopback ICE only; closed on exit."""
    use_loopback_candidates(only=True)
    running = ServiceThread(**overrides)
    try:
        running.start()
        yield running
    finally:
        running.close()
        restore_candidates()


@pytest.fixture(scope="module")
def service(e2e_redis: EmbeddedRedis) -> Iterator[ServiceThread]:
    """The whole service (every bundled engine available) on `e2e_redis`, loopback ICE only."""
    with service_thread(
        server={"port": 0},
        session={"include_loopback": True},
        redis={"url": e2e_redis.url, "prefix": PREFIX},
        engines={"enabled": enabled_engines()},
    ) as running:
        yield running


async def run_command(cmd: list[str], timeout_s: float) -> tuple[int, str]:
    """Run `cmd` from the repository root; its exit code and output (killed after `timeout_s`)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


async def send_scene(
    url: str, scenario: str, truth: Path, *, seconds: float, timeout_s: float = 90.0
) -> dict[str, Any]:
    """Publish a scenario with `scenestream send` in its own process; return its truth JSON.

    The truth's `start` is the capture time (Unix seconds) of scene time 0.
    """
    cmd = [sys.executable, "-m", "stream.cli", "send", url, "--scenario", scenario]
    cmd += ["--truth", str(truth), "--seconds", str(seconds)]
    returncode, text = await run_command(cmd, timeout_s)
    assert returncode == 0, f"sender exited {returncode}:\n{text[-3000:]}"
    assert await asyncio.to_thread(truth.exists), f"sender wrote no truth:\n{text[-3000:]}"
    document: dict[str, Any] = json.loads(await asyncio.to_thread(truth.read_text))
    return document


@dataclass
class Tap:
    """Every raw message the service published for one stream (plus status), undecoded."""

    scenes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # from pub/sub
    status: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # the stream's Redis Stream log
    offline: asyncio.Event = field(default_factory=asyncio.Event)  # the stream's offline status

    def all(self) -> list[dict[str, Any]]:
        """Every message seen, in no particular order."""
        return [*self.scenes, *self.events, *self.status, *self.log]

    def scenes_of(self, engine: str) -> list[dict[str, Any]]:
        """Scene messages from one engine."""
        return [m for m in self.scenes if m.get("engine") == engine]

    def events_of(self, label: str, phase: str) -> list[dict[str, Any]]:
        """Logged lifecycle events of one label and phase."""
        return [m for m in self.log if m.get("label") == label and m.get("phase") == phase]


@contextlib.asynccontextmanager
async def tap(redis_url: str, stream: str, prefix: str = PREFIX) -> AsyncIterator[Tap]:
    """Subscribe to the stream's scene/events channels and the status channel; on exit read
    the stream's log from where it stood on entry (a rerun of a test reuses the stream name).
    Messages are kept as parsed JSON, not validated (the tests do that)."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    log_key = f"{prefix}:{stream}:log"
    newest: Any = await client.xrevrange(log_key, count=1)
    seen: str | None = newest[0][0] if newest else None
    pubsub = client.pubsub()
    channels = {
        f"{prefix}:{stream}:scene": "scenes",
        f"{prefix}:{stream}:events": "events",
        f"{prefix}:status": "status",
    }
    await pubsub.subscribe(*channels)
    result = Tap()

    async def read() -> None:
        async for raw in pubsub.listen():
            if raw.get("type") != "message":
                continue
            msg = json.loads(raw["data"])
            if channels[raw["channel"]] == "status" and msg.get("stream") != stream:
                continue  # another stream's status (the status channel is shared)
            getattr(result, channels[raw["channel"]]).append(msg)
            if msg.get("type") == "status" and msg.get("state") == "offline":
                result.offline.set()

    reader = asyncio.create_task(read(), name=f"e2e-tap-{stream}")
    try:
        yield result
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        entries: Any = await client.xrange(log_key, min=seen or "-")
        result.log = [_log_message(fields) for eid, fields in entries if eid != seen]
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


def _log_message(fields: Mapping[str, str]) -> dict[str, Any]:
    """A log entry's message (stored as one JSON field, `msg`: see the README's Redis section)."""
    raw = fields.get("msg") or fields.get("data") or next(iter(fields.values()))
    msg: dict[str, Any] = json.loads(raw)
    return msg


async def wait_offline(t: Tap, timeout_s: float = 15.0) -> None:
    """Wait until the stream's `offline` status arrived (its last events are out by then)."""
    async with asyncio.timeout(timeout_s):
        await t.offline.wait()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1])."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]
