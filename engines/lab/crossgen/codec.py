"""Low-bitrate encoder artefacts: a clip encoded with VP8 or H.264 through PyAV (FFmpeg) and
decoded back, as a WebRTC publisher on a poor link would deliver it."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import numpy.typing as npt

CODECS = ("vp8", "h264")


def roundtrip(
    frames: npt.NDArray[np.uint8], fps: float, codec: str, quality: float
) -> npt.NDArray[np.uint8]:
    """Encode `[T, H, W, 3]` RGB frames and decode them; `quality` in 0..1 (0 worst).

    Frame count and size are preserved (the decoder's output is resized only if the codec
    padded it)."""
    import av  # deferred: only scenes that ask for codec artefacts pay for FFmpeg

    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    rate = Fraction(round(fps * 1000), 1000)
    with av.open(buf, mode="w", format="webm" if codec == "vp8" else "mp4") as out:
        name = "libvpx" if codec == "vp8" else "libx264"
        stream = out.add_stream(name, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        if codec == "vp8":
            stream.bit_rate = int(8_000 + 60_000 * quality)
            # "realtime" adapts its effort to the wall clock: the same clip encodes differently
            # on a busy machine. "good" at a fixed speed, one thread, is repeatable.
            stream.options = {"deadline": "good", "cpu-used": "5"}
        else:
            stream.options = {"crf": str(int(48 - 22 * quality)), "preset": "ultrafast"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    decoded: list[npt.NDArray[np.uint8]] = []
    with av.open(buf, mode="r") as src:
        for frame in src.decode(video=0):
            decoded.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)[:h, :w])
    if not decoded:
        return frames
    while len(decoded) < t:  # an encoder may hold back the last frames: repeat the last one
        decoded.append(decoded[-1])
    return np.stack(decoded[:t]).astype(np.uint8)
