"""A real `redis-server` with a password, ACL users or TLS, and the certificates TLS needs.

Separate from `stream.embedded_redis` (the service's own, open, loopback server): these are test
servers configured the way a production Redis is secured.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stream.embedded_redis import find_redis_server, free_port


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and the server and client certificates it signs (valid one day)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey, *, ca: bool, san: x509.GeneralName | None = None,
    ) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scenestream test CA")])
    ca_cert = certificate("scenestream test CA", ca_key, ca_name, ca_key, ca=True)
    files = TlsFiles(*(directory / n for n in ("ca.pem", "server.pem", "server.key",
                                               "client.pem", "client.key")))  # fmt: skip
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for cert_path, key_path, name, san in (
        (files.server_cert, files.server_key, "127.0.0.1",
         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        (files.client_cert, files.client_key, "scenestream", None),
    ):  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(name, key, ca_name, ca_key, ca=False, san=san)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return files


class SecuredRedis:
    """`redis-server` on 127.0.0.1 with `args` (e.g. `--requirepass`, `--user`, TLS options);
    `probe` is a redis-py URL that must answer PING once the server is up."""

    def __init__(self, args: Sequence[str], probe: str, port: int) -> None:
        self.args, self.probe, self.port = list(args), probe, port
        self._dir = tempfile.TemporaryDirectory(prefix="scenestream-redis-secured-")
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SecuredRedis:
        base = [find_redis_server(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self._dir.name, "--loglevel", "warning"]  # fmt: skip
        self._proc = subprocess.Popen(base + self.args, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"redis-server exited: {err.strip()[:300]}")
            try:
                with redis.Redis.from_url(self.probe, socket_timeout=1) as client:
                    client.ping()
                return self
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise
                time.sleep(0.05)

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
        self._dir.cleanup()


def password_server(password: str) -> SecuredRedis:
    """`requirepass`: the default user needs `password`."""
    port = free_port()
    return SecuredRedis(["--port", str(port), "--requirepass", password],
                        f"redis://:{password}@127.0.0.1:{port}/0", port)  # fmt: skip


def acl_server(user: str, password: str, rules: Sequence[str]) -> SecuredRedis:
    """An ACL user with `rules` (keys, channels, commands); the default user disabled."""
    port = free_port()
    args = ["--port", str(port), "--user", "default", "off",
            "--user", user, "on", f">{password}", *rules]  # fmt: skip
    return SecuredRedis(args, f"redis://{user}:{password}@127.0.0.1:{port}/0", port)


def tls_server(files: TlsFiles) -> SecuredRedis:
    """TLS only (no plain port), client certificates required."""
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(files.server_cert),
            "--tls-key-file", str(files.server_key), "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", "yes"]  # fmt: skip
    return SecuredRedis(args, tls_url(port, files), port)


def tls_url(port: int, files: TlsFiles, *, client_cert: bool = True) -> str:
    """A rediss:// URL trusting the test CA, with the client certificate unless told not to."""
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={files.ca}"
    if client_cert:
        url += f"&ssl_certfile={files.client_cert}&ssl_keyfile={files.client_key}"
    return url
