"""A WHIP publisher on FFmpeg 8's own `whip` muxer (through PyAV's wheels), run as its own process.

FFmpeg encodes H.264 (libx264, constrained baseline, no B-frames: the muxer requires it) and Opus
from a generated "flash and click" scene (a 100 ms white flash on black video and a 10 ms click
on silence, once a second), paced in real time, and its muxer does WHIP, ICE and DTLS itself.

`--cert-dir DIR` hands FFmpeg a P-256 certificate written there (its `cert_file`/`key_file`
options). Without it FFmpeg 8.0's GnuTLS backend (PyAV's wheels) generates a P-224 (secp224r1)
key, which the OpenSSL 4.0 in the `cryptography` wheel does not accept in a handshake
(`SSL_CTX_set1_curves_list("P-224")` fails there): the stream ends `dtls failed`. Upstream FFmpeg
generates P-256 instead (ossrs/ffmpeg-webrtc#70).

    python tests/support/ffmpeg_whip_publisher.py http://127.0.0.1:8080/whip/cam1 --seconds 10 \
        --cert-dir /tmp/whip-cert
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

WIDTH, HEIGHT, FPS = 640, 480, 30
RATE, AUDIO_FRAME = 48_000, 960  # 20 ms Opus frames
FLASH_S, CLICK_S = 0.1, 0.01


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def write_certificate(directory: Path, kind: str = "p256") -> tuple[Path, Path]:
    """A self-signed certificate and key (PEM): ECDSA P-256 as browsers use for DTLS, or RSA
    2048 (FFmpeg is then a DTLS server with an RSA key: aiortc must offer ECDHE-RSA suites)."""
    directory.mkdir(parents=True, exist_ok=True)
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scenestream-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def publish(url: str, seconds: float, cert: tuple[Path, Path] | None, token: str | None) -> int:
    options = {"handshake_timeout": "10000"}
    if cert is not None:
        options.update(cert_file=str(cert[0]), key_file=str(cert[1]))
    if token:
        options["authorization"] = token
    say("connecting", url=url, own_certificate=cert is not None)
    try:
        container = av.open(url, mode="w", format="whip", options=options)
    except av.FFmpegError as exc:
        say("failed", reason=f"open: {exc}")
        return 1
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.options = {"profile": "baseline", "tune": "zerolatency", "preset": "ultrafast",
                     "bf": "0", "g": str(FPS * 2)}  # fmt: skip
    audio = container.add_stream("libopus", rate=RATE, layout="stereo")
    audio.options = {"application": "lowdelay"}
    black = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    white = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    click = np.zeros((2, AUDIO_FRAME), np.int16)
    click[:, : int(CLICK_S * RATE)] = 12_000
    silence = np.zeros((2, AUDIO_FRAME), np.int16)
    start = time.monotonic()
    video_n = audio_n = 0
    try:
        while (now := time.monotonic() - start) < seconds:
            next_video, next_audio = video_n / FPS, audio_n * AUDIO_FRAME / RATE
            due = min(next_video, next_audio)
            if due > now:
                time.sleep(due - now)
            if next_video <= next_audio:
                image = white if next_video % 1.0 < FLASH_S else black
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = video_n, Fraction(1, FPS)
                container.mux(video.encode(frame))
                video_n += 1
            else:
                samples = click if next_audio % 1.0 < AUDIO_FRAME / RATE else silence
                aframe = av.AudioFrame.from_ndarray(samples.T.reshape(1, -1), "s16", "stereo")
                aframe.sample_rate, aframe.pts = RATE, audio_n * AUDIO_FRAME
                aframe.time_base = Fraction(1, RATE)
                container.mux(audio.encode(aframe))
                audio_n += 1
            if video_n == 1 and audio_n == 0:
                say("connected")  # the muxer's header (WHIP, ICE, DTLS) succeeded
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    except av.FFmpegError as exc:
        say("failed", reason=str(exc), video_frames=video_n, audio_frames=audio_n)
        return 1
    finally:
        container.close()  # the muxer DELETEs its session here
    say("done", video_frames=video_n, audio_frames=audio_n)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cert-dir", type=Path, help="write and use a certificate here")
    parser.add_argument("--cert-kind", choices=["p256", "rsa"], default="p256")
    parser.add_argument("--token", help="bearer token")
    args = parser.parse_args()
    cert = write_certificate(args.cert_dir, args.cert_kind) if args.cert_dir else None
    return publish(args.url, args.seconds, cert, args.token)


if __name__ == "__main__":
    sys.exit(main())
