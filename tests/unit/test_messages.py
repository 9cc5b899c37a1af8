"""Messages are built per the README's Redis contract and validate against the shipped JSON
Schemas."""

from __future__ import annotations

import json
import math

import pytest
from jsonschema import Draft202012Validator

from stream.publish import messages as m

pytestmark = pytest.mark.unit


def scene(**over: object) -> m.Message:
    kwargs: dict[str, object] = {
        "stream": "cam1",
        "engine": "avfusion",
        "seq": 42,
        "start": 1795929600.10,
        "end": 1795929601.10,
        "gaps": [(1795929600.2, 1795929600.3)],
        "scores": {"siren": 0.97, "speech": 0.02},
        "active": ["siren"],
        "latency": m.LatencyBreakdown(0.0842, 0.0031, 0.011),
        "published_at": 1795929601.18,
    }
    kwargs.update(over)
    return m.scene_message(**kwargs)  # type: ignore[arg-type]


def event(phase: m.Phase = "start", end: float | None = None) -> m.Message:
    return m.event_message(
        stream="cam1", engine="avfusion", event_id="cam1-emergency_vehicle-17",
        label="emergency_vehicle", phase=phase, score=0.93, peak_score=0.95,
        start=1795929600.60, end=end, published_at=1795929601.18,
    )  # fmt: skip


def test_design_example_messages_validate() -> None:
    # The three examples of the README's "Redis: channels and messages", verbatim.
    examples = [
        '{"v": 1, "type": "scene", "stream": "cam1", "engine": "avfusion", "seq": 42,'
        ' "window": {"start": 1795929600.10, "end": 1795929601.10, "gaps": []},'
        ' "scores": {"siren": 0.97, "flashing_lights": 0.91, "emergency_vehicle": 0.93,'
        ' "speech": 0.02}, "active": ["siren", "flashing_lights", "emergency_vehicle"],'
        ' "latency_ms": {"capture_to_publish": 84.2, "queue": 3.1, "infer": 11.0},'
        ' "published_at": 1795929601.18}',
        '{"v": 1, "type": "event", "stream": "cam1", "engine": "avfusion",'
        ' "id": "cam1-emergency_vehicle-17", "label": "emergency_vehicle", "phase": "start",'
        ' "score": 0.93, "peak_score": 0.93, "start": 1795929600.60, "end": null,'
        ' "published_at": 1795929601.18}',
        '{"v": 1, "type": "status", "stream": "cam1", "state": "online", "reason": "connected",'
        ' "published_at": 1795929599.02}',
    ]
    for text in examples:
        assert m.decode(text)["v"] == 1


def test_built_messages_have_contract_fields_and_validate() -> None:
    s = scene()
    assert s["latency_ms"] == {"capture_to_publish": 84.2, "queue": 3.1, "infer": 11.0}
    assert s["window"]["gaps"] == [[1795929600.2, 1795929600.3]]
    e = event()
    st = m.status_message(stream="cam1", state="degraded", reason="shedding", published_at=1.0)
    for msg in (s, e, event("end", 1795929609.0), st):
        assert m.validate(json.loads(m.encode(msg))) == msg


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("engine"), "engine"),
        (lambda d: d.update(v=2), "v"),
        (lambda d: d.update(stream="bad:id"), "stream"),
        (lambda d: d["scores"].update(siren=1.5), "scores/siren"),
        (lambda d: d["latency_ms"].pop("infer"), "latency_ms"),
        (lambda d: d.update(seq=-1), "seq"),
    ],
)
def test_invalid_scene_is_rejected_with_field(mutate, where: str) -> None:  # type: ignore[no-untyped-def]
    msg = scene()
    mutate(msg)
    with pytest.raises(m.InvalidMessage, match=where.split("/")[0]):
        m.validate(msg)


def test_event_end_must_be_null_until_end_phase() -> None:
    with pytest.raises(m.InvalidMessage):
        m.validate(event("start", end=1795929609.0))
    with pytest.raises(m.InvalidMessage):
        m.validate(event("end", end=None))


def test_non_finite_scores_are_clamped_not_emitted_as_nan() -> None:
    s = scene(scores={"siren": math.nan, "horn": math.inf, "speech": -0.5})
    assert s["scores"] == {"siren": 0.0, "horn": 1.0, "speech": 0.0}
    m.validate(json.loads(m.encode(s)))


def test_stamp_published_recomputes_capture_to_publish() -> None:
    s = scene()
    m.stamp_published(s, 1795929601.60)
    assert s["published_at"] == 1795929601.60
    assert s["latency_ms"]["capture_to_publish"] == pytest.approx(500.0)


def test_decode_rejects_garbage_and_unknown_types() -> None:
    with pytest.raises(m.InvalidMessage, match="not JSON"):
        m.decode(b"\xff{")
    with pytest.raises(m.InvalidMessage, match="type"):
        m.decode('{"v": 1, "type": "other"}')
    with pytest.raises(m.InvalidMessage):
        m.decode("[1, 2]")


@pytest.mark.parametrize("kind", ["scene", "event", "status"])
def test_shipped_schemas_are_valid_draft_2020_12(kind: m.MessageType) -> None:
    Draft202012Validator.check_schema(m.schema(kind))
