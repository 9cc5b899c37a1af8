"""A real RTSP camera for the tests: GStreamer's gst-rtsp-server with live test sources.

Run with Debian's system Python (the GObject bindings live there, not in the project's venv):
`/usr/bin/python3 tests/support/rtsp_server.py PORT [--clip CLIP] [--tls PEM --user NAME:PASSWORD]`
serves `rtsp://127.0.0.1:PORT/cam`: H.264 video (a moving ball, 320x240 at 15 fps) and Opus
audio (a tone), both live; or, given a Matroska CLIP with H.264 and Opus, that clip played once
in real time to each client that connects. With `--tls` (a PEM holding a certificate and its
key) it serves `rtsps://` and only to clients with the `--user` credentials (HTTP Basic), as a
camera exposed beyond its LAN should. RTCP Sender Reports on the host's wall clock, as an
NTP-synced camera sends them. Prints `ready` once it listens; runs until killed.
"""

import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width=320,height=240,framerate=15/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=300 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 "
    "audiotestsrc is-live=true wave=sine freq=440 "
    "! audio/x-raw,rate=48000,channels=1 ! audioconvert ! opusenc "
    "! rtpopuspay name=pay1 pt=97 )"
)
CLIP = (
    "( filesrc location={} ! matroskademux name=d "
    "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 "
    "d.audio_0 ! queue ! rtpopuspay name=pay1 pt=97 )"
)


def secure(
    server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, pem: str, user: str
) -> None:
    """TLS with the PEM's certificate, and the media only for `user` ("name:password")."""
    auth = GstRtspServer.RTSPAuth()
    with open(pem) as f:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_pem(f.read(), -1))
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    name, _, password = user.partition(":")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(name, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role("viewer")
    for permission in (
        GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
        GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
    ):
        permissions.add_permission_for_role("viewer", permission, True)
    factory.set_permissions(permissions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("--clip")
    parser.add_argument("--tls")
    parser.add_argument("--user", default="viewer:secret")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(CLIP.format(args.clip) if args.clip else PIPELINE)
    factory.set_shared(args.clip is None)
    if args.tls:
        secure(server, factory, args.tls, args.user)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", flush=True)
        raise SystemExit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
