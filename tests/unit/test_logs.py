"""Log lines name the stream (and the WHIP session) they are about."""

from __future__ import annotations

import logging
import sys

from stream.logs import FORMAT, ContextFormatter


def _record(msg: str, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("stream.x", logging.INFO, __file__, 1, msg, (), exc_info)
    record.__dict__.update(extra)
    return record


def test_the_stream_and_session_of_a_record_are_printed() -> None:
    formatter = ContextFormatter("%(levelname)s %(name)s: %(message)s")
    line = formatter.format(_record("session created", stream="cam1", session="ab12"))
    assert line == "INFO stream.x: session created stream=cam1 session=ab12"
    assert formatter.format(_record("stream offline", stream="cam2", reason="deleted")).endswith(
        "stream offline stream=cam2"
    )


def test_a_record_without_a_stream_is_unchanged() -> None:
    formatter, plain = ContextFormatter(FORMAT), logging.Formatter(FORMAT)
    for record in (_record("listening"), _record("live view closed", stream=None)):
        assert formatter.format(record) == plain.format(record)


def test_the_ids_come_before_a_traceback() -> None:
    line = ContextFormatter("%(message)s").format(_record("frame failed", True, stream="cam3"))
    first, *rest = line.splitlines()
    assert first == "frame failed stream=cam3"
    assert rest[-1] == "ValueError: boom"
