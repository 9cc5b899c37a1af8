"""Messages the publishing and subscribing tests send: numbered `siren` starts per stream."""

from __future__ import annotations

from stream.publish import messages as m


def event(n: int, stream: str = "cam1") -> m.Message:
    """Event `n` of a stream: id `{stream}-siren-{n}`, so tests can check order and gaps."""
    return m.event_message(
        stream=stream, engine="avfusion", event_id=f"{stream}-siren-{n}", label="siren",
        phase="start", score=0.9, peak_score=0.9, start=1000.0 + n, end=None, published_at=0.0,
    )  # fmt: skip
