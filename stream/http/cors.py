"""CORS for browser WHIP clients served from other origins (RFC 9725 section 4.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

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


def cors_middleware(
    allowed: Sequence[str],
) -> Middleware:
    """Answer preflights and add CORS headers (errors included) for allowed origins."""
    origins = list(allowed)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = allowed_origin(request.headers.get("Origin"), origins)
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
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
