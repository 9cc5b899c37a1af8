"""The pure parts of the Firefox BiDi test driver: the profile's user.js and Firefox's
`WebDriver BiDi listening on` line."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.firefox_bidi import FIREFOX_PREFS, listening_url, user_js

pytestmark = pytest.mark.unit

PREF_LINE = re.compile(r'^user_pref\(("[^"]+"), (.+)\);$')


def test_user_js_sets_every_pref_with_its_json_literal() -> None:
    lines = user_js({"a.bool": True, "b.int": 0, "c.str": 'say "hi"'}).splitlines()
    parsed = [PREF_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert {json.loads(m[1]): json.loads(m[2]) for m in parsed if m} == {
        "a.bool": True,
        "b.int": 0,
        "c.str": 'say "hi"',
    }


def test_the_shipped_prefs_fake_media_and_allow_loopback_ice() -> None:
    text = user_js(FIREFOX_PREFS)
    for name in (
        "media.navigator.streams.fake",
        "media.navigator.permission.disabled",
        "media.peerconnection.ice.loopback",
    ):
        assert f'user_pref("{name}", true);' in text
    assert 'user_pref("permissions.default.camera", 1);' in text


@pytest.mark.parametrize(
    ("line", "url"),
    [
        ("WebDriver BiDi listening on ws://127.0.0.1:40123\n", "ws://127.0.0.1:40123/session"),
        ("1700000000000\tRemoteAgent\tINFO\tWebDriver BiDi listening on ws://[::1]:9222",
         "ws://[::1]:9222/session"),
        ("Read port: 40123", None),
        ("WebDriver BiDi listening on http://127.0.0.1:1", None),
    ],
)  # fmt: skip
def test_listening_url(line: str, url: str | None) -> None:
    assert listening_url(line) == url
