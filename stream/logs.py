"""Log line format: every line about a stream names it.

Log calls pass the stream (and the WHIP session, where there is one) as
`extra={"stream": ..., "session": ...}`; `ContextFormatter` prints them after the message as
`stream=ID session=ID`, so `grep stream=cam1` finds a stream's whole story.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("stream", "session")


def context_of(record: logging.LogRecord) -> str:
    """`stream=ID session=ID` for the context fields the record carries ("" when none)."""
    parts = []
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None and value != "":
            parts.append(f"{name}={value}")
    return " ".join(parts)


class ContextFormatter(logging.Formatter):
    """A `logging.Formatter` that appends the record's stream and session ids to the message
    (before any traceback)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        context = context_of(record)
        return f"{text} {context}" if context else text


def configure(level: int, fmt: str = FORMAT) -> None:
    """`logging.basicConfig` with `ContextFormatter` on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
