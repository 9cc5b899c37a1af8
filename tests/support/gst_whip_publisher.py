"""A WHIP publisher built on GStreamer's webrtcbin, run as its own process by the interop tests.

Run it with the system Python (`/usr/bin/python3`): GStreamer's Python bindings (python3-gi,
python3-gst-1.0, gir1.2-gst-plugins-bad-1.0) live there, not in the project's virtualenv. It
uses only the standard library besides GObject, and webrtcbin with its default settings (bundle
policy, certificate, DTLS role), as an application built on webrtcbin would: Debian 12's
GStreamer 1.22 has no `whipclientsink`, and its `whipsink` is in the Rust plugins, not packaged.

The scene is "flash and click": a white flash of 100 ms on black video and a tick on the audio,
once a second, both from GStreamer's test sources. Exit status 0 means: the offer was answered,
the connection reached `connected`, media flowed for `--seconds`, and the session was DELETEd.
It prints one JSON line per milestone on stdout (`{"event": ...}`) for the test to read.

    /usr/bin/python3 tests/support/gst_whip_publisher.py http://127.0.0.1:8080/whip/cam1 \
        --codec vp8 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 480, 30
FLASH_S = 0.1
BLACK, WHITE = 0xFF000000, 0xFFFFFFFF
OFFER_TRIES = 5

VIDEO = {
    "vp8": "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 ! rtpvp8pay",
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bframes=0 "
    "! video/x-h264,profile=constrained-baseline "
    "! rtph264pay config-interval=-1 aggregate-mode=zero-latency",
}


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


class Publisher:
    def __init__(self, url: str, codec: str, seconds: float, bundle_policy: str | None,
                 token: str | None, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:  # fmt: skip
        self.url, self.seconds, self.token = url, seconds, token
        self.location: str | None = None
        self.failed: str | None = None
        self.connected = False
        self.loop = GLib.MainLoop()
        self.pipeline = Gst.parse_launch(
            f"webrtcbin name=pc "
            f"videotestsrc is-live=true pattern=solid-color foreground-color={BLACK} name=vsrc "
            f"! video/x-raw,width={size[0]},height={size[1]},framerate={FPS}/1 ! videoconvert "
            f"! queue ! {VIDEO[codec]} ! queue ! pc. "
            "audiotestsrc is-live=true wave=ticks tick-interval=1000000000 volume=0.8 "
            "! audio/x-raw,rate=48000,channels=2 ! audioconvert ! audioresample "
            "! queue ! opusenc ! rtpopuspay ! queue ! pc. "
        )
        self.pc = self.pipeline.get_by_name("pc")
        self.vsrc = self.pipeline.get_by_name("vsrc")
        if bundle_policy is not None:
            self.pc.set_property("bundle-policy", bundle_policy)
        self.pc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.pc.connect("notify::ice-gathering-state", self._on_gathering)
        self.pc.connect("notify::connection-state", self._on_connection)
        self._offer_sent = False
        self._negotiating = False
        self._offer_tries = 0
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)

    # -- flash and click -----------------------------------------------------------------------

    def _flash(self) -> bool:
        self.vsrc.set_property("foreground-color", WHITE)
        GLib.timeout_add(int(FLASH_S * 1000), self._unflash)
        return True

    def _unflash(self) -> bool:
        self.vsrc.set_property("foreground-color", BLACK)
        return False

    # -- signalling ----------------------------------------------------------------------------

    def _on_negotiation_needed(self, _pc: Gst.Element) -> None:
        if not self._negotiating:  # it fires once per linked pad: one offer is enough
            self._negotiating = True
            GLib.idle_add(self._create_offer)

    def _create_offer(self) -> bool:
        promise = Gst.Promise.new_with_change_func(self._on_offer_created, None)
        self.pc.emit("create-offer", None, promise)
        return False

    def _on_offer_created(self, promise: Gst.Promise, _data: object) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:  # seen once: asked while webrtcbin was still adding a transceiver
            self._offer_tries += 1
            if self._offer_tries >= OFFER_TRIES:
                error = reply.get_value("error") if reply is not None else None
                GLib.idle_add(self._fail, f"create-offer failed: {error}")
            else:
                GLib.timeout_add(200, self._create_offer)
            return
        self.pc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering(self, _pc: Gst.Element, _spec: object) -> None:
        state = self.pc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self._offer_sent:
            self._offer_sent = True  # WHIP without trickle: the offer carries every candidate
            GLib.idle_add(self._post_offer)

    def _post_offer(self) -> bool:
        sdp = self.pc.get_property("local-description").sdp.as_text()
        say("offer", bundle_only=sdp.count("a=bundle-only"), sdp=sdp)
        headers = {"Content-Type": "application/sdp"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, sdp.encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = response.read().decode()
                self.location = urllib.parse.urljoin(self.url, response.headers["Location"])
                status = response.status
        except (urllib.error.URLError, OSError) as exc:
            return self._fail(f"POST failed: {exc}")
        say("answer", status=status, location=self.location, sdp=answer)
        ok, message = GstSdp.SDPMessage.new_from_text(answer)
        if ok != GstSdp.SDPResult.OK:
            return self._fail("answer is not SDP")
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER,
                                                              message)  # fmt: skip
        self.pc.emit("set-remote-description", description, Gst.Promise.new())
        return False

    def _on_connection(self, _pc: Gst.Element, _spec: object) -> None:
        state = self.pc.get_property("connection-state")
        say("connection", state=state.value_nick)
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and not self.connected:
            self.connected = True
            GLib.idle_add(self._start_scene)
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            GLib.idle_add(self._fail, "connection failed")

    def _start_scene(self) -> bool:
        self._flash()
        GLib.timeout_add(1000, self._flash)
        GLib.timeout_add(int(self.seconds * 1000), self._finish)
        return False

    def _finish(self) -> bool:
        self.delete()
        self.loop.quit()
        return False

    def _fail(self, why: str) -> bool:
        self.failed = self.failed or why
        say("failed", reason=why)
        self.loop.quit()
        return False

    def _on_error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        self._fail(f"pipeline error: {error.message} ({debug})")

    def delete(self) -> None:
        if self.location is None:
            return
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(self.location, headers=headers, method="DELETE")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                say("deleted", status=response.status)
        except (urllib.error.URLError, OSError) as exc:
            say("delete failed", reason=str(exc))
        self.location = None

    def run(self, setup_timeout_s: float) -> int:
        self.pipeline.set_state(Gst.State.PLAYING)

        def setup_deadline() -> bool:
            if not self.connected:
                self._fail(f"not connected within {setup_timeout_s} s")
            return False

        GLib.timeout_add(int(setup_timeout_s * 1000), setup_deadline)
        watchdog = threading.Timer(setup_timeout_s + self.seconds + 30, self.loop.quit)
        watchdog.daemon = True
        watchdog.start()
        try:
            self.loop.run()
        finally:
            watchdog.cancel()
            self.delete()
            self.pipeline.set_state(Gst.State.NULL)
        say("done", connected=self.connected, failed=self.failed)
        return 0 if self.connected and self.failed is None else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam1")
    parser.add_argument("--codec", choices=sorted(VIDEO), default="vp8")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--bundle-policy",
        choices=["none", "balanced", "max-compat", "max-bundle"],
        help="webrtcbin's bundle policy (default: webrtcbin's own default)",
    )
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="video WIDTHxHEIGHT")
    parser.add_argument("--token", help="bearer token")
    parser.add_argument("--setup-timeout", type=float, default=15.0)
    args = parser.parse_args()
    Gst.init(None)
    width, height = (int(x) for x in args.size.split("x"))
    publisher = Publisher(args.url, args.codec, args.seconds, args.bundle_policy, args.token,
                          (width, height))  # fmt: skip
    return publisher.run(args.setup_timeout)


if __name__ == "__main__":
    sys.exit(main())
