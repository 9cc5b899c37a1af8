"""Imported engines served live. Three tiny randomly initialised models of standard
architectures, built from configurations (no downloads), go through `scenestream engines
import`: a YOLO-style detector exported to ONNX as Ultralytics does (raw head, `names`
metadata), torchvision's SSDlite (3 classes, random weights) and an AudioSet Audio Spectrogram
Transformer checkpoint. The whole service runs the three as user engines; a generated
scene goes over real WebRTC (WHIP, loopback ICE); scene messages carry the detector's detections
and the stream's tracks and the tagger's mapped labels, track lifecycle events reach the
stream's log, and every message passes the schemas. A viewer's live page (headless Chromium)
watching the stream draws the detector's tracks over the video with their class and track id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.runtime.nets.tv_detection import torchvision_available
from stream.cli import main
from stream.embedded_redis import EmbeddedRedis
from stream.publish.messages import validate
from tests.e2e.conftest import (
    ARTIFACTS,
    ServiceThread,
    send_scene,
    service_thread,
    tap,
    wait_offline,
)
from tests.support.dashboard_shot import CHROMIUM, chromium_page
from tests.support.detector_fixtures import DetectorConfig, export_standard_detector

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ENGINE = "tiny-yolo"
TAGGER = "tiny-ast"
TV = "tiny-ssdlite"  # torchvision's ssdlite320_mobilenet_v3_large, 3 classes, random weights
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
    names = work / "names.txt"
    names.write_text("__background__\nperson\ncar\n")
    imports = [
        [str(source), "--name", ENGINE, "--fps", "4"],
        [str(_tiny_ast(work / "ast")), "--name", TAGGER, "--window-s", "1.0"],
    ]
    if HAVE_TORCHVISION:
        tv = ["torchvision:ssdlite320_mobilenet_v3_large", "--name", TV, "--weights", "none"]
        imports.append([*tv, "--names", str(names), "--fps", "2"])
    for args in imports:
        assert main(["engines", "import", *args, "--out", str(user_dir / args[2])]) == 0
    with service_thread(
        server={"port": 0},
        session={"include_loopback": True},
        redis={"url": e2e_redis.url, "prefix": "e2e"},
        engines={
            "enabled": [ENGINE, TAGGER, *([TV] if HAVE_TORCHVISION else [])],
            "user_dir": str(user_dir),
            "backends": ["onnxruntime"],
            "cache_dir": str(user_dir / "cache"),
        },
        tracking={"min_hits": 2, "max_age_s": 1.0},
    ) as running:
        yield running


HAVE_CHROMIUM = Path(CHROMIUM).exists()


HAVE_TORCHVISION = torchvision_available()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _watch_boxes(page: Any, url: str, stream: str, ready: asyncio.Event) -> list[Any]:
    """Open the live page watching `stream`; once its feed is open set `ready`; then collect
    what it draws until the stream's boxes come, and screenshot the view."""
    await page.goto(f"{url}/?watch={stream}")
    await page.wait_for_selector('#scene[data-live="open"]', timeout=20_000)
    ready.set()
    tracked = f'#objects li[data-engine="{ENGINE}"][data-track]:not([data-track=""])'
    await page.wait_for_selector(tracked, timeout=60_000)
    # One evaluation reads both: between two separate reads the page can draw the next scene
    # message (seen once: 122 boxes counted, 123 objects listed).
    snap: dict[str, Any] = await page.evaluate(
        """() => ({
            drawn: [...document.querySelectorAll('#objects li')]
                .map(e => ({...e.dataset, text: e.textContent})),
            count: Number(document.querySelector('#boxes').dataset.count || 0),
        })"""
    )
    drawn, count = snap["drawn"], int(snap["count"])
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await page.locator("#view").screenshot(path=str(ARTIFACTS / "live-page-boxes.png"))
    return [drawn, count]


async def test_imported_detector_and_tagger_publish_over_webrtc(
    detector_service: ServiceThread, tmp_path: Path
) -> None:
    stream = "e2e-detector"
    with_browser = HAVE_CHROMIUM
    async with tap(detector_service.redis_url, stream) as t, contextlib.AsyncExitStack() as stack:
        viewer: asyncio.Task[list[Any]] | None = None
        if with_browser:  # a viewer's live page watches the stream from the start
            page = await stack.enter_async_context(chromium_page(1280))
            ready = asyncio.Event()
            viewer = asyncio.create_task(
                _watch_boxes(page, detector_service.url, stream, ready), name="live-page"
            )
            stack.push_async_callback(_cancel, viewer)
            waiter = asyncio.create_task(ready.wait(), name="live-page-ready")
            stack.push_async_callback(_cancel, waiter)
            await asyncio.wait([viewer, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if viewer.done():
                viewer.result()  # the page failed: say why
            assert ready.is_set(), "the live page did not open its feed within 30 s"
        await send_scene(
            detector_service.whip_url(stream), "emergency", tmp_path / "truth.json", seconds=5.0
        )
        await wait_offline(t)
        drawn, count = await viewer if viewer is not None else ([], 0)
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
    track_events = [m for m in t.log if "track" in m and m["engine"] == ENGINE]
    starts = [m for m in track_events if m["phase"] == "start"]
    ends = {m["id"] for m in track_events if m["phase"] == "end"}
    assert starts, "no track start event in the stream's log"
    # Every announced track ended by the time the stream went offline.
    assert {m["id"] for m in starts} <= ends
    assert all(m["label"] == "vehicle" for m in starts)
    if with_browser:  # the page drew the tracks of a scene message, with class and id
        assert count == len(drawn) > 0
        ids = {str(tr["id"]) for tr in tracked}
        assert {o["engine"] for o in drawn} <= {ENGINE, TV}, drawn
        drawn = [o for o in drawn if o["engine"] == ENGINE]
        boxes = [o for o in drawn if o["track"]]
        assert boxes, drawn
        assert all(o["class"] == "car" for o in drawn), drawn
        assert {o["track"] for o in boxes} <= ids, (boxes, ids)
        assert all(o["text"].startswith(f"#{o['track']} car ") for o in boxes), boxes
    if HAVE_TORCHVISION:  # torchvision's SSDlite: boxes (fractions of the frame) and tracks
        tv_scenes = t.scenes_of(TV)
        assert len(tv_scenes) >= 4, f"only {len(tv_scenes)} scene messages from {TV}"
        tv_boxes = [d for s in tv_scenes for d in s["detections"]]
        assert tv_boxes, f"no detections from {TV}"
        assert {d["class"] for d in tv_boxes} <= {"person", "car"}
        assert all(0.0 <= v <= 1.0 for d in tv_boxes for v in d["box"])
        assert set(tv_scenes[0]["scores"]) == {"person", "vehicle"}
        assert any(s["tracks"] for s in tv_scenes), f"no track from {TV}"
    tagged = t.scenes_of(TAGGER)
    assert tagged, f"no scene message from {TAGGER}"
    assert set(tagged[0]["scores"]) == {"speech", "siren", "horn", "impact", "alarm"}
    assert all("detections" not in s for s in tagged)
