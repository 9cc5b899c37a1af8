"""A 6 s `sync` stream over real loopback WebRTC: windows, frame timing and A/V alignment.

The sender draws the square at a known position for each capture instant and puts a white flash
and an audio click at the same instant every 2 s; the windows must show both where (and when)
they were drawn.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest

from engines.lab.scenes.sync import SyncScene, in_flash, square_center
from engines.window import Window
from stream.sender.tracks import SceneAudioTrack, SceneClock, SceneVideoTrack
from stream.sender.whip_client import WhipPublisher
from tests.support.whip_support import SYNC_SPECS, running_service, settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]

SECONDS = 6.0
FRAME_S = 1 / 30
SQUARE_SPEED = 0.4  # widths per second (0.8 of the width every PATH_PERIOD_S / 2)
SPEC = SYNC_SPECS["probe"]


def square_x(frame: npt.NDArray[np.uint8]) -> float | None:
    """Centre of the red square as a fraction of the width (None if not visible)."""
    red = (frame[..., 0] > 150) & (frame[..., 1] < 110) & (frame[..., 2] < 110)
    columns = np.nonzero(red)[1]
    return float(columns.mean() + 0.5) / frame.shape[1] if len(columns) > 20 else None


def click_time(window: Window) -> float | None:
    assert window.audio is not None
    loud = np.flatnonzero(np.abs(window.audio) > 0.4)
    if not len(loud):
        return None
    rate = SPEC.audio.sample_rate if SPEC.audio else 0
    return window.end - len(window.audio) / rate + float(loud[0]) / rate


async def publish_sync(seconds: float) -> tuple[list[Window], float]:
    """Publish `sync` for `seconds`; the windows received and the scene's wall-clock origin."""
    async with running_service(settings(ingest={"max_wait_s": 0.25})) as service:
        scene, clock = SyncScene(), SceneClock()
        tracks = [
            SceneVideoTrack(scene, clock, width=320, height=240, stop_after_s=seconds),
            SceneAudioTrack(scene, clock, stop_after_s=seconds),
        ]
        publisher = WhipPublisher(service.whip("sync"))
        await publisher.publish(tracks)
        ended = lambda: all(t.readyState == "ended" for t in tracks)  # noqa: E731
        await wait_for(ended, seconds + 10, "the sender to finish")
        last_end = clock.start + seconds
        await wait_for(
            lambda: bool(service.sink.windows) and service.sink.windows[-1].end > last_end - 0.6,
            3, "the last windows",
        )  # fmt: skip
        await publisher.close()
        return list(service.sink.windows), clock.start


# Real-time bounds on a shared 2-core machine: one stall elsewhere can miss them; a rerun
# must pass the same bounds (every failed attempt is still reported).
@pytest.mark.flaky(reruns=2, reruns_delay=1)
@pytest.mark.slow
async def test_sync_stream_windows_positions_and_av_alignment() -> None:
    windows, origin = await publish_sync(SECONDS)

    # Count: one window per hop whose end lies within the published media (±1).
    hop, length = SPEC.hop_s, SPEC.length_s
    first = math.ceil((origin + length) / hop)
    last = math.floor((origin + SECONDS) / hop)
    assert abs(len(windows) - (last - first + 1)) <= 1, [w.end - origin for w in windows]
    ends = [w.end for w in windows]
    assert all(b - a == pytest.approx(hop) for a, b in itertools.pairwise(ends))
    assert [w.seq for w in windows] == list(range(len(windows)))
    complete = [w for w in windows if not w.missing]
    assert len(complete) >= len(windows) - 1

    # Each frame shows the square where the sender drew it at that frame's capture time. The
    # error is expressed in time (the square moves 0.4 widths/s; a pixel is ~16 ms). Before the
    # first Sender Report (~1 s) times are arrival-mapped, so later frames are held tighter.
    early: list[float] = []
    synced: list[float] = []
    for window in complete:
        assert window.video is not None
        assert window.frame_times is not None
        for frame, t in zip(window.video, window.frame_times, strict=True):
            scene_t = t - origin
            if any(in_flash(scene_t + d) for d in (-FRAME_S / 2, 0, FRAME_S / 2)):
                continue  # within half a frame of a flash: checked below
            x = square_x(frame)
            assert x is not None, f"no square at scene time {scene_t:.3f}"
            error_s = abs(x - square_center(scene_t)[0]) / SQUARE_SPEED
            (synced if scene_t > 3.0 else early).append(error_s)
    assert len(early) + len(synced) > 100
    assert max(early) < 0.075, f"max early position error {max(early) * 1e3:.0f} ms"
    assert max(synced) < 0.050, f"max position error {max(synced) * 1e3:.0f} ms"
    assert float(np.median(synced)) < 0.020, f"median error {np.median(synced) * 1e3:.0f} ms"

    # Every flash frame in a window has its click within one frame period on the capture clock.
    pairs = []
    for window in complete:
        assert window.video is not None
        assert window.frame_times is not None
        white = [t for f, t in zip(window.video, window.frame_times, strict=True) if f.mean() > 200]
        click = click_time(window)
        if white and click is not None and window.start < click < window.end - 0.05:
            pairs.append((white[0], click))
    assert pairs, "no window held both a flash and its click"
    skews = [abs(flash - click) for flash, click in pairs]
    assert max(skews) <= FRAME_S, f"flash/click skews {[round(s * 1e3, 1) for s in skews]} ms"
