"""The pure parts of CORS refusal logging: once per origin, in bounded memory."""

from __future__ import annotations

import logging

import pytest

from stream.http.cors import RefusedOrigins, cross_origin


def test_each_refused_origin_counts_once_and_memory_is_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="stream.http.cors")
    refused = RefusedOrigins(max_kept=2)
    assert [refused.first(o) for o in ("https://a", "https://a", "https://b")] == [
        True,
        False,
        True,
    ]
    assert not caplog.records
    # full: no new origin is remembered; one line says so, then nothing more
    assert [refused.first(o) for o in ("https://c", "https://d", "https://c")] == [False] * 3
    assert refused.full
    [line] = [r.getMessage() for r in caplog.records]
    assert "server.cors_origins" in line
    assert not refused.first("https://a")  # still remembered


def test_cross_origin_compares_the_origin_with_the_host_asked() -> None:
    assert not cross_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert not cross_origin("https://CAM.example", "cam.example")
    assert cross_origin("https://app.example", "cam.example:8080")
    assert cross_origin("null", "cam.example")
    assert cross_origin("https://app.example", None)
