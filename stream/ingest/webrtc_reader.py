"""Reading a WHIP stream's WebRTC tracks into its `StreamIngest`.

One always-draining task per track hands every decoded frame to the ingest at once (never
queued here). Where aiortc's internals allow (`stream.webrtc`), the track's receive buffer is
adapted for loss first: a bounded wait for a lost packet, then audio gaps zero-filled and video
frames the decoder cannot use skipped (with a keyframe request), each counted; and REMB feedback
is sent at a steady cadence instead of per packet.
"""

from __future__ import annotations

import logging
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from stream.config import IngestConfig
from stream.ingest.stream_ingest import StreamIngest
from stream.ingest.tracks import TrackTiming
from stream.metrics import Metrics
from stream.webrtc.jitter import install_audio_guard, install_video_buffer
from stream.webrtc.rtcp import RtcpHookError, throttle_remb

logger = logging.getLogger(__name__)

AUDIO_FRAME_S = 0.02  # one WebRTC (Opus) audio frame
_DECODED = (av.VideoFrame, av.AudioFrame)


class TrackReader:
    """Drains a stream's WebRTC tracks into its ingest (one `read` task per track)."""

    def __init__(self, ingest: StreamIngest, config: IngestConfig, metrics: Metrics) -> None:
        self.ingest = ingest
        self._metrics = metrics
        self._audio_hold_s = config.audio_jitter_frames * AUDIO_FRAME_S
        self._video_hold_s = config.video_loss_wait_s

    async def read(self, track: MediaStreamTrack, receiver: Any) -> None:
        """Drain `track` until it ends."""
        ingest = self.ingest
        timing = TrackTiming(
            track.kind, receiver, anchor=ingest.anchor, trust_offset_s=ingest.trust_offset_s
        )
        ingest.attach_timing(timing)
        if timing.timeline is not None:
            self._adapt_receiver(track.kind, receiver, timing)
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, _DECODED):
                    continue  # aiortc only hands decoded frames to a remote track
                try:
                    if isinstance(frame, av.VideoFrame):
                        await ingest.on_video_frame(frame, timing)
                    else:
                        ingest.on_audio_frame(frame, timing)
                except Exception:  # one bad frame must not end the stream
                    logger.exception("ingest frame failed", extra={"stream": ingest.stream})
                    ingest.drop(track.kind, "error")
        finally:
            timing.close()

    def _adapt_receiver(self, kind: str, receiver: Any, timing: TrackTiming) -> None:
        """Bounded loss waits in aiortc's receive buffers (`stream.webrtc.jitter`), REMB cadence."""

        def on_loss(kind: str, event: str, count: int, rtp_timestamp: int | None) -> None:
            self._on_loss(timing, kind, event, count, rtp_timestamp)

        stream = self.ingest.stream
        try:
            if kind == "audio":
                install_audio_guard(receiver, self._audio_hold_s, on_loss)
            else:
                install_video_buffer(receiver, self._video_hold_s, on_loss)
        except RtcpHookError as exc:  # aiortc's own buffers (stall on loss) then stay
            logger.warning("receive buffer not adapted for loss: %s", exc,
                           extra={"stream": stream})  # fmt: skip
        if kind == "video":
            try:
                throttle_remb(receiver)
            except RtcpHookError as exc:  # aiortc's per-packet REMB then stays
                logger.warning("REMB feedback not throttled: %s", exc,
                               extra={"stream": stream})  # fmt: skip

    def _on_loss(
        self, timing: TrackTiming, kind: str, event: str, count: int, rtp_timestamp: int | None
    ) -> None:
        """Count what the receive buffers gave up (see `stream.webrtc.jitter.LossEvent`)."""
        if event == "lost":
            self._metrics.rtp_packets_lost.labels(kind=kind).inc(count)
        elif event == "late":
            self._metrics.rtp_packets_late.labels(kind=kind).inc(count)
        elif event == "keyframe_request":
            self._metrics.keyframe_requests.inc(count)
        else:  # frames the decoder could not use (the reference was lost): never decoded
            for _ in range(count):
                self.ingest.drop(kind, event)
            if rtp_timestamp is not None:
                t = timing.capture_time_rtp(rtp_timestamp, self.ingest.wall())
                if t is not None:  # the video reached `t` all the same
                    self.ingest.video_reached(t)
