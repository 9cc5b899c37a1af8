"""Camera and transport effects on rendered training windows: exposure, noise, shake, a real
low-bitrate codec round trip, and stream starts and stops.

A live camera is not a renderer: its exposure wanders, its sensor is noisy, it shakes, its
picture reaches the service through a lossy WebRTC encoder (VP8 or H.264 at whatever bitrate
the network allows, 4:2:0 chroma, so a small red lamp bleeds into its surroundings), and a
stream begins and ends with black or frozen frames. A model that has never seen those calls
`flashing_lights` when the picture appears. Everything here is drawn per training window from
its own random generator, so an example stays a pure function of (seed, split, index).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.base import AUDIO_LABELS, FUSED_LABELS, LABELS, VIDEO_LABELS
from engines.lab.scenes.scene import Look

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

CODEC_FRACTION = 0.15  # of training windows: encoded and decoded by a real encoder
CODECS = ("libvpx", "libx264")  # VP8 and H.264, the two WebRTC video codecs the service takes
CODEC_KBPS = (25.0, 160.0)  # at the 256x192 drawing size: ~80–500 kbit/s at 640x480
POST_NOISE_FRACTION = 0.25
EDGE_KINDS = ("stream_start", "stream_stop")


def vary_look(look: Look, rng: np.random.Generator) -> Look:
    """Wider camera ranges than the scripts' (`pools.random_look`): under- and over-exposed
    pictures, stronger sensor noise and shake."""
    return replace(
        look,
        gain=float(look.gain * rng.uniform(0.6, 1.45)),
        noise=float(rng.uniform(0.0, 0.09)),
        shake=float(rng.uniform(0.0, 0.035)) if rng.random() < 0.6 else look.shake,
    )


@dataclass(frozen=True, slots=True)
class Codec:
    """A lossy round trip: `codec` (PyAV encoder name) at `kbps` kbit/s."""

    codec: str
    kbps: float


def draw_codec(rng: np.random.Generator) -> Codec | None:
    """A codec round trip for `CODEC_FRACTION` of windows, else None."""
    if rng.random() >= CODEC_FRACTION:
        return None
    codec = CODECS[int(rng.integers(len(CODECS)))]
    lo, hi = np.log(CODEC_KBPS[0]), np.log(CODEC_KBPS[1])
    return Codec(codec, float(np.exp(rng.uniform(lo, hi))))


def codec_roundtrip(frames: U8, codec: Codec, fps: float = 8.0) -> U8:
    """`frames` `[T, H, W, 3]` encoded with a real encoder (in memory) and decoded again.

    Real-time settings (no look-ahead, as WebRTC encodes): the first frame is a key frame, the
    rest are predicted from it at the given bitrate, so blocking, ringing and chroma bleeding
    are the encoder's own. H and W must be even (4:2:0).
    """
    import av  # PyAV (aiortc's codec layer): imported here so the generator loads without it

    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    container = av.open(buf, "w", format="webm" if codec.codec == "libvpx" else "mp4")
    stream = container.add_stream(codec.codec, rate=round(fps))
    if not isinstance(stream, av.VideoStream):
        raise TypeError(f"{codec.codec} is not a video encoder")
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.bit_rate = int(codec.kbps * 1000)
    stream.thread_count = 1  # one worker: generation already runs a process per core
    if codec.codec == "libx264":
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
    else:
        stream.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    for f in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), "rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    buf.seek(0)
    with av.open(buf, "r") as src:
        decoded = [fr.to_ndarray(format="rgb24") for fr in src.decode(video=0)]
    if len(decoded) != t:  # an encoder that dropped a frame: keep the last one, as a decoder would
        decoded += [decoded[-1]] * (t - len(decoded))
    out: U8 = np.stack(decoded[:t]).astype(np.uint8)
    return out


def post_noise(video: U8, rng: np.random.Generator) -> U8:
    """Sensor noise at the engine's size for `POST_NOISE_FRACTION` of windows (σ 2–8 of 255),
    on top of the noise drawn before the area downscale (which averages most of it away)."""
    if rng.random() >= POST_NOISE_FRACTION:
        return video
    sigma = rng.uniform(2.0, 8.0)
    noisy = video.astype(np.float32) + rng.standard_normal(video.shape, np.float32) * sigma
    out: U8 = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    return out


_AUDIO = np.array([label in AUDIO_LABELS for label in LABELS])
_NEEDS_VIDEO = np.array([label in VIDEO_LABELS or label in FUSED_LABELS for label in LABELS])


def stream_edge(
    kind: str,
    video: U8,
    audio: F32,
    labels: F32,
    care: F32,
    rng: np.random.Generator,
    fps: float,
    sample_rate: int,
) -> tuple[U8, F32, F32, F32]:
    """A stream starting (`stream_start`: no picture, then the picture) or stopping
    (`stream_stop`: the picture, then none) inside the window.

    "No picture" is black, a frozen frame, or a flat decoder grey/green; a start may ramp its
    exposure up over a few frames (auto-exposure settling). Half the time the audio starts or
    stops at the same instant. Nothing new appears in the scene, so the video and fused labels
    are off; an audio label the cut touches is not scored (care 0).
    """
    if kind not in EDGE_KINDS:
        raise ValueError(f"edge kind must be one of {', '.join(EDGE_KINDS)}, not {kind!r}")
    video, audio = video.copy(), audio.copy()
    labels, care = labels.copy(), care.copy()
    t = video.shape[0]
    k = int(rng.integers(1, t))  # start: first frame with a picture; stop: first without
    dead = np.arange(t) < k if kind == "stream_start" else np.arange(t) >= k
    u = rng.random()
    if u < 0.5:
        video[dead] = np.uint8(rng.integers(0, 12))
    elif u < 0.85:
        video[dead] = video[k] if kind == "stream_start" else video[k - 1]
    else:
        flat = np.array([rng.integers(90, 140), rng.integers(110, 170), rng.integers(90, 140)])
        video[dead] = flat.astype(np.uint8)
    if kind == "stream_start" and rng.random() < 0.5:
        ramp = np.clip(rng.uniform(0.2, 0.6) + np.arange(t - k) * rng.uniform(0.15, 0.4), 0, 1)
        live = video[k:].astype(np.float32) * ramp[:, None, None, None].astype(np.float32)
        video[k:] = (live + 0.5).astype(np.uint8)
    if rng.random() < 0.5:
        # the frame k instant, in samples from the window's start
        cut = len(audio) - round((t - 1 - k + 0.5) / fps * sample_rate)
        cut = int(np.clip(cut, 0, len(audio)))
        if kind == "stream_start":
            audio[:cut] = 0.0
        else:
            audio[cut:] = 0.0
        care[_AUDIO & (labels > 0.5)] = 0.0
    labels[_NEEDS_VIDEO] = 0.0
    care[_NEEDS_VIDEO] = 1.0
    return video, audio, labels, care
