"""Every HTTP route of a worker, registered in one place.

| route | handler |
| --- | --- |
| `POST /whip/{stream}`, `DELETE`/`PATCH /whip/{stream}/{session}` | `whip.WhipEndpoint` |
| `GET /healthz`, `/readyz`, `/metrics`, `/api/streams`, `/api/engines` | `api` |
| `GET`/`POST /api/cameras`, `DELETE /api/cameras/{id}` | `cameras.Cameras` |
| `GET /`, `/static/...`, `/api/live` | `stream.live.page.LiveBridge` (when Redis is there) |

The composition root (`stream.service`) builds the parts and calls `build_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from stream.config import Settings
from stream.http import api
from stream.http.cameras import Cameras
from stream.http.cors import cors_middleware
from stream.http.problems import problem_middleware
from stream.http.whip import WhipEndpoint
from stream.live.page import LIVE_BRIDGE, WEB_DIR, LiveBridge
from stream.metrics import Metrics


def build_app(
    settings: Settings,
    metrics: Metrics,
    whip: WhipEndpoint,
    *,
    ready: api.ReadyCheck,
    stream_figures: api.StreamFigures | None = None,
    engine_reports: Callable[[], Sequence[Mapping[str, Any]]] = tuple,
    live: LiveBridge | None = None,
    cameras: Cameras | None = None,
) -> web.Application:
    """The worker's aiohttp application (see the module docstring for its routes).

    `ready` decides `/readyz`; `stream_figures`, when given, returns per-stream, per-engine
    figures from downstream (published/late counts, latency) that `/api/streams` adds to each
    stream's row under `engines`; `live` is the live page's Redis bridge.
    """
    app = web.Application(
        middlewares=[cors_middleware(settings.server.cors_origins), problem_middleware],
        client_max_size=settings.server.max_body_bytes + 1,
    )
    app.router.add_post("/whip/{stream}", whip.post)
    app.router.add_delete("/whip/{stream}/{session}", whip.delete)
    app.router.add_patch("/whip/{stream}/{session}", whip.patch)
    app.on_shutdown.append(whip.close_all)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz(ready))
    app.router.add_get("/metrics", api.metrics_text(metrics))
    app.router.add_get("/api/streams", api.streams(whip.admission, stream_figures))
    app.router.add_get("/api/engines", api.engines(engine_reports))
    if cameras is not None:
        app.router.add_get("/api/cameras", cameras.list)
        app.router.add_post("/api/cameras", cameras.post)
        app.router.add_delete("/api/cameras/{id}", cameras.delete)
        app.on_shutdown.append(cameras.close_all)
    if live is not None:
        add_live_routes(app, live)
    return app


def add_live_routes(app: web.Application, bridge: LiveBridge) -> None:
    """`GET /` (the page), `GET /static/...` (its script and style), `GET /api/live` (SSE).

    The bridge opens its Redis client on startup and closes it on cleanup; it is reachable as
    `app[LIVE_BRIDGE]` (e.g. to report the number of live viewers).
    """
    app[LIVE_BRIDGE] = bridge
    app.cleanup_ctx.append(bridge.lifecycle)
    app.on_shutdown.append(bridge.shutdown)
    app.router.add_get("/", bridge.index)
    app.router.add_static("/static/", WEB_DIR / "static", follow_symlinks=False)
    app.router.add_get("/api/live", bridge.live)
