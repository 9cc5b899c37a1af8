"""Whether the service is analysing what `scenestream send` publishes: its `/api/streams` row.

A publisher can connect and send for minutes while the service decodes nothing (a codec it
cannot decode, a broken bitstream); the WHIP answer and the ICE state say nothing of that. The
sender reads its stream's row and fails when a kind of media it sends never arrived decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

logger = logging.getLogger(__name__)


class StreamFailed(Exception):
    """The service reports the published stream failed; the message says how, on one line."""


def stream_failure(row: Mapping[str, Any] | None, kinds: Collection[str]) -> str | None:
    """Why the stream failed per its `/api/streams` row (None: it is fine). Pure."""
    if row is None:
        return "the stream is not live on the service any more"
    received = row.get("frames_received") or {}
    silent = sorted(k for k in kinds if int(received.get(k, 0)) == 0)
    if silent:
        return f"the service decoded no {' and no '.join(silent)} frames"
    return None


def streams_url(whip_url: str) -> tuple[str, str]:
    """(`/api/streams` URL of the worker behind `whip_url`, the stream id)."""
    parts = urlsplit(whip_url)
    stream = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return urlunsplit((parts.scheme, parts.netloc, "/api/streams", "", "")), stream


async def check_stream(whip_url: str, token: str | None, kinds: Collection[str]) -> None:
    """Raise `StreamFailed` when the service's row shows the stream failed.

    A service that cannot be asked (an older one, a proxy in between) is not a failure.
    """
    url, stream = streams_url(whip_url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(url, headers=headers) as resp,
        ):
            if resp.status != 200:
                logger.info("stream health not checked", extra={"status": resp.status})
                return
            document = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        logger.info("stream health not checked: %s", exc)
        return
    rows = document.get("streams", []) if isinstance(document, dict) else []
    row = next((r for r in rows if isinstance(r, dict) and r.get("stream") == stream), None)
    reason = stream_failure(row, kinds)
    if reason is not None:
        raise StreamFailed(reason)
