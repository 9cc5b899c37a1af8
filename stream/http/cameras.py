"""Pulled cameras: the ones in the config, and `GET`/`POST /api/cameras`, `DELETE
/api/cameras/{id}` to add and remove them at runtime (same bearer tokens as WHIP).

A camera holds a stream slot from the moment it is added, online or not: it counts against
`server.max_streams`, its id cannot be taken by a WHIP publisher, and its windows, events and
status go where a WHIP stream's go.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web
from pydantic import ValidationError

from stream.config import CameraConfig, Settings
from stream.http.admission import AtCapacity, StreamAdmission, StreamLive
from stream.http.auth import token_allowed
from stream.http.headroom import AdmissionGate
from stream.http.problems import Problem
from stream.http.ratelimit import RateLimiter
from stream.ingest.camera import CameraSource, OpenIngest
from stream.metrics import Metrics
from stream.publish.status import StatusSink
from stream.scaleout.directory import WorkerDirectory

logger = logging.getLogger(__name__)

# Options a caller may set over HTTP: how to reach the camera, never which protocols or files
# FFmpeg may open (the config file, written by an operator, may set any option).
HTTP_OPTIONS = frozenset(
    {"rtsp_transport", "rtsp_flags", "buffer_size", "max_delay", "reorder_queue_size",
     "user_agent", "allowed_media_types", "stimeout", "timeout", "rw_timeout"}
)  # fmt: skip
MAX_BODY_BYTES = 8_192


class CameraAlreadyAdded(Exception):
    """The id is live already (a camera or a WHIP stream)."""


class Cameras:
    """The worker's pulled cameras, admitted like WHIP streams."""

    def __init__(
        self,
        settings: Settings,
        admission: StreamAdmission,
        open_ingest: OpenIngest,
        status: StatusSink,
        metrics: Metrics,
        on_disconnected: Callable[[str], None],
        scaleout: WorkerDirectory | None = None,
        gate: AdmissionGate | None = None,
    ) -> None:
        self.settings, self.admission, self.scaleout = settings, admission, scaleout
        self.gate = gate  # headroom, as for a WHIP newcomer (runtime additions only)
        self._open_ingest, self._status, self._metrics = open_ingest, status, metrics
        self._on_disconnected = on_disconnected
        self.cameras: dict[str, CameraSource] = {}
        self.tokens = [t.get_secret_value() for t in settings.server.tokens]
        self.limiter = RateLimiter(settings.server.post_rate_per_minute)

    async def start(self) -> None:
        """Start the configured cameras (a clash or a full worker is an error at start)."""
        for config in self.settings.cameras:
            try:
                await self.add(config)
            except (StreamLive, AtCapacity) as exc:
                raise ValueError(
                    f"camera {config.id!r} cannot start: {type(exc).__name__}"
                ) from None

    async def add(self, config: CameraConfig) -> CameraSource:
        """Admit and start a camera; raises `StreamLive` (here, or on another worker with
        scale-out) or `AtCapacity`."""
        self.admission.reserve(config.id)
        if self.scaleout is not None and not await self.scaleout.claim(config.id):
            self.admission.release(config.id)
            raise StreamLive(config.id)
        camera = CameraSource(
            config, self.settings.pull, self._open_ingest, self._status, self._metrics,
            on_closed=self._closed, on_disconnected=self._on_disconnected,
        )  # fmt: skip
        self.admission.add(camera)
        self.cameras[config.id] = camera
        camera.start()
        logger.info("camera added", extra={"stream": config.id})
        return camera

    def _closed(self, camera: CameraSource) -> None:
        if self.cameras.get(camera.stream) is camera:
            del self.cameras[camera.stream]
        self.admission.release(camera.stream, camera)
        if self.scaleout is not None:
            self.scaleout.release_soon(camera.stream)

    async def close_all(self, _: web.Application | None = None) -> None:
        """Shutdown: stop every camera."""
        cameras = list(self.cameras.values())
        await asyncio.gather(*(c.close("shutdown") for c in cameras), return_exceptions=True)

    # -- HTTP ---------------------------------------------------------------------------------

    def _check(self, request: web.Request) -> None:
        if not token_allowed(request.headers.get("Authorization"), self.tokens):
            raise Problem(401, "missing or invalid bearer token",
                          headers={"WWW-Authenticate": 'Bearer realm="scenestream"'})  # fmt: skip
        address = request.remote or "unknown"
        if request.method != "GET" and not self.limiter.allow(address, time.monotonic()):
            wait = max(1, round(self.limiter.retry_after(address)))
            raise Problem(429, "too many requests from this address",
                          headers={"Retry-After": str(wait)})  # fmt: skip

    async def list(self, request: web.Request) -> web.Response:
        """`GET /api/cameras`: every camera, its state and the reason for it."""
        self._check(request)
        return web.json_response({"cameras": [c.row() for c in self.cameras.values()]})

    async def post(self, request: web.Request) -> web.Response:
        """`POST /api/cameras` `{"id", "url", "options"?}`: `201` + the camera's row."""
        self._check(request)
        config = _parse(await request.read())
        bad = sorted(set(config.options) - HTTP_OPTIONS)
        if bad:
            raise Problem(400, f"options not allowed over HTTP: {', '.join(bad)} "
                               f"(allowed: {', '.join(sorted(HTTP_OPTIONS))})")  # fmt: skip
        if self.gate is not None and (refusal := self.gate.refusal()) is not None:
            self.gate.refused(refusal)
            raise Problem(503, f"this worker is overloaded ({refusal}); retry later",
                          headers={"Retry-After": "10"})  # fmt: skip
        try:
            camera = await self.add(config)
        except StreamLive:
            raise Problem(
                409, f"stream {config.id!r} is already live (here or on a peer)"
            ) from None
        except AtCapacity:
            if self.gate is not None:
                self.gate.refused("capacity")
            raise Problem(503, "this worker is at capacity; retry later",
                          headers={"Retry-After": "10"}) from None  # fmt: skip
        if self.gate is not None:
            self.gate.admitted()
        return web.json_response(
            camera.row(), status=201, headers={"Location": f"/api/cameras/{config.id}"}
        )

    async def delete(self, request: web.Request) -> web.Response:
        """`DELETE /api/cameras/{id}`: stop pulling and free the stream."""
        self._check(request)
        camera = self.cameras.get(request.match_info["id"])
        if camera is None:
            raise Problem(404, "no such camera")
        await camera.close("deleted")
        return web.Response(status=200)


def _parse(body: bytes) -> CameraConfig:
    """The camera of a POST body, or a 400 that names the field."""
    if len(body) > MAX_BODY_BYTES:
        raise Problem(413, f"body over {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise Problem(400, "the body must be a JSON object {id, url, options?}") from None
    try:
        return CameraConfig.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Problem(400, f"{where}: {first['msg']}") from None
