"""Health, readiness, metrics and the JSON API (`/api/streams`, `/api/engines`) handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from stream.http.admission import StreamAdmission
from stream.metrics import Metrics

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Readiness:
    """`/readyz`'s verdict and, when not ready, why (e.g. Redis refused authentication)."""

    ready: bool
    reason: str | None = None


ReadyCheck = Callable[[], Awaitable[bool | Readiness]]
StreamFigures = Callable[[], Mapping[str, Mapping[str, Any]]]


async def healthz(_: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


def readyz(ready: ReadyCheck) -> Handler:
    """Readiness: `200` only when `ready()` says so (engines warmed, Redis answering); a
    `Readiness` with a reason adds `"reason"` to the body."""

    async def handler(_: web.Request) -> web.Response:
        verdict = await ready()
        if isinstance(verdict, bool):
            verdict = Readiness(verdict)
        body: dict[str, object] = {"ready": verdict.ready}
        if verdict.reason is not None:
            body["reason"] = verdict.reason
        return web.json_response(body, status=200 if verdict.ready else 503)

    return handler


def metrics_text(metrics: Metrics) -> Handler:
    """Prometheus text format, rendered in a thread (the registry walk is not free)."""

    async def handler(_: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler


def stream_rows(
    rows: Sequence[dict[str, Any]], figures: Mapping[str, Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The `/api/streams` rows: ingest's figures per stream, plus (when there is a downstream)
    each engine's figures under `engines`."""
    out = [dict(row) for row in rows]
    if figures is not None:
        for row in out:
            row["engines"] = dict(figures.get(row["stream"], {}))
    return out


def streams(admission: StreamAdmission, figures: StreamFigures | None) -> Handler:
    """`GET /api/streams`: the live streams of this worker."""

    async def handler(_: web.Request) -> web.Response:
        downstream = figures() if figures is not None else None
        rows = stream_rows(admission.snapshot(), downstream)
        return web.json_response({"streams": rows, "closed": admission.recently_closed()})

    return handler


def engines(reports: Callable[[], Sequence[Mapping[str, Any]]]) -> Handler:
    """`GET /api/engines`: each engine, the backend it runs on and why others were skipped."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"engines": [dict(r) for r in reports()]})

    return handler
