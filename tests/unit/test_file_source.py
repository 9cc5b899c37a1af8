"""How `send --file` sends each stream (relay or decode, Annex B) and judges the service's row."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from stream.sender.file_source import StreamReader, needs_annexb, plan_file, relayable
from stream.sender.health import stream_failure, streams_url
from tests.support.flash_clip import write_flash_clip


def test_relay_decisions() -> None:
    assert relayable("video", "vp8", False)
    assert relayable("video", "h264", False)
    assert not relayable("video", "h264", True)  # B-frames: decoded and re-encoded
    assert not relayable("video", "hevc", False)
    assert relayable("audio", "opus", False)
    assert not relayable("audio", "aac", False)


def test_annexb_only_for_avcc_extradata() -> None:
    assert needs_annexb("h264", b"\x01\x42\xc0\x0d")  # avcC record (MP4, MKV, MOV)
    assert not needs_annexb("h264", b"\x00\x00\x00\x01\x67")  # already Annex B
    assert not needs_annexb("h264", None)  # MPEG-TS: no extradata, Annex B in band
    assert not needs_annexb("vp8", b"\x01")


@pytest.mark.parametrize(("kind", "video", "audio"), [("mp4", True, False), ("mkv", True, True),
                                                       ("webm", True, True)])  # fmt: skip
def test_plan_of_generated_files(tmp_path: Path, kind: str, video: bool, audio: bool) -> None:
    clip = tmp_path / f"clip.{kind}"
    write_flash_clip(clip, kind, seconds=1.0, events_s=(0.5,))
    plan = plan_file(clip, loop=True)
    by_kind = {s.kind: s for s in plan.streams}
    assert by_kind["video"].relay is video
    assert by_kind["audio"].relay is audio  # AAC is decoded, Opus relayed
    assert plan.period_s is not None
    assert 0.99 <= plan.period_s <= 1.1
    assert plan.origin_s == min(s.start_s for s in plan.streams)


def test_h264_from_mp4_is_relayed_as_annexb(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_flash_clip(clip, "mp4", seconds=0.5, events_s=(0.2,))
    plan = plan_file(clip, loop=False)
    video = next(s for s in plan.streams if s.kind == "video")
    assert video.annexb
    reader = StreamReader(plan, video)
    try:
        items = reader.read()
    finally:
        reader.close()
    assert items
    offset, packet = items[0]
    assert offset == pytest.approx(video.start_s - plan.origin_s)  # AAC priming starts earlier
    assert isinstance(packet, av.Packet)
    assert bytes(packet)[:4] in (b"\x00\x00\x00\x01", b"\x00\x00\x01\x67")  # a start code


def test_unreadable_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        plan_file(tmp_path / "missing.mp4", loop=False)


def test_stream_failure_from_the_row() -> None:
    ok = {"stream": "cam1", "frames_received": {"video": 10, "audio": 50}}
    assert stream_failure(ok, {"video", "audio"}) is None
    silent = {"stream": "cam1", "frames_received": {"video": 0, "audio": 50}}
    assert stream_failure(silent, {"video", "audio"}) == "the service decoded no video frames"
    assert stream_failure(silent, {"audio"}) is None  # video was not sent
    assert stream_failure(None, {"audio"}) == "the stream is not live on the service any more"


def test_streams_url_of_a_whip_url() -> None:
    assert streams_url("http://h:8080/whip/cam1") == ("http://h:8080/api/streams", "cam1")
    assert streams_url("https://h/x/whip/cam-2/") == ("https://h/api/streams", "cam-2")
