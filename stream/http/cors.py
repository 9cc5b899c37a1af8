"""CORS for browser WHIP clients served from other origins (RFC 9725 section 4.1)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALLOW_METHODS = "POST, DELETE, PATCH, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, If-Match"
EXPOSE_HEADERS = "Location, ETag, Link, Retry-After"


def allowed_origin(origin: str | None, allowed: Sequence[str]) -> str | None:
    """The value for `Access-Control-Allow-Origin`, or None when `origin` is not allowed."""
    if not origin:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


class RefusedOrigins:
    """Remembers which refused origins were logged, so each is logged once (pure, bounded).

    Past `max_kept` origins no new one is remembered: one more line says so and the rest are
    not logged, so a client inventing origins cannot fill the log or the memory.
    """

    def __init__(self, max_kept: int = 256) -> None:
        self.max_kept = max_kept
        self._seen: set[str] = set()
        self.full = False

    def first(self, origin: str) -> bool:
        """True the first time `origin` is seen (while there is room)."""
        if origin in self._seen or self.full:
            return False
        if len(self._seen) >= self.max_kept:
            self.full = True
            logger.warning(
                "CORS: %d refused origins logged; further ones are not (server.cors_origins)",
                self.max_kept,
            )
            return False
        self._seen.add(origin)
        return True


def cross_origin(origin: str, host: str | None) -> bool:
    """Whether a request's `Origin` names another host than the one it was sent to (a browser
    also sends `Origin` on a same-origin POST: that one needs no CORS)."""
    return urlsplit(origin).netloc.lower() != (host or "").lower()


def _note_refused(
    refused: RefusedOrigins, origin: str, preflight: bool, request: web.Request
) -> None:
    """Log a refused cross-origin request the first time its origin is seen."""
    if (preflight or cross_origin(origin, request.host)) and refused.first(origin):
        logger.warning(
            "CORS: refused origin %r (%s %s); allow a web app there by adding its origin to "
            "server.cors_origins",
            origin, request.method, request.path,
        )  # fmt: skip


def cors_middleware(
    allowed: Sequence[str],
) -> Middleware:
    """Answer preflights and add CORS headers (errors included) for allowed origins."""
    origins = list(allowed)
    refused = RefusedOrigins()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        asked = request.headers.get("Origin")
        origin = allowed_origin(asked, origins)
        preflight = request.method == "OPTIONS" and bool(
            request.headers.get("Access-Control-Request-Method")
        )
        if asked and origin is None:
            _note_refused(refused, asked[:200], preflight, request)
        if preflight:
            response: web.StreamResponse = web.Response(status=204)
            if origin:
                response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            if origin != "*":
                response.headers["Vary"] = "Origin"
        return response

    return middleware
