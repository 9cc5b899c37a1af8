"""RFC 9457 problem details: every error the HTTP API returns is one of these."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = logging.getLogger(__name__)


class Problem(Exception):
    """An HTTP error answered as `application/problem+json`; raise it from a handler."""

    def __init__(
        self, status: int, detail: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self, instance: str | None = None) -> web.Response:
        """The problem as an aiohttp response."""
        return problem_response(self.status, self.detail, headers=self.headers, instance=instance)


def problem_body(status: int, detail: str, instance: str | None = None) -> dict[str, object]:
    """The JSON object of a problem (`type` stays `about:blank`: the status says it all)."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> web.Response:
    """An `application/problem+json` response."""
    return web.Response(
        status=status,
        body=json.dumps(problem_body(status, detail, instance)).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as `application/problem+json` (RFC 9457)."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(instance=request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return problem_response(exc.status, exc.reason, headers=headers, instance=request.path)
    except Exception:  # a fault of ours: said once in the log, never to the client
        if request.writer.output_size > 0:
            raise  # a streamed response already started: aiohttp closes the connection
        logger.exception("request failed", extra={"path": request.path})
        return problem_response(500, "internal error", instance=request.path)
