"""A WHIP (RFC 9725) client on aiortc: POST the offer, apply the answer, DELETE on the way out."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from urllib.parse import urljoin

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3  # a full worker answers 307 to a peer with room (scale-out)


class WhipRefused(Exception):
    """The server refused the offer (or could not be reached); the message is one line."""

    def __init__(self, status: int | None, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s  # the server's `Retry-After` (seconds), if any


class WhipPublisher:
    """One published session: `await publish(tracks)`, then `await close()` (sends DELETE)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ice_servers: Sequence[str] = (),
        timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        self.location: str | None = None
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        servers = [RTCIceServer(urls=u) for u in ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))

    @property
    def token(self) -> str | None:
        """The bearer token this publisher sends (for the service's other routes)."""
        return self._token

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def publish(
        self, tracks: Sequence[MediaStreamTrack], *, codec: str | None = None
    ) -> None:
        """Offer `tracks` (send-only) and apply the server's answer; raises `WhipRefused`."""
        for track in tracks:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if codec and track.kind == "video":
                _prefer_codec(transceiver, codec)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as http:
                body, location = await self._post(http, offer)
        except aiohttp.ClientError as exc:
            raise WhipRefused(None, f"cannot reach {self.url}: {exc}") from exc
        if not location:
            raise WhipRefused(201, "the server sent no Location header")
        self.location = urljoin(self.url, location)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    async def _post(self, http: aiohttp.ClientSession, offer: str) -> tuple[str, str | None]:
        """POST the offer, following `307`/`308` ourselves: aiohttp would drop the bearer token
        on a cross-origin redirect, and the session's `Location` must resolve against the final
        URL (the worker that took the stream). Returns the answer and its `Location`."""
        for _ in range(MAX_REDIRECTS + 1):
            async with http.post(
                self.url, data=offer, headers=self._headers("application/sdp"),
                allow_redirects=False,
            ) as resp:  # fmt: skip
                body = await resp.text()
                target = resp.headers.get("Location")
                if resp.status in (307, 308) and target:
                    self.url = urljoin(self.url, target)
                    logger.info("WHIP POST redirected", extra={"to": self.url})
                    continue
                if resp.status != 201:
                    retry = resp.headers.get("Retry-After", "")
                    wait = float(retry) if retry.isdigit() else None
                    raise WhipRefused(resp.status, _detail(body, resp.reason), wait)
                return body, target
        raise WhipRefused(307, f"more than {MAX_REDIRECTS} redirects")

    async def close(self) -> None:
        """DELETE the session (best effort) and close the peer connection."""
        location, self.location = self.location, None
        try:
            if location is not None:
                async with (
                    aiohttp.ClientSession(timeout=self._timeout) as http,
                    http.delete(location, headers=self._headers()) as resp,
                ):
                    if resp.status not in (200, 204, 404):
                        logger.warning("WHIP DELETE refused", extra={"status": resp.status})
        except (aiohttp.ClientError, TimeoutError):
            logger.warning("WHIP DELETE failed; the server frees the session by its watchdog")
        finally:
            await self.pc.close()


def _detail(body: str, reason: str | None) -> str:
    """The problem+json `detail` (or title) of an error body, on one line."""
    try:
        problem = json.loads(body)
        text = str(problem.get("detail") or problem.get("title") or reason or "")
    except (ValueError, AttributeError):
        text = body.strip() or (reason or "")
    return " ".join(text.split())[:300]


def _prefer_codec(transceiver: object, codec: str) -> None:
    """Offer only `codec` (vp8 or h264) for video."""
    from aiortc.rtcrtpsender import RTCRtpSender

    caps = RTCRtpSender.getCapabilities("video")
    wanted = f"video/{codec}".lower()
    chosen = [c for c in caps.codecs if c.mimeType.lower() in (wanted, "video/rtx")]
    transceiver.setCodecPreferences(chosen)  # type: ignore[attr-defined]
