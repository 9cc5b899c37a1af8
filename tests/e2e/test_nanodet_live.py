"""The bundled `nanodet` engine (NanoDet-g, COCO) served live on a real photo: scikit-image's
astronaut, encoded as a still video clip, goes over real WebRTC (`scenestream send --file`,
WHIP, loopback ICE) into the whole service; its scene messages carry a `person` detection with a
box that matches a hand-drawn one, the stream's tracks follow her, a `person` track starts and
ends, and every message passes the schemas."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engines.detect.boxes import iou_matrix
from stream.embedded_redis import EmbeddedRedis
from stream.publish.messages import validate
from tests.e2e.conftest import ServiceThread, run_command, service_thread, tap, wait_offline

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ENGINE = "nanodet"
MODEL = Path(__file__).resolve().parents[2] / "engines" / "bundled" / ENGINE / "model.onnx"
CLIP_S = 6.0
FPS = 10


def write_still_clip(path: Path, image: np.ndarray, seconds: float) -> None:
    """`image` as an H.264 video of `seconds` at FPS, with quiet AAC audio (an mp4)."""
    import av

    rng = np.random.default_rng(0)
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48_000)
        audio.layout = "stereo"
        for n in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]))
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(video.encode(frame))
        for first in range(0, round(seconds * 48_000), 960):
            pcm = (rng.standard_normal((1, 1920)) * 60).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            sound.sample_rate, sound.pts, sound.time_base = 48_000, first, Fraction(1, 48_000)
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


@pytest.fixture(scope="module")
def nanodet_service(
    e2e_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    if not MODEL.exists():
        pytest.skip("engines/bundled/nanodet/model.onnx is absent (make nanodet builds it)")
    pytest.importorskip("skimage")
    with service_thread(
        server={"port": 0},
        session={"include_loopback": True},
        redis={"url": e2e_redis.url, "prefix": "e2e"},
        engines={
            "enabled": [ENGINE],
            "backends": ["onnxruntime"],
            "cache_dir": str(tmp_path_factory.mktemp("cache")),
        },
        tracking={"min_hits": 2, "max_age_s": 2.0},
    ) as running:
        yield running


async def test_nanodet_finds_the_astronaut_over_webrtc(
    nanodet_service: ServiceThread, tmp_path: Path
) -> None:
    from engines.lab.photo_set import PHOTOS, load_photo

    reference = next(p.box for p in PHOTOS if p.name == "astronaut")  # drawn by hand
    assert reference is not None
    clip = tmp_path / "astronaut.mp4"
    write_still_clip(clip, load_photo("astronaut"), CLIP_S)
    stream = "e2e-nanodet"
    async with tap(nanodet_service.redis_url, stream) as t:
        code, out = await run_command(
            [sys.executable, "-m", "stream.cli", "send", nanodet_service.whip_url(stream),
             "--file", str(clip)],
            CLIP_S + 60,
        )  # fmt: skip
        assert code == 0, out[-3000:]
        await wait_offline(t)
    for msg in t.all():
        validate(msg)
    scenes = t.scenes_of(ENGINE)
    # Two windows a second over a 6 s clip; a loaded machine may shed a few.
    assert len(scenes) >= 6, f"only {len(scenes)} scene messages from {ENGINE}"
    assert set(scenes[0]["scores"]) == {"person", "vehicle"}
    seen = [s for s in scenes if "video" not in s.get("missing", [])]
    people = [
        [d for d in s["detections"] if d["label"] == "person"] for s in seen if s["detections"]
    ]
    assert len(people) >= len(seen) - 1, "the astronaut is missed in most windows"
    for found in people:
        assert len(found) == 1, found  # one person, one box (NMS)
        assert found[0]["score"] >= 0.5
        assert iou_matrix([found[0]["box"]], [reference])[0, 0] >= 0.8, found[0]["box"]
    assert all(s["scores"]["vehicle"] == 0.0 for s in seen)
    tracked = {tr["id"] for s in scenes for tr in s["tracks"] if tr["label"] == "person"}
    assert len(tracked) == 1, tracked  # a still photo: one track for the whole clip
    starts = [m for m in t.log if "track" in m and m["phase"] == "start"]
    ends = {m["id"] for m in t.log if "track" in m and m["phase"] == "end"}
    assert [m["label"] for m in starts] == ["person"]
    assert {m["id"] for m in starts} <= ends
