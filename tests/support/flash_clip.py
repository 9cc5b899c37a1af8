"""A flash-and-click clip and the instants a service saw them: A/V alignment, measured.

The clip is dark, quiet video and audio; at each `events_s` instant one video frame is white
and the audio carries a short loud click starting on the same sample. Written with PyAV in any
container and codec pair, so a test can send it and find both marks in the windows it was cut
into: the flash as the first bright frame (its capture time), the click as the first loud audio
sample (its time on the same clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engines.window import Window

FPS = 30
AUDIO_RATE = 48_000
CLICK_S = 0.01
BRIGHT = 128  # mean pixel level above which a frame is the flash (the rest sit at 20)
LOUD = 0.3  # |sample| above which audio is the click (the rest stays under 0.01)

# (container format, video encoder, audio encoder, extra video options)
CLIPS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "mp4": ("mp4", "libx264", "aac", {"preset": "ultrafast", "tune": "zerolatency"}),
    "mkv": ("matroska", "libx264", "libopus", {"preset": "ultrafast", "tune": "zerolatency"}),
    "webm": ("webm", "libvpx", "libopus", {}),
    "mov": ("mov", "libx264", "aac", {"preset": "ultrafast", "tune": "zerolatency"}),
}


def write_flash_clip(
    path: Path, kind: str, *, seconds: float = 5.0, events_s: Sequence[float] = (1.5, 4.0)
) -> None:
    """Write the clip to `path` as `kind` (a key of `CLIPS`)."""
    fmt, vcodec, acodec, options = CLIPS[kind]
    flashes = {round(t * FPS) for t in events_s}
    clicks = [round(t * AUDIO_RATE) for t in events_s]
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream(vcodec, rate=FPS, options=options)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.gop_size = FPS
        audio = out.add_stream(acodec, rate=AUDIO_RATE)
        audio.layout = "stereo"
        for n in range(round(seconds * FPS)):
            level = 235 if n in flashes else 20
            image = np.full((240, 320, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, "rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(video.encode(frame))
        total = round(seconds * AUDIO_RATE)
        mono = (rng.standard_normal(total) * 0.002).astype(np.float32)
        for start in clicks:
            length = round(CLICK_S * AUDIO_RATE)
            mono[start : start + length] = 0.8 * np.sign(np.sin(np.arange(length) * 0.3) + 1e-9)
        step = 960
        for first in range(0, total, step):
            chunk = mono[first : first + step]
            pcm = (np.repeat(chunk, 2) * 32767).astype(np.int16).reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            sound.sample_rate, sound.pts = AUDIO_RATE, first
            sound.time_base = Fraction(1, AUDIO_RATE)
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def flash_times(windows: Iterable[Window]) -> list[float]:
    """Capture times of the first bright frame of each flash seen in `windows`."""
    bright: set[float] = set()
    for w in windows:
        if w.video is None or w.frame_times is None or "video" in w.missing:
            continue
        levels = w.video.reshape(len(w.video), -1).mean(axis=1)
        bright.update(float(t) for t, v in zip(w.frame_times, levels, strict=True) if v > BRIGHT)
    return _onsets(sorted(bright))


def click_times(windows: Iterable[Window], sample_rate: int) -> list[float]:
    """Capture times of the first loud sample of each click seen in `windows`."""
    loud: set[float] = set()
    for w in windows:
        if w.audio is None or "audio" in w.missing:
            continue
        first = w.end - len(w.audio) / sample_rate
        idx = np.flatnonzero(np.abs(w.audio) > LOUD)
        loud.update(round(first + i / sample_rate, 4) for i in idx)
    return _onsets(sorted(loud))


def _onsets(times: list[float], separation_s: float = 0.5) -> list[float]:
    """The first time of each run of times closer together than `separation_s`."""
    onsets: list[float] = []
    last = -float("inf")
    for t in times:
        if t - last > separation_s:
            onsets.append(t)
        last = t
    return onsets


def pair_marks(flashes: list[float], clicks: list[float], within_s: float = 0.5) -> list[float]:
    """Click minus flash (seconds) for each flash with a click near it."""
    return [
        min((c - f for c in clicks), key=abs)
        for f in flashes
        if clicks and min(abs(c - f) for c in clicks) < within_s
    ]


def corrupt_video(source: Path, target: Path) -> None:
    """`source` remuxed to `target` with every video packet's bytes replaced by noise (sizes,
    timestamps and keyframe flags kept): a file whose video no decoder can decode."""
    rng = np.random.default_rng(1)
    with av.open(str(source)) as src, av.open(str(target), "w", format="webm") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.size == 0:
                continue
            data = bytes(packet)
            if packet.stream.type == "video":
                data = rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes()
            copy = av.Packet(data)
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.is_keyframe = packet.is_keyframe
            copy.stream = streams[packet.stream.index]
            dst.mux(copy)
