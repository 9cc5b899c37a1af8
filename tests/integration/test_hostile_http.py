"""Abuse at the HTTP edge: token guessing is locked out per address, requests the HTTP parser
refuses are logged once per address (no traceback), answers accept only Opus for audio."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from stream.http.rejects import RejectedRequestLog
from tests.support.sdp_mutations import load_offers
from tests.support.whip_support import running_service, settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]

GOOD = {"Authorization": "Bearer right-token"}


async def post_from(url: str, address: str, headers: dict[str, str]) -> tuple[int, str | None]:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(url, data=b"junk", headers={"Content-Type": "application/sdp", **headers}) as r,
    ):
        return r.status, r.headers.get("Retry-After")


async def test_token_guessing_is_locked_out_per_address_with_retry_after() -> None:
    config = settings(server={"tokens": ["right-token"], "auth_failures_per_minute": 5})
    async with running_service(config) as service:
        url = service.whip("cam1")
        wrong = {"Authorization": "Bearer guess"}
        results = [await post_from(url, "127.0.0.1", wrong) for _ in range(150)]
        statuses = [status for status, _ in results]
        assert statuses[:5] == [401] * 5
        assert set(statuses[5:]) == {429}
        assert int(results[-1][1] or 0) >= 1  # Retry-After: when the next guess is earned back
        locked, _ = await post_from(url, "127.0.0.1", GOOD)
        assert locked == 429  # locked out: even the right token learns nothing
        other, _ = await post_from(url, "127.0.0.2", GOOD)
        assert other == 400  # another address is not affected (junk offer: 400)
        async with aiohttp.ClientSession() as http, http.get(f"{service.url}/metrics") as resp:
            text = await resp.text()
        assert 'scenestream_http_refused_total{reason="bad_token"} 5.0' in text
        assert 'scenestream_http_refused_total{reason="auth_locked"} 146.0' in text


RAW_REQUESTS = [
    "POST /whip/caf\u00e9 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(),
    b"POST /whip/cam1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    b"POST /whip/cam1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01\x02\r\n\r\n",
]


async def send_raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 5)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_requests_the_parser_refuses_are_logged_once_per_address_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.INFO, logger="stream")
    async with running_service() as service:
        for _ in range(5):
            for request in RAW_REQUESTS:
                answer = await send_raw(service.worker.port, request)
                assert answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")) or answer == b""
        async with aiohttp.ClientSession() as http, http.get(f"{service.url}/metrics") as resp:
            text = await resp.text()
    assert 'scenestream_http_refused_total{reason="malformed_request"} 15.0' in text
    refusals = [r for r in caplog.records if r.name == "stream.http.rejects"]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert refusals[0].levelno == logging.WARNING
    assert getattr(refusals[0], "client", None) == "127.0.0.1"
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_refusal_log_says_again_after_the_interval_and_forgets_old_addresses() -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    from stream.metrics import Metrics

    now = [0.0]
    log = RejectedRequestLog(Metrics(process=False), interval_s=60, max_addresses=2,
                             clock=lambda: now[0])  # fmt: skip
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.__dict__.get("client", ""))  # type: ignore[method-assign]
    target = logging.getLogger("stream.http.rejects")
    target.addHandler(handler)
    try:
        for t, address in [
            (0, "a"),
            (1, "a"),
            (59, "a"),
            (61, "a"),
            (62, "b"),
            (63, "c"),
            (64, "a"),
        ]:
            now[0] = t
            log.exception(  # noqa: LOG004 - as aiohttp calls it
                "Error handling request from %s", address, exc_info=BadHttpMessage("x")
            )
    finally:
        target.removeHandler(handler)
    # "a" is muted for 60 s after each line; at 64 s it had been evicted by "b" and "c" (2 kept)
    assert seen == ["a", "a", "b", "c", "a"]


async def test_answer_accepts_only_opus_and_pcmu_only_audio_is_422() -> None:
    async with running_service() as service, aiohttp.ClientSession() as http:
        firefox = load_offers()["firefox.sdp"]  # offers opus, G722, PCMU, PCMA, telephone-event
        assert "PCMU/8000" in firefox
        sdp = {"Content-Type": "application/sdp"}
        async with http.post(service.whip("ff"), data=firefox, headers=sdp) as resp:
            assert resp.status == 201
            answer, location = await resp.text(), resp.headers["Location"]
        audio = answer[answer.index("m=audio") : answer.index("m=video")]
        rtpmaps = [line for line in audio.splitlines() if line.startswith("a=rtpmap")]
        assert rtpmaps == ["a=rtpmap:109 opus/48000/2"]
        async with http.delete(service.url + location) as resp:
            assert resp.status == 200
        pcmu_only = firefox.replace(
            "m=audio 57272 UDP/TLS/RTP/SAVPF 109 9 0 8 101", "m=audio 57272 UDP/TLS/RTP/SAVPF 0"
        )
        pcmu_only = "".join(
            line for line in pcmu_only.splitlines(True)
            if not line.startswith(("a=rtpmap:109", "a=rtpmap:9 ", "a=rtpmap:8 ", "a=rtpmap:101",
                                    "a=fmtp:109", "a=fmtp:101"))
        )  # fmt: skip
        async with http.post(service.whip("ff"), data=pcmu_only, headers=sdp) as resp:
            assert resp.status == 422
            detail = (await resp.json())["detail"]
        assert "PCMU" in detail
        assert "Opus" in detail
        assert len(service.registry) == 0
