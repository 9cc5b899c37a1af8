"""A detector served live: a tiny randomly initialised YOLO-style detector (built from a config in
torch, exported to ONNX, no downloads) is a user engine of the whole service; a generated scene
goes over real WebRTC (WHIP, loopback ICE); scene messages carry its detections and the stream's
tracks, track lifecycle events reach the stream's log, and every message passes the schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.embedded_redis import EmbeddedRedis
from stream.publish.messages import validate
from stream.webrtc.loopback import restore_candidates, use_loopback_candidates
from tests.e2e.conftest import ServiceThread, send_scene, tap, wait_offline
from tests.support.detector_fixtures import build_detector_engine

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

ENGINE = "tiny-yolo"


@pytest.fixture(scope="module")
def detector_service(
    e2e_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    """The service running only the tiny detector, from a user engine directory."""
    user_dir = tmp_path_factory.mktemp("detector-engines")
    build_detector_engine(user_dir)
    use_loopback_candidates(only=True)
    running = ServiceThread(
        server={"port": 0},
        session={"include_loopback": True},
        redis={"url": e2e_redis.url, "prefix": "e2e"},
        engines={
            "enabled": [ENGINE],
            "user_dir": str(user_dir),
            "backends": ["onnxruntime"],
            "cache_dir": str(user_dir / "cache"),
        },
        tracking={"min_hits": 2, "max_age_s": 1.0},
    )
    try:
        running.start()
        yield running
    finally:
        running.close()
        restore_candidates()


async def test_detections_and_tracks_reach_redis_over_webrtc(
    detector_service: ServiceThread, tmp_path: Path
) -> None:
    stream = "e2e-detector"
    async with tap(detector_service.redis_url, stream) as t:
        await send_scene(
            detector_service.whip_url(stream), "emergency", tmp_path / "truth.json", seconds=5.0
        )
        await wait_offline(t)
    scenes = t.scenes_of(ENGINE)
    assert len(scenes) >= 8, f"only {len(scenes)} scene messages from {ENGINE}"
    for msg in t.all():
        validate(msg)
    with_boxes = [s for s in scenes if s["detections"]]
    assert with_boxes, "no detections in any scene message"
    labels = {d["label"] for s in with_boxes for d in s["detections"]}
    assert labels == {"vehicle"}, labels  # the random model's biased class, mapped by coco.toml
    assert set(scenes[0]["scores"]) == {"person", "vehicle"}
    tracked = [tr for s in scenes for tr in s["tracks"]]
    assert tracked, "no track in any scene message"
    track_events = [m for m in t.log if "track" in m]
    starts = [m for m in track_events if m["phase"] == "start"]
    ends = {m["id"] for m in track_events if m["phase"] == "end"}
    assert starts, "no track start event in the stream's log"
    # Every announced track ended by the time the stream went offline.
    assert {m["id"] for m in starts} <= ends
    assert all(m["engine"] == ENGINE and m["label"] == "vehicle" for m in starts)
