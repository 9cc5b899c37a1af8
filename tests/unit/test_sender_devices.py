"""`scenestream send --device VALUE`: which FFmpeg input format each kind of value opens."""

from __future__ import annotations

import pytest

from stream.commands.send import device_input

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/dev/video0", ("/dev/video0", "v4l2", {"video_size": "640x480", "framerate": "30"})),
        ("hw:1,0", ("hw:1,0", "alsa", {})),  # "hw" is not an FFmpeg format: ALSA's own syntax
        ("default", ("default", "alsa", {})),
        ("lavfi:testsrc=rate=30", ("testsrc=rate=30", "lavfi", {})),
        ("x11grab::0.0", (":0.0", "x11grab", {})),
        ("video4linux2:/dev/video2", ("/dev/video2", "video4linux2", {})),
    ],
)
def test_device_values(value: str, expected: tuple[str, str, dict[str, str]]) -> None:
    assert device_input(value) == expected
