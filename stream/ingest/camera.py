"""Pull ingest: a camera the service connects to (RTSP, and any live URL PyAV opens).

One `CameraSource` per camera. Each connection opens the URL with PyAV in a worker thread and
decodes there (blocking calls never run on the event loop); decoded frames cross to the loop
through a bounded queue (drop-oldest would reorder nothing but waste the decode, so a full
queue drops the newest frame, counted as `frames_dropped{reason="pull_queue_full"}`) and go
into a `StreamIngest` exactly as a WHIP stream's do: rings, window cutters, windows, engines,
events, metrics. When the connection ends or cannot be made, the camera is reported `offline`
with the reason and retried with exponential backoff; the first frame of a new connection
reports it `online` again.

Capture clock: the camera's RTCP Sender Reports where it sends them, judged against arrival
like a WHIP sender's; arrival-anchored pts where it sends none (`stream.ingest.pulled_timing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av

from stream.config import CameraConfig, PullConfig
from stream.ingest.backoff import Backoff
from stream.ingest.pulled_timing import PulledTiming, SenderTime, carried, sender_time
from stream.ingest.stream_ingest import StreamIngest
from stream.metrics import Metrics
from stream.publish.status import StatusSink, StreamState

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 2.0
TICK_S = 0.25  # windows waiting out a late modality are cut at least this often
_END = object()

OpenIngest = Callable[[str, bool, bool], StreamIngest]  # (stream, has_video, has_audio)


def redact(url: str) -> str:
    """The URL without its user and password (for logs, status and `/api/cameras`)."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def input_options(config: CameraConfig) -> dict[str, str]:
    """FFmpeg options for the camera: RTSP over TCP unless the camera's options say otherwise
    (interleaved TCP crosses NAT and firewalls and loses no packets on a busy host)."""
    options = dict(config.options)
    if urlsplit(config.url).scheme in ("rtsp", "rtsps"):
        options.setdefault("rtsp_transport", "tcp")
    return options


def failure_reason(exc: BaseException, url: str) -> str:
    """A one-line reason from PyAV's error, without the URL's credentials (FFmpeg's messages
    quote the URL it was given; the reason goes to logs, `status` and `/api/cameras`)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(url, redact(url))[:160]


class CameraSource:
    """One pulled camera; `start()` connects (and keeps reconnecting), `close()` ends it.

    Looks like an ingest session to the admission (`stream`, `id`, `state`, `created`,
    `missing`, `ingest`, `close`), so it counts against capacity and shows in `/api/streams`.
    """

    def __init__(
        self,
        config: CameraConfig,
        pull: PullConfig,
        open_ingest: OpenIngest,
        status: StatusSink,
        metrics: Metrics,
        on_closed: Callable[[CameraSource], None],
        on_disconnected: Callable[[str], None],
    ) -> None:
        self.config = config
        self.stream = config.id
        self.id = secrets.token_urlsafe(12)
        self.created = time.time()
        self.state = "connecting"
        self.reason = "starting"
        self.since = time.time()
        self.missing: frozenset[str] = frozenset()
        self.connects = 0
        self.ingest: StreamIngest = open_ingest(config.id, True, True)
        self.close_reason: str | None = None
        self._pull, self._open_ingest = pull, open_ingest
        self._status, self._metrics = status, metrics
        self._on_closed, self._on_disconnected = on_closed, on_disconnected
        self._backoff = Backoff(pull.reconnect_initial_s, pull.reconnect_max_s)
        self._published: tuple[StreamState, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self.closed = asyncio.Event()

    def start(self) -> None:
        """Connect in the background; retried with backoff until `close`."""
        self._task = asyncio.create_task(self._run(), name=f"camera:{self.stream}")

    def row(self) -> dict[str, Any]:
        """The camera's `/api/cameras` row."""
        return {
            "id": self.stream,
            "url": redact(self.config.url),
            "state": self.state,
            "reason": self.reason,
            "since": round(self.since, 3),
            "connects": self.connects,
            "failures": self._backoff.failures,
            "capture_clock": self.ingest.clock,
            "missing": sorted(self.missing),
        }

    async def _run(self) -> None:
        while True:
            self._set_state("connecting", "connecting" if not self.connects else self.reason)
            try:
                container = await asyncio.to_thread(self._open)
            except Exception as exc:  # PyAV raises many kinds (refused, 404, timeout, bad URL)
                reason = f"cannot connect: {failure_reason(exc, self.config.url)}"
                self._metrics.camera_connects.labels("failed").inc()
            else:
                self.connects += 1
                self._metrics.camera_connects.labels("connected").inc()
                reason = await self._pump(container)
                self._metrics.camera_connects.labels("lost").inc()
            self._set_state("offline", reason)
            delay = self._backoff.next_delay()
            logger.info("camera offline; reconnecting", extra={"stream": self.stream,
                        "reason": reason, "retry_in_s": round(delay, 2)})  # fmt: skip
            await asyncio.sleep(delay)

    def _open(self) -> Any:
        """Connect and read the stream's header (worker thread)."""
        pull = self._pull
        return av.open(
            self.config.url, options=input_options(self.config),
            timeout=(pull.open_timeout_s, pull.read_timeout_s),
        )  # fmt: skip

    async def _pump(self, container: Any) -> str:
        """Decode in a thread, ingest on the loop, until the connection ends; returns why."""
        streams = [*container.streams.video[:1], *container.streams.audio[:1]]
        has_video = bool(container.streams.video)
        has_audio = bool(container.streams.audio)
        if not streams:
            await asyncio.to_thread(container.close)
            return "the camera sends neither video nor audio"
        self.missing = frozenset(
            k for k, h in (("video", has_video), ("audio", has_audio)) if not h
        )
        self.ingest.close()
        self.ingest = self._open_ingest(self.stream, has_video, has_audio)
        timings = {
            k: PulledTiming(k, anchor=self.ingest.anchor, trust_offset_s=self.ingest.trust_offset_s)
            for k in ("video", "audio")
        }
        for timing in timings.values():
            self.ingest.attach_timing(timing)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(self._pull.queue_frames)
        self._stop = stop = threading.Event()
        reader = threading.Thread(
            target=self._read, args=(container, streams, loop, queue, stop),
            name=f"camera-{self.stream}", daemon=True,
        )  # fmt: skip
        reader.start()
        try:
            return await self._consume(queue, timings)
        finally:
            stop.set()  # the reader closes its container within `read_timeout_s`
            self.ingest.close()
            self._on_disconnected(self.stream)

    async def _consume(self, queue: asyncio.Queue[Any], timings: dict[str, PulledTiming]) -> str:
        ingest = self.ingest
        while True:
            try:
                # Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that
                # races with a frame arriving, and `close()` would then wait for ever.
                async with asyncio.timeout(TICK_S):
                    item = await queue.get()
            except TimeoutError:
                ingest.tick()
                continue
            if isinstance(item, tuple) and item[0] is _END:
                return str(item[1])
            if self.state != "online":
                self._backoff.reset()
                self._set_state("online", "connected")
            frame, sender = item
            try:
                if isinstance(frame, av.VideoFrame):
                    timing = timings["video"]
                    if sender is not None:
                        timing.on_sender_time(sender)
                    await ingest.on_video_frame(frame, timing)
                else:
                    timing = timings["audio"]
                    if sender is not None:
                        timing.on_sender_time(sender)
                    ingest.on_audio_frame(frame, timing)
            except Exception:  # one bad frame must not end the camera
                logger.exception("camera frame failed", extra={"stream": self.stream})

    def _read(
        self,
        container: Any,
        streams: list[Any],
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        stop: threading.Event,
    ) -> None:
        """Reader thread: demux and decode until the end, an error or `stop`."""
        reason = "the stream ended"
        held: dict[int, SenderTime] = {}  # a reference time waiting for its track's next frame
        try:
            for packet in container.demux(*streams):
                if stop.is_set():
                    reason = "stopped"
                    break
                sender = sender_time(packet, time.time())
                index = packet.stream.index
                if sender is not None:
                    held[index] = carried(held.get(index), sender)
                for frame in packet.decode():
                    item = (frame, held.pop(index, None))
                    loop.call_soon_threadsafe(self._offer, queue, item)
        except Exception as exc:  # a dropped connection, a read timeout, a corrupt stream
            reason = f"connection lost: {failure_reason(exc, self.config.url)}"
        finally:
            with contextlib.suppress(Exception):
                container.close()
            with contextlib.suppress(RuntimeError):  # the loop is gone: shutting down
                loop.call_soon_threadsafe(self._offer_end, queue, reason)

    def _offer(self, queue: asyncio.Queue[Any], item: tuple[Any, SenderTime | None]) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            kind = "video" if isinstance(item[0], av.VideoFrame) else "audio"
            self._metrics.frames_dropped.labels(kind, "pull_queue_full").inc()

    def _offer_end(self, queue: asyncio.Queue[Any], reason: str) -> None:
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()  # the end must get through
        queue.put_nowait((_END, reason))

    @property
    def status(self) -> tuple[str, str]:
        """The camera's state and its reason, as `/api/streams` lists them."""
        return self.state, self.reason

    @status.setter
    def status(self, value: tuple[str, str]) -> None:
        """What the scheduler reported (`degraded`/`online`); already published by it."""
        self.state, self.reason = value

    def _set_state(self, state: str, reason: str) -> None:
        if (state, reason) != (self.state, self.reason):
            self.state, self.reason, self.since = state, reason, time.time()
        published: StreamState | None = {"online": "online", "offline": "offline"}.get(state)  # type: ignore[assignment]
        if published is not None and self._published != (published, reason):
            self._published = (published, reason)
            self._status.stream_status(self.stream, published, reason)
            logger.info("camera %s", state, extra={"stream": self.stream, "reason": reason})

    async def close(self, reason: str) -> None:
        """Stop pulling and free the stream (idempotent)."""
        if self.close_reason is not None:
            await self.closed.wait()
            return
        self.close_reason = reason
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CANCEL_TIMEOUT_S)
        self.ingest.close()
        self.state = "closed"
        self._set_state("offline", reason)
        self._on_closed(self)
        self.closed.set()
