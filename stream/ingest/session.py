"""One WHIP session: a peer connection, its track readers, a setup timeout and a media watchdog.

Every task the session starts is named, kept and cancelled on close; `close` is idempotent and
runs exactly once whatever triggers it (DELETE, ICE failure, setup timeout, watchdog, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from engines.window import WindowSpec
from stream.config import IngestConfig, SessionConfig
from stream.ingest.stream_ingest import StreamIngest
from stream.ingest.webrtc_reader import TrackReader
from stream.ingest.window_sink import WindowSink
from stream.metrics import Metrics
from stream.publish.status import StatusSink, StreamState
from stream.webrtc.close_reasons import connection_failure, stall_reason
from stream.webrtc.codecs import receive_preferences
from stream.webrtc.dtls import DtlsAdapterError, answer_passive, widen_client_suites

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 2.0
# Windows are cut as frames arrive; when media stops (the end of a file, a stall) this tick cuts
# the ones that were only waiting out `ingest.max_wait_s` for a late modality.
WINDOW_TICK_S = 0.25
STATS_EVERY_TICKS = 4  # the watchdog reads RTP counts about once a second


@functools.cache
def _dtls_interop() -> bool:
    """Widen aiortc's DTLS suites once per process; False (logged once) if aiortc changed."""
    try:
        widen_client_suites()
    except DtlsAdapterError as exc:
        logger.warning("DTLS interop adapters unavailable (RSA publishers may fail): %s", exc)
        return False
    return True


class IngestSession:
    """A live publisher of one stream; `answer(offer)` starts it, `close(reason)` ends it."""

    def __init__(
        self,
        stream: str,
        ingest: StreamIngest,
        config: SessionConfig,
        status: StatusSink,
        on_closed: Callable[[IngestSession], None],
        *,
        reader: TrackReader,
        missing: frozenset[str] = frozenset(),
    ) -> None:
        self.stream = stream
        self._reader = reader  # drains each track into `ingest`
        self.missing = missing  # modalities the publisher does not send
        self.id = secrets.token_urlsafe(12)
        self.etag = f'"{secrets.token_hex(8)}"'
        self.ingest = ingest
        self.created = time.time()
        self.state = "new"
        self.close_reason: str | None = None
        self.status: tuple[str, str] = ("starting", "negotiating")  # last status published
        self._config, self._status, self._on_closed = config, status, on_closed
        servers = [RTCIceServer(urls=url) for url in config.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._close_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str, kinds: Sequence[str] = ()) -> str:
        """Apply the offer and return the SDP answer (all candidates included; no trickle).

        `kinds` are the offer's audio/video sections in m-line order: their receiving
        transceivers are made first, limited to the codecs the pipeline decodes.
        """
        for kind in kinds:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            preferences = receive_preferences(kind)
            if preferences:
                transceiver.setCodecPreferences(preferences)
        before = asyncio.all_tasks()
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if _dtls_interop():  # the publisher picks the DTLS suites (see stream.webrtc.dtls)
                answer_passive(self.pc, offer_sdp)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        finally:
            self._adopt_connect_tasks(asyncio.all_tasks() - before)
        self._spawn(self._supervise(), "supervise")
        return str(self.pc.localDescription.sdp)

    def _adopt_connect_tasks(self, new: set[asyncio.Task[Any]]) -> None:
        """aiortc starts ICE and DTLS in tasks it keeps no reference to; closed during ICE
        checks (setup timeout, DELETE), that task fails with `InvalidStateError` and asyncio
        reports "Task exception was never retrieved". Their outcome is retrieved here."""
        for task in new:
            frame = getattr(task.get_coro(), "cr_frame", None)
            if frame is not None and frame.f_locals.get("self") is self.pc:
                task.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if self.close_reason is None:  # not a close racing the connection attempt
            error = type(task.exception()).__name__
            context = {"stream": self.stream, "session": self.id, "error": error}
            logger.warning("connection setup failed", extra=context)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(coro, name=f"session:{self.stream}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "session task failed",
                exc_info=task.exception(),
                extra={"stream": self.stream, "session": self.id},
            )

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next((r for r in self.pc.getReceivers() if r.track is track), None)
        self._spawn(self._reader.read(track, receiver), f"read-{track.kind}")

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self._connected.is_set():
            self._connected.set()
            self.state = "live"
            self.ingest.last_media = time.monotonic()
            self._publish_status("online", "connected")
            logger.info("stream online", extra={"stream": self.stream, "session": self.id})
        elif state in ("failed", "closed"):
            self.close_soon(connection_failure(self._transport_states()))

    def _transport_states(self) -> list[tuple[str, str]]:
        """(ICE state, DTLS state) of each transport in use (bundled media share one)."""
        transports = {
            id(t.receiver.transport): t.receiver.transport for t in self.pc.getTransceivers()
        }
        return [(str(d.transport.state), str(d.state)) for d in transports.values()]

    def _overdue(self) -> float:
        """Seconds since the last decoded frame."""
        return time.monotonic() - self.ingest.last_media

    async def _packets_received(self) -> int | None:
        """RTP packets received over all tracks so far (aiortc's public stats), None if unknown."""
        total = 0
        try:
            for receiver in self.pc.getReceivers():
                report = await receiver.getStats()
                total += sum(int(getattr(s, "packetsReceived", 0) or 0) for s in report.values()
                             if getattr(s, "type", None) == "inbound-rtp")  # fmt: skip
        except Exception:  # stats are a diagnosis aid: never let them end the watchdog
            return None
        return total

    def _publish_status(self, state: StreamState, reason: str) -> None:
        self.status = (state, reason)
        self._status.stream_status(self.stream, state, reason)

    async def _supervise(self) -> None:
        """Setup timeout, then the media watchdog."""
        try:
            await asyncio.wait_for(self._connected.wait(), self._config.setup_timeout_s)
        except TimeoutError:
            self.close_soon("setup timeout")
            return
        timeout = self._config.media_timeout_s
        packets, ticks = await self._packets_received(), 0
        before = packets
        while True:
            await asyncio.sleep(min(WINDOW_TICK_S, timeout / 4))
            self.ingest.tick()
            ticks += 1
            # RTP counts tell `decode errors` from `no media`: read about once a second, and at
            # every tick once frames are overdue (the last look must be long after the last frame)
            if ticks % STATS_EVERY_TICKS == 0 or self._overdue() > timeout / 2:
                before, packets = packets, await self._packets_received()
            if self._overdue() > timeout:
                self.close_soon(stall_reason(before, packets))  # RTP still flowing, or not
                return

    def close_soon(self, reason: str) -> None:
        """Close from a callback or from one of the session's own tasks (not awaited here)."""
        if self._close_task is None and self.close_reason is None:
            self._close_task = asyncio.create_task(
                self.close(reason), name=f"session:{self.stream}:close"
            )

    async def close(self, reason: str) -> None:
        """End the session: cancel its tasks, close the connection, free the stream. Idempotent."""
        if self.close_reason is not None:
            await self.closed.wait()
            return
        self.close_reason = reason
        self.state = "closing"
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_TIMEOUT_S)
        with contextlib.suppress(Exception):  # a half-negotiated connection may fail to close
            await asyncio.wait_for(self.pc.close(), CANCEL_TIMEOUT_S)
        self.ingest.close()
        self.state = "closed"
        self._publish_status("offline", reason)
        logger.info(
            "stream offline", extra={"stream": self.stream, "session": self.id, "reason": reason}
        )
        self._on_closed(self)
        self.closed.set()

    async def wait_closed(self) -> None:
        """Wait for a close started by `close_soon` (tests, shutdown)."""
        await self.closed.wait()
        if self._close_task is not None:
            await self._close_task


@dataclass
class SessionFactory:
    """Opens the session of a newly admitted stream: its `StreamIngest` (rings and window
    cutters for every engine that has something to analyse in it) and its peer connection.

    The composition root builds one; the WHIP endpoint calls it for each accepted offer.
    """

    specs: Mapping[str, WindowSpec]
    window_sink: WindowSink
    status: StatusSink
    metrics: Metrics
    ingest: IngestConfig
    session: SessionConfig
    executor: Executor | None = None  # resizes of frames above 1080p; None resizes on the loop

    def __call__(
        self,
        stream: str,
        has_video: bool,
        has_audio: bool,
        on_closed: Callable[[IngestSession], None],
    ) -> IngestSession:
        ingest = StreamIngest(
            stream, self.specs, self.window_sink, self.metrics, self.ingest,
            has_video=has_video, has_audio=has_audio, executor=self.executor,
        )  # fmt: skip
        missing = frozenset(k for k, has in (("video", has_video), ("audio", has_audio)) if not has)

        def closed(session: IngestSession) -> None:
            on_closed(session)
            self.window_sink.stream_ended(stream)  # the scheduler ends the stream's events

        reader = TrackReader(ingest, self.ingest, self.metrics)
        return IngestSession(
            stream, ingest, self.session, self.status, closed, reader=reader, missing=missing
        )
