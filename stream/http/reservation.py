"""What one WHIP POST holds while it answers: a stream slot, its Redis claim, its session.

`StreamReservation` is an async context manager: entering takes the slot (`StreamLive`,
`AtCapacity`) and, with scale-out, the claim (`ClaimedElsewhere`); leaving by any exception,
cancellation included, gives back everything taken so far, in one place. Only `commit()`, called
once the answer is ready, hands the slot, claim and session over to the session's own life (its
close releases them).
"""

from __future__ import annotations

import logging
from types import TracebackType

from stream.http.admission import StreamAdmission
from stream.ingest.session import IngestSession
from stream.scaleout.directory import WorkerDirectory

logger = logging.getLogger(__name__)


class ClaimedElsewhere(Exception):
    """Another worker carries the stream (its claim in Redis is live)."""


class StreamReservation:
    """The slot, claim and session of one POST, released on every path but `commit()`."""

    def __init__(
        self, stream: str, admission: StreamAdmission, scaleout: WorkerDirectory | None
    ) -> None:
        self.stream = stream
        self._admission, self._scaleout = admission, scaleout
        self._reserved = self._committed = False
        self.session: IngestSession | None = None

    async def __aenter__(self) -> StreamReservation:
        self._admission.reserve(self.stream)  # synchronous: two racing POSTs cannot both win
        self._reserved = True
        if self._scaleout is not None:
            try:
                claimed = await self._scaleout.claim(self.stream)
            except BaseException:
                await self._release(cancelled=False)
                raise
            if not claimed:
                await self._release(cancelled=False)
                raise ClaimedElsewhere(self.stream)
        return self

    def attach(self, session: IngestSession) -> None:
        """The stream's new session: from now on, releasing means closing it."""
        self.session = session
        self._admission.add(session)

    def commit(self) -> None:
        """The answer is out: the session owns the slot and claim from now on."""
        self._committed = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            cancelled = exc_type is not None and not issubclass(exc_type, Exception)
            await self._release(cancelled=cancelled)

    async def _release(self, *, cancelled: bool) -> None:
        """Give back what was taken. A session's close frees the slot and claim through its
        `on_closed`; a cancelled POST must not await, so its session closes in the background."""
        if self.session is not None:
            if cancelled:
                self.session.close_soon("client gone")
            else:
                await self.session.close("offer rejected")
            return
        if self._reserved:
            self._admission.release(self.stream)
            self._reserved = False
        if self._scaleout is not None:  # also after a failed or interrupted claim: the release
            self._scaleout.release_soon(self.stream)  # deletes the key only if it is ours
