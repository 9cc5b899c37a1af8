"""The benchmark's media: a camera-like 640x480@30 VP8 + Opus clip, rendered once and cached.

Senders relay this clip's packets (no decode, no encode), so sending N streams is cheap and the
server under test does the work a real camera would cause: a camera's bitrate (~1 Mbps) matters
because decode cost follows it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

CLIP_VERSION = 1  # bump when the rendering changes, so cached clips are re-rendered
CLIP_SECONDS = 4.0
WIDTH, HEIGHT, FPS = 640, 480, 30


class Drawable(Protocol):
    """What a clip is rendered from (a `SceneRenderer` is one)."""

    def render_video(self, t: float, height: int, width: int) -> npt.NDArray[np.uint8]: ...

    def render_audio(
        self, t0: float, samples: int, sample_rate: int
    ) -> npt.NDArray[np.float32]: ...


class CameraLike:
    """The `sync` pattern over a panning textured background with sensor noise."""

    def __init__(self, seed: int = 0) -> None:
        from engines.lab.scenes.sync import SyncScene

        rng = np.random.default_rng(seed)
        texture = rng.integers(0, 256, (600, 800, 3)).astype(np.float64)
        for _ in range(3):  # box blur: camera-like structure rather than white noise
            texture = (
                texture
                + np.roll(texture, 1, 0)
                + np.roll(texture, 1, 1)
                + np.roll(texture, -1, 0)
                + np.roll(texture, -1, 1)
            ) / 5
        self._texture = texture.astype(np.uint8)
        self._rng = rng
        self._sync = SyncScene(seed)

    def render_video(self, t: float, height: int, width: int) -> npt.NDArray[np.uint8]:
        """One RGB frame at scene time `t`."""
        frame = self._sync.render_video(t, height, width)
        x = int(80 + 70 * np.sin(t * 0.9))
        y = int(60 + 50 * np.cos(t * 0.7))
        background = self._texture[y : y + height, x : x + width]
        mask = frame[..., 1:2] < 60  # the dark background of the pattern
        noisy = background.astype(np.int16) + self._rng.integers(-4, 5, background.shape)
        return np.where(mask, np.clip(noisy, 0, 255).astype(np.uint8), frame)

    def render_audio(self, t0: float, samples: int, sample_rate: int) -> npt.NDArray[np.float32]:
        """Mono audio from scene time `t0`."""
        return self._sync.render_audio(t0, samples, sample_rate)


def make_clip(path: Path, seconds: float = CLIP_SECONDS, scene: Drawable | None = None) -> None:
    """Render 640x480@30 VP8 (~1.2 Mbps, keyframe every second) + 48 kHz stereo Opus WebM of
    `scene` (default: `CameraLike`)."""
    import av

    source: Drawable = scene if scene is not None else CameraLike()
    with av.open(str(path), "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = 1_200_000
        video.gop_size = FPS
        video.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        audio = out.add_stream("libopus", rate=48_000)
        audio.layout = "stereo"
        for n in range(round(seconds * FPS)):
            image = source.render_video(n / FPS, HEIGHT, WIDTH)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(video.encode(frame))
        for n in range(round(seconds * 50)):
            mono = source.render_audio(n * 0.02, 960, 48_000)
            pcm = (np.repeat(mono[None, :], 2, axis=0).T.reshape(1, -1) * 32767).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48_000, n * 960
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def cached_clip(cache_dir: Path) -> Path:
    """The clip under `cache_dir`, rendered on first use (written atomically)."""
    path = cache_dir / f"bench-camera-v{CLIP_VERSION}.webm"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.webm")
        make_clip(partial)
        partial.replace(path)
    return path
