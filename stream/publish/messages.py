"""The messages scenestream publishes to Redis, built exactly as the README's
"Redis: channels and messages" contract says.

Three types, each a JSON object with `"v": 1`, `type` and `stream`; times are Unix seconds on the
capture clock, except `published_at` (the service's wall clock when the message went to Redis).
The JSON Schemas in `stream/schemas/` are the reference; `validate` checks a message against them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft202012Validator

from engines.detect.decode import Box, Detection
from engines.detect.tracker import Track
from stream.publish.status import StreamState

VERSION = 1
MessageType = Literal["scene", "event", "status"]
Phase = Literal["start", "update", "end"]
Message = dict[str, Any]


class InvalidMessage(ValueError):
    """A message does not match its JSON Schema (the text names the first failing field)."""


@dataclass(frozen=True, slots=True)
class LatencyBreakdown:
    """Where one window's time went, in seconds (published in milliseconds)."""

    capture_to_publish: float
    queue: float
    infer: float


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _clean_scores(scores: Mapping[str, float]) -> dict[str, float]:
    # A backend can hand back NaN/inf on garbage input; JSON has no NaN, so clamp to [0, 1].
    out: dict[str, float] = {}
    for label, score in scores.items():
        value = float(score)
        out[label] = 0.0 if math.isnan(value) else min(1.0, max(0.0, value))
    return out


def _box(box: Box) -> list[float]:
    return [round(min(1.0, max(0.0, float(v))), 5) for v in box]


def _unit(value: float) -> float:
    return _clean_scores({"x": value})["x"]


def detection_json(d: Detection) -> dict[str, Any]:
    """One detection as published: box `[x1, y1, x2, y2]` in fractions of the frame."""
    return {"box": _box(d.box), "score": _unit(d.score), "class": d.class_name, "label": d.label}


def track_json(t: Track, ttc_s: float | None) -> dict[str, Any]:
    """One track as published: id, last box, state, first seen (capture clock), TTC (s)."""
    ttc = None if ttc_s is None or not math.isfinite(ttc_s) else round(ttc_s, 3)
    return {
        "id": t.id,
        "box": _box(t.box),
        "score": _unit(t.score),
        "class": t.class_name,
        "label": t.label,
        "state": "lost" if t.state == "lost" else "confirmed",
        "first_seen": t.first_seen,
        "last_seen": t.last_seen,
        "ttc_s": ttc,
    }


def scene_message(
    *,
    stream: str,
    engine: str,
    seq: int,
    start: float,
    end: float,
    gaps: Iterable[tuple[float, float]],
    scores: Mapping[str, float],
    active: Iterable[str],
    latency: LatencyBreakdown,
    published_at: float,
    missing: Iterable[str] = (),
    detections: Sequence[Detection] | None = None,
    tracks: Sequence[tuple[Track, float | None]] | None = None,
) -> Message:
    """One scene message: a processed window's scores, active labels and latency breakdown;
    for a detector also the window's detections and the stream's tracks (with their time to
    contact), two optional fields that consumers of scores may ignore."""
    msg: Message = {
        "v": VERSION,
        "type": "scene",
        "stream": stream,
        "engine": engine,
        "seq": seq,
        "window": {"start": start, "end": end, "gaps": [[a, b] for a, b in gaps]},
        "scores": _clean_scores(scores),
        "active": sorted(active),
        "latency_ms": {
            "capture_to_publish": _ms(latency.capture_to_publish),
            "queue": _ms(latency.queue),
            "infer": _ms(latency.infer),
        },
        "published_at": published_at,
    }
    if missing:
        msg["missing"] = sorted(missing)
    if detections is not None:
        msg["detections"] = [detection_json(d) for d in detections]
    if tracks is not None:
        msg["tracks"] = [track_json(t, ttc) for t, ttc in tracks]
    return msg


def event_message(
    *,
    stream: str,
    engine: str,
    event_id: str,
    label: str,
    phase: Phase,
    score: float,
    peak_score: float,
    start: float,
    end: float | None,
    published_at: float,
    track: dict[str, Any] | None = None,
) -> Message:
    """One lifecycle event (`start`, `update` or `end`) of a labelled stretch of a stream;
    a tracked object's events also carry the `track` (as in scene messages)."""
    clean = _clean_scores({"score": score, "peak": peak_score})
    msg: Message = {
        "v": VERSION,
        "type": "event",
        "stream": stream,
        "engine": engine,
        "id": event_id,
        "label": label,
        "phase": phase,
        "score": clean["score"],
        "peak_score": clean["peak"],
        "start": start,
        "end": end,
        "published_at": published_at,
    }
    if track is not None:
        msg["track"] = track
    return msg


def status_message(*, stream: str, state: StreamState, reason: str, published_at: float) -> Message:
    """A stream's status change: `online`, `offline` or `degraded`, with a short reason."""
    return {
        "v": VERSION,
        "type": "status",
        "stream": stream,
        "state": state,
        "reason": reason,
        "published_at": published_at,
    }


def stamp_published(msg: Message, now: float) -> None:
    """Set `published_at` to the moment the message really goes to Redis (the publisher calls
    this at send time, so a message held back during an outage tells its true latency)."""
    msg["published_at"] = now
    latency = msg.get("latency_ms")
    window = msg.get("window")
    if isinstance(latency, dict) and isinstance(window, dict):
        latency["capture_to_publish"] = _ms(now - float(window["end"]))


def encode(msg: Message) -> str:
    """Compact JSON text of a message (what goes on the wire)."""
    return json.dumps(msg, separators=(",", ":"), allow_nan=False)


@cache
def _validator(kind: str) -> Draft202012Validator:
    text = resources.files("stream.schemas").joinpath(f"{kind}.v1.json").read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema(kind: MessageType) -> dict[str, Any]:
    """The shipped JSON Schema of one message type."""
    schema_doc: dict[str, Any] = json.loads(json.dumps(_validator(kind).schema))
    return schema_doc


def validate(msg: Any) -> Message:
    """Check a decoded message against its schema; return it, or raise `InvalidMessage`."""
    if not isinstance(msg, dict):
        raise InvalidMessage("message is not a JSON object")
    kind = msg.get("type")
    if kind not in ("scene", "event", "status"):
        raise InvalidMessage(f"type: unknown message type {kind!r}")
    error = next(iter(_validator(kind).iter_errors(msg)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidMessage(f"{kind} {where}: {error.message}")
    return msg


def decode(raw: str | bytes) -> Message:
    """Parse and validate one message from the wire."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from exc
    return validate(data)
