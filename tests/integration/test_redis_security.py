"""The service on a secured, real redis-server: a password (`redis://:pw@`), an ACL user
(`redis://user:pw@`) and TLS with a CA and a client certificate (`rediss://...?ssl_ca_certs=`).
Right credentials: ready. Wrong ones: `/readyz` 503 whose reason (and the log) names the cause."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from stream.config import load_settings
from stream.service import Service
from tests.support.sdp_mutations import load_offers
from tests.support.secured_redis import (
    SecuredRedis,
    TlsFiles,
    acl_server,
    make_tls_files,
    password_server,
    tls_server,
    tls_url,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def readyz(redis_url: str) -> tuple[int, dict[str, object]]:
    settings = load_settings(
        None, server={"port": 0}, redis={"url": redis_url}, engines={"enabled": ["silero-vad"]}
    )
    service = Service(settings)
    await service.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{service.url}/readyz") as resp:
            return resp.status, await resp.json()
    finally:
        await service.close()


@pytest.fixture
def password_redis() -> Iterator[SecuredRedis]:
    with password_server("s3cret-pw") as server:
        yield server


# What the README tells an operator to grant (prefix "scenestream").
ACL_RULES = ["~scenestream:*", "&scenestream:*", "+@pubsub", "+@stream", "+@string", "+@set",
             "+@sortedset", "+@keyspace", "+@connection", "+@scripting", "+info"]  # fmt: skip


@pytest.fixture
def acl_redis() -> Iterator[SecuredRedis]:
    with acl_server("scenestream", "acl-pw", ACL_RULES) as server:
        yield server


async def test_password_in_the_url_is_used(password_redis: SecuredRedis) -> None:
    status, body = await readyz(f"redis://:s3cret-pw@127.0.0.1:{password_redis.port}/0")
    assert (status, body) == (200, {"ready": True})


@pytest.mark.parametrize("userinfo", [":wrong@", ""])
async def test_wrong_or_missing_password_is_named_in_readyz_and_the_log(
    password_redis: SecuredRedis, userinfo: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stream")
    status, body = await readyz(f"redis://{userinfo}127.0.0.1:{password_redis.port}/0")
    assert status == 503
    assert body["ready"] is False
    assert "authentication failed" in str(body["reason"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("authentication failed" in message for message in errors), errors
    assert not any("wrong" in r.getMessage() for r in caplog.records)  # no password in the log


@pytest.mark.usefixtures("loopback_ice")
async def test_acl_user_with_the_documented_rules_carries_a_stream(
    acl_redis: SecuredRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stream")
    url = f"redis://scenestream:acl-pw@127.0.0.1:{acl_redis.port}/0"
    settings = load_settings(
        None, server={"port": 0}, redis={"url": url}, engines={"enabled": ["silero-vad"]}
    )
    service = Service(settings)
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{service.url}/readyz") as resp:
                assert resp.status == 200
            offer = load_offers()["aiortc.sdp"]
            headers = {"Content-Type": "application/sdp"}
            async with http.post(f"{service.url}/whip/acl1", data=offer, headers=headers) as resp:
                assert resp.status == 201
                location = resp.headers["Location"]
            client = aioredis.from_url(url)
            try:  # the cross-worker claim and the status message went through the ACL
                assert await client.exists("scenestream:_claims:acl1") == 1
            finally:
                await client.aclose()
            async with http.delete(service.url + location) as resp:
                assert resp.status == 200
    finally:
        await service.close()
    redis_side = [r.getMessage() for r in caplog.records
                  if r.name.startswith(("stream.publish", "stream.scaleout", "stream.service"))
                  and "bearer tokens" not in r.getMessage()]  # fmt: skip
    assert redis_side == []  # no NOPERM: publisher flushed, claims taken and released


async def test_acl_user_with_a_wrong_password(acl_redis: SecuredRedis) -> None:
    status, body = await readyz(f"redis://scenestream:nope@127.0.0.1:{acl_redis.port}/0")
    assert status == 503
    assert "authentication failed" in str(body["reason"])


async def test_rediss_with_ca_and_client_certificate(tls_files: TlsFiles) -> None:
    with tls_server(tls_files) as server:
        status, _ = await readyz(tls_url(server.port, tls_files))
        assert status == 200
        status, body = await readyz(tls_url(server.port, tls_files, client_cert=False))
        assert status == 503
        assert "TLS" in str(body["reason"])
