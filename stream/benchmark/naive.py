"""The naive baseline: a WHIP receiver written the way aiortc's server example suggests.

The model is called on every video frame inside the track's `recv()` (a `MediaStreamTrack`
wrapping the remote one, drained by `MediaBlackhole`, as in the example): convert the frame to
an ndarray, resize it, keep the last 8 frames and the last second of audio in Python lists, run
the same engine's backend at batch 1 and publish a scene message to Redis, all on the event
loop. No batching, no rings, no deadline: when the model cannot keep up, frames queue inside
aiortc and latency grows. It exists only to be measured against the service; do not copy it.

Capture times come from the same RTP/RTCP capture clock as the service's ingest, so that both
are measured on the same clock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamTrack

from engines.runtime.backends.base import constant_array
from engines.runtime.engine import Engine

FRAMES_KEPT = 8
SOURCE_RATE = 48_000


@dataclass
class NaiveStream:
    """Per-stream state of the baseline: plain lists, as the example keeps its state."""

    stream: str
    engine: Engine
    redis: Any  # redis.asyncio.Redis
    prefix: str
    frames: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    audio: list[npt.NDArray[np.float32]] = field(default_factory=list)
    seq: int = 0

    def add_audio(self, frame: av.AudioFrame) -> None:
        """Downmix, decimate 48 kHz to the engine's rate, keep the last second."""
        spec = self.engine.spec.audio
        if spec is None:
            return
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1) / 32768.0
        self.audio.append(pcm[:: SOURCE_RATE // spec.sample_rate].astype(np.float32))
        while sum(len(a) for a in self.audio[1:]) >= spec.samples:
            self.audio.pop(0)

    def add_video(self, frame: av.VideoFrame) -> None:
        """Full-size RGB ndarray, nearest-neighbour resize, keep the last frames."""
        spec = self.engine.spec.video
        if spec is None:
            return
        image = frame.to_ndarray(format="rgb24")
        ys = np.linspace(0, image.shape[0] - 1, spec.height).astype(int)
        xs = np.linspace(0, image.shape[1] - 1, spec.width).astype(int)
        self.frames.append(image[ys][:, xs])
        del self.frames[:-FRAMES_KEPT]

    def model_inputs(self) -> dict[str, npt.NDArray[Any]]:
        """Batch-1 inputs from the lists (zero-padded until they fill)."""
        inputs: dict[str, npt.NDArray[Any]] = {}
        manifest = self.engine.manifest
        for name, spec in manifest.doc.inputs.items():
            if spec.role == "video" and self.engine.spec.video is not None:
                v = self.engine.spec.video
                clip = np.zeros((v.frames, v.height, v.width, 3), np.uint8)
                if self.frames:
                    clip[-len(self.frames) :] = np.stack(self.frames[-v.frames :])
                inputs[name] = clip[None]
            elif spec.role == "audio" and self.engine.spec.audio is not None:
                a = self.engine.spec.audio
                sound = np.zeros(a.samples, np.float32)
                if self.audio:
                    tail = np.concatenate(self.audio)[-a.samples :]
                    sound[-len(tail) :] = tail
                inputs[name] = sound[None]
            elif spec.role == "constant":
                inputs[name] = constant_array(spec)
        return inputs

    async def infer_and_publish(self, capture: float) -> None:
        """The model at batch 1 on the event loop, then one PUBLISH per frame."""
        raw = self.engine.backend.infer(self.model_inputs())
        logits = np.concatenate([np.asarray(v).reshape(-1) for v in raw.values()])
        scores = 1.0 / (1.0 + np.exp(-logits[: len(self.engine.labels)]))
        self.seq += 1
        published = time.time()
        message = {
            "v": 1,
            "type": "scene",
            "stream": self.stream,
            "engine": self.engine.name,
            "seq": self.seq,
            "window": {"start": capture - self.engine.spec.length_s, "end": capture, "gaps": []},
            "scores": dict(zip(self.engine.labels, map(float, scores), strict=False)),
            "active": [],
            "latency_ms": {"capture_to_publish": (published - capture) * 1e3},
            "published_at": published,
        }
        await self.redis.publish(f"{self.prefix}:{self.stream}:scene", json.dumps(message))


class ModelTrack(MediaStreamTrack):
    """The example's transform track: the work happens inside `recv()`."""

    def __init__(self, track: MediaStreamTrack, receiver: Any, state: NaiveStream) -> None:
        from stream.ingest.tracks import TrackTiming  # the service's capture clock, alike

        super().__init__()
        self.kind = track.kind
        self.track = track
        self.state = state
        self.timing = TrackTiming(track.kind, receiver)

    async def recv(self) -> Any:
        frame = await self.track.recv()
        if isinstance(frame, av.AudioFrame):
            self.state.add_audio(frame)
            return frame
        if not isinstance(frame, av.VideoFrame):
            return frame
        capture = self.timing.capture_time(frame, time.time()) or time.time()
        self.state.add_video(frame)
        await self.state.infer_and_publish(capture)
        return frame


def naive_app(engine: Engine, redis: Any, prefix: str) -> web.Application:
    """A WHIP endpoint (POST/DELETE) feeding every stream through `ModelTrack`."""
    sessions: dict[str, tuple[RTCPeerConnection, MediaBlackhole]] = {}

    async def post(request: web.Request) -> web.Response:
        stream = request.match_info["stream"]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sink = MediaBlackhole()
        state = NaiveStream(stream, engine, redis, prefix)

        @pc.on("track")  # type: ignore[untyped-decorator,unused-ignore]
        def on_track(track: MediaStreamTrack) -> None:
            receiver = next((r for r in pc.getReceivers() if r.track is track), None)
            sink.addTrack(ModelTrack(track, receiver, state))

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        key = f"{stream}/{len(sessions)}"
        sessions[key] = (pc, sink)
        return web.Response(
            status=201, text=pc.localDescription.sdp, headers={"Location": f"/whip/{key}"}
        )

    async def delete(request: web.Request) -> web.Response:
        key = f"{request.match_info['stream']}/{request.match_info['session']}"
        found = sessions.pop(key, None)
        if found is not None:
            await found[1].stop()
            await found[0].close()
        return web.Response(status=200)

    async def close_all(_: web.Application) -> None:
        for pc, sink in sessions.values():
            await sink.stop()
            await pc.close()
        sessions.clear()

    app = web.Application()
    app.router.add_post("/whip/{stream}", post)
    app.router.add_delete("/whip/{stream}/{session}", delete)
    app.on_shutdown.append(close_all)
    return app
