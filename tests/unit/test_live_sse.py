"""Pure parts of the live bridge: routing, the slow-browser buffer policy, SSE framing."""

from __future__ import annotations

import json

import pytest

from stream.live.sse import ClientBuffer, format_event, route, subscription

pytestmark = pytest.mark.unit


def test_subscription_for_one_stream_and_for_all() -> None:
    one = subscription("ss", "cam1", ["scene", "events", "status"])
    assert one.channels == ("ss:cam1:scene", "ss:cam1:events", "ss:status")
    assert one.patterns == ()
    every = subscription("ss", None, ["scene", "events", "status"])
    assert every.channels == ("ss:status",)
    assert every.patterns == ("ss:*:scene", "ss:*:events")


def test_route_names_events_and_filters_other_streams() -> None:
    cam1 = json.dumps({"stream": "cam1"})
    cam2 = json.dumps({"stream": "cam2"})
    assert route("ss", "ss:cam1:scene", "{}", "cam1") == "scene"
    assert route("ss", "ss:cam1:events", "{}", "cam1") == "event"
    assert route("ss", "ss:cam2:events", "{}", "cam1") is None
    assert route("ss", "ss:status", cam1, "cam1") == "status"
    assert route("ss", "ss:status", cam2, "cam1") is None
    assert route("ss", "ss:status", "not json", "cam1") is None
    assert route("ss", "ss:status", cam2, None) == "status"
    assert route("ss", "ss:cam.2:events", "{}", None) == "event"
    assert route("ss", "other:cam1:scene", "{}", None) is None
    assert route("ss", "ss:cam1:log", "{}", None) is None


def test_format_event_keeps_multiline_payload_in_one_frame() -> None:
    assert format_event("scene", '{"a": 1}') == b'event: scene\ndata: {"a": 1}\n\n'
    frame = format_event("event", "{\n\r\n}").decode()
    assert frame == "event: event\ndata: {\ndata: \ndata: }\n\n"
    assert frame.count("\n\n") == 1


def test_slow_client_loses_oldest_scenes_never_events() -> None:
    buf = ClientBuffer(max_scenes=3, max_pending=100)
    assert buf.push("event", "e0")
    for i in range(10):
        assert buf.push("scene", f"s{i}")
        if i == 4:
            assert buf.push("event", "e1")
    assert buf.push("status", "st")
    items = buf.drain()
    assert items == [("event", "e0"), ("event", "e1"), ("scene", "s7"), ("scene", "s8"),
                     ("scene", "s9"), ("status", "st")]  # fmt: skip
    assert buf.dropped_scenes == 7
    assert len(buf) == 0
    # after a drain the scene allowance starts over
    for i in range(3):
        buf.push("scene", f"t{i}")
    assert buf.dropped_scenes == 7


def test_event_overflow_cuts_the_client_off() -> None:
    buf = ClientBuffer(max_scenes=2, max_pending=3)
    assert all(buf.push("event", f"e{i}") for i in range(3))
    assert buf.push("scene", "s")  # scenes do not count against the event limit
    assert not buf.push("event", "e3")
    assert buf.overflowed
    assert not buf.push("scene", "s2")
    assert [d for _, d in buf.drain()] == ["e0", "e1", "e2", "s"]


def test_buffer_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ClientBuffer(max_scenes=0)
