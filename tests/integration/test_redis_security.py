"""The service on a secured, real redis-server: a password (`redis://:pw@`), an ACL user
(`redis://user:pw@`) and TLS with a CA and a client certificate (`rediss://...?ssl_ca_certs=`).
Right credentials: ready. Wrong ones: `/readyz` 503 whose reason (and the log) names the cause."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import aiohttp
import pytest

from stream.config import load_settings
from stream.service import Service
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


@pytest.fixture
def acl_redis() -> Iterator[SecuredRedis]:
    with acl_server("scenestream", "acl-pw") as server:
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


async def test_acl_user(acl_redis: SecuredRedis) -> None:
    status, _ = await readyz(f"redis://scenestream:acl-pw@127.0.0.1:{acl_redis.port}/0")
    assert status == 200
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
