"""Imported engines served live. Two tiny randomly initialised models of standard architectures,
built from configurations (no downloads), go through `scenestream engines import`: a YOLO-style
detector exported to ONNX as Ultralytics does (raw head, `names` metadata) and an AudioSet Audio
Spectrogram Transformer checkpoint. The whole service runs both as user engines; a generated
scene goes over real WebRTC (WHIP, loopback ICE); scene messages carry the detector's detections
and the stream's tracks and the tagger's mapped labels, track lifecycle events reach the
stream's log, and every message passes the schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.cli import main
from stream.embedded_redis import EmbeddedRedis
from stream.publish.messages import validate
from stream.webrtc.loopback import restore_candidates, use_loopback_candidates
from tests.e2e.conftest import ServiceThread, send_scene, tap, wait_offline
from tests.support.detector_fixtures import DetectorConfig, export_standard_detector

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ENGINE = "tiny-yolo"
TAGGER = "tiny-ast"
AUDIOSET = ["Speech", "Siren", "Ambulance (siren)", "Vehicle horn, car horn, honking",
            "Smash, crash", "Fire alarm", "Music", "Dog"]  # fmt: skip


def _tiny_ast(root: Path) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    cfg = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_length=128, id2label=dict(enumerate(AUDIOSET)),
        label2id={n: i for i, n in enumerate(AUDIOSET)},
    )  # fmt: skip
    ASTForAudioClassification(cfg).eval().save_pretrained(root)
    ASTFeatureExtractor(max_length=128).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def detector_service(
    e2e_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    """The service running the two imported engines from a user engine directory."""
    work = tmp_path_factory.mktemp("import")
    user_dir = work / "engines"
    source = work / "yolo.onnx"
    export_standard_detector(DetectorConfig(), source)
    imports = [
        [str(source), "--name", ENGINE, "--fps", "4"],
        [str(_tiny_ast(work / "ast")), "--name", TAGGER, "--window-s", "1.0"],
    ]
    for args in imports:
        assert main(["engines", "import", *args, "--out", str(user_dir / args[2])]) == 0
    use_loopback_candidates(only=True)
    running = ServiceThread(
        server={"port": 0},
        session={"include_loopback": True},
        redis={"url": e2e_redis.url, "prefix": "e2e"},
        engines={
            "enabled": [ENGINE, TAGGER],
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


async def test_imported_detector_and_tagger_publish_over_webrtc(
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
    tagged = t.scenes_of(TAGGER)
    assert tagged, f"no scene message from {TAGGER}"
    assert set(tagged[0]["scores"]) == {"speech", "siren", "horn", "impact", "alarm"}
    assert all("detections" not in s for s in tagged)
