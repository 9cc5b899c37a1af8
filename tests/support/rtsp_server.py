"""A real RTSP camera for the tests: GStreamer's gst-rtsp-server with live test sources.

Run with Debian's system Python (the GObject bindings live there, not in the project's venv):
`/usr/bin/python3 tests/support/rtsp_server.py PORT [CLIP]` serves `rtsp://127.0.0.1:PORT/cam`:
H.264 video (a moving ball, 320x240 at 15 fps) and Opus audio (a tone), both live; or, given a
Matroska CLIP with H.264 and Opus, that clip played once in real time to each client that
connects. RTCP Sender Reports on the host's wall clock, as an NTP-synced camera sends them.
Prints `ready` once it listens; runs until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

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


def main() -> None:
    Gst.init(None)
    port = sys.argv[1] if len(sys.argv) > 1 else "8554"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    clip = sys.argv[2] if len(sys.argv) > 2 else None
    factory.set_launch(CLIP.format(clip) if clip else PIPELINE)
    factory.set_shared(clip is None)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
