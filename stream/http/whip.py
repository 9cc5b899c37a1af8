"""The WHIP (RFC 9725) handlers: `POST` an offer, `DELETE` a session, `PATCH` refused.

`WhipEndpoint` is given what it needs by the composition root (`stream.service`): the admission
of this worker, a factory that opens the ingest session of an admitted stream, and, with
scale-out, the worker directory. Its routes are registered in `stream.routes`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable

from aiohttp import web

from stream.config import STREAM_ID_PATTERN, Settings
from stream.http.admission import AtCapacity, StreamAdmission, StreamLive
from stream.http.auth import token_allowed
from stream.http.headroom import RETRY_AFTER_S, AdmissionGate, Refusal
from stream.http.problems import Problem
from stream.http.ratelimit import RateLimiter
from stream.http.reservation import ClaimedElsewhere, StreamReservation
from stream.http.sdp import OfferError, OfferSummary, validate_offer
from stream.ingest.session import IngestSession
from stream.metrics import Metrics
from stream.scaleout.advert import redirect_location
from stream.scaleout.directory import WorkerDirectory

logger = logging.getLogger(__name__)

_STREAM_ID = re.compile(STREAM_ID_PATTERN)
SESSION_METHODS = "DELETE, OPTIONS"
RETRY_AFTER_FULL_S = 10
LARGE_OFFER_BYTES = 16_000  # real offers are 2-8 KB

# (stream, has_video, has_audio, on_closed) -> a new, not yet answered session
OpenSession = Callable[[str, bool, bool, Callable[[IngestSession], None]], IngestSession]


class NoHeadroom(Exception):
    """Admission by headroom refuses the newcomer (raised inside the reservation: it unwinds)."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


class WhipEndpoint:
    """The WHIP handlers, with everything they need injected."""

    def __init__(
        self,
        settings: Settings,
        admission: StreamAdmission,
        open_session: OpenSession,
        scaleout: WorkerDirectory | None = None,
        gate: AdmissionGate | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings, self.admission, self.scaleout = settings, admission, scaleout
        self.gate = gate
        self._open_session = open_session
        self.tokens = [t.get_secret_value() for t in settings.server.tokens]
        self.limiter = RateLimiter(settings.server.post_rate_per_minute)
        # Failed authentications per address: a token guesser is locked out after a few.
        self.auth_failures = RateLimiter(settings.server.auth_failures_per_minute)
        self._refused = metrics.http_refused if metrics is not None else None

    def _check(self, request: web.Request, stream: str) -> None:
        """Stream id, bearer token (and failed-authentication limit), rate limit, in that order."""
        if not _STREAM_ID.match(stream):
            raise Problem(400, f"invalid stream id; it must match {STREAM_ID_PATTERN}")
        address = request.remote or "unknown"
        if self.tokens:
            self._authenticate(request, address)
        if not self.limiter.allow(address, time.monotonic()):
            wait = max(1, round(self.limiter.retry_after(address)))
            raise Problem(429, "too many requests from this address",
                          headers={"Retry-After": str(wait)})  # fmt: skip

    def _authenticate(self, request: web.Request, address: str) -> None:
        """401 for a wrong token; 429 once `address` has used up its failed authentications
        (checked first, so that a locked-out guesser learns nothing, right token or wrong)."""
        now = time.monotonic()
        if self.auth_failures.available(address, now) < 1.0:
            self._count("auth_locked")
            wait = max(1, round(self.auth_failures.retry_after(address)))
            raise Problem(429, "too many failed authentications from this address",
                          headers={"Retry-After": str(wait)})  # fmt: skip
        if not token_allowed(request.headers.get("Authorization"), self.tokens):
            self._count("bad_token")
            self.auth_failures.allow(address, now)
            stream = request.match_info.get("stream")
            logger.info("bearer token refused", extra={"client": address, "stream": stream})
            raise Problem(401, "missing or invalid bearer token",
                          headers={"WWW-Authenticate": 'Bearer realm="scenestream"'})  # fmt: skip

    def _count(self, reason: str) -> None:
        if self._refused is not None:
            self._refused.labels(reason=reason).inc()

    async def post(self, request: web.Request) -> web.Response:
        """`POST /whip/{stream}`: an SDP offer in, `201` + answer + `Location` out.

        With scale-out, a full worker answers `307` to a peer with room, and a stream id live
        on another worker is refused with `409`.
        """
        stream = request.match_info["stream"]
        self._check(request, stream)
        if request.content_type != "application/sdp":
            raise Problem(415, "the offer must be sent as Content-Type: application/sdp")
        if self.admission.full_for(stream):  # full: send the client elsewhere before reading
            return await self._full(stream, "capacity")
        body = await _read_limited(request, self.settings.server.max_body_bytes)
        try:  # the whole offer is checked before anything is reserved
            offer, summary = await _validate(body, self.settings.server.max_body_bytes)
        except OfferError as exc:
            raise Problem(exc.status, exc.detail) from None
        try:
            async with StreamReservation(stream, self.admission, self.scaleout) as reservation:
                carried = len(self.admission) - 1  # besides this newcomer
                if self.gate is not None and (refusal := self.gate.refusal(carried)) is not None:
                    raise NoHeadroom(refusal)
                session = self._open_session(
                    stream, summary.has_video, summary.has_audio, self._closed
                )
                reservation.attach(session)
                answer = await session.answer(offer, summary.kinds)
                reservation.commit()
            if self.gate is not None:
                self.gate.admitted()
        except StreamLive:
            raise Problem(409, f"stream {stream!r} is already live") from None
        except ClaimedElsewhere:
            raise Problem(409, f"stream {stream!r} is already live on another worker") from None
        except AtCapacity:
            return await self._full(stream, "capacity")
        except NoHeadroom as exc:  # refused before admitted streams suffer; nothing kept
            return await self._full(stream, exc.reason)
        except Exception:  # our fault, not the client's: said once, nothing kept
            logger.exception("offer could not be answered", extra={"stream": stream})
            raise Problem(500, "the offer could not be answered; nothing was kept") from None
        location = f"/whip/{stream}/{session.id}"
        logger.info("session created", extra={"stream": stream, "session": session.id})
        return web.Response(
            status=201, text=answer, content_type="application/sdp",
            headers={"Location": location, "ETag": session.etag},
        )  # fmt: skip

    async def _full(self, stream: str, reason: Refusal) -> web.Response:
        """At capacity or out of headroom: `307` to the peer with the most room, else `503` +
        `Retry-After`."""
        if self.gate is not None:
            self.gate.refused(reason)
        peer = None if self.scaleout is None else await self.scaleout.peer_with_room()
        if peer is None:
            why = "at capacity" if reason == "capacity" else f"overloaded ({reason})"
            wait = RETRY_AFTER_FULL_S if reason == "capacity" else RETRY_AFTER_S
            raise Problem(503, f"this worker is {why}; retry later",
                          headers={"Retry-After": str(wait)})  # fmt: skip
        location = redirect_location(peer.url, stream)
        logger.info("at capacity: redirected", extra={"stream": stream, "to": peer.url})
        return web.Response(status=307, text=f"redirected to {location}\n",
                            headers={"Location": location})  # fmt: skip

    def _closed(self, session: IngestSession) -> None:
        current = self.admission.get(session.stream, session.id) is session
        self.admission.release(session.stream, session)
        if current and self.scaleout is not None:
            self.scaleout.release_soon(session.stream)

    async def delete(self, request: web.Request) -> web.Response:
        """`DELETE /whip/{stream}/{session}`: close and free the session."""
        stream, session_id = request.match_info["stream"], request.match_info["session"]
        self._check(request, stream)
        session = self.admission.get(stream, session_id)
        if session is None:
            raise Problem(404, "no such session (already closed, or never existed)")
        await session.close("deleted")
        return web.Response(status=200)

    async def patch(self, request: web.Request) -> web.Response:
        """Trickle ICE and ICE restart are not supported: `405` + `Allow` (RFC 9725 §4.3)."""
        self._check(request, request.match_info["stream"])
        raise Problem(405, "trickle ICE and ICE restart are not supported; send a full offer",
                      headers={"Allow": SESSION_METHODS})  # fmt: skip

    async def close_all(self, _: web.Application) -> None:
        """Shutdown: close every session."""
        sessions = self.admission.sessions()
        await asyncio.gather(*(s.close("shutdown") for s in sessions), return_exceptions=True)


async def _validate(body: bytes, limit: int) -> tuple[str, OfferSummary]:
    """`validate_offer`, in a thread for a large offer (tens of ms of parsing at the size limit:
    the loop keeps moving media meanwhile)."""
    if len(body) <= LARGE_OFFER_BYTES:
        return validate_offer(body, limit)
    return await asyncio.to_thread(validate_offer, body, limit)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it exceeds `limit` (never buffers more)."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, f"offer over {limit} bytes")
    chunks, size = [], 0
    while chunk := await request.content.read(65_536):
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"offer over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
