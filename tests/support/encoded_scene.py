"""The "flash and click" scene encoded once (H.264 constrained baseline + Opus) for publishers
that send already-encoded frames (`node/datachannel_whip_publisher.mjs`).

File format, one record per frame: kind (1 byte, `v` or `a`), media time in seconds (float64,
little-endian), payload length (uint32, little-endian), payload (H.264 Annex B access unit, or
one 20 ms Opus packet).

    python tests/support/encoded_scene.py scene.bin --seconds 10
"""

from __future__ import annotations

import argparse
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS = 640, 480, 30
RATE, AUDIO_FRAME = 48_000, 960
FLASH_S, CLICK_S = 0.1, 0.01
RECORD = struct.Struct("<cdI")


def encode(path: Path, seconds: float) -> tuple[int, int]:
    """Write the scene to `path`; returns (video frames, audio packets)."""
    video = av.CodecContext.create("libx264", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.time_base, video.framerate = Fraction(1, FPS), Fraction(FPS, 1)
    video.options = {"profile": "baseline", "tune": "zerolatency", "preset": "ultrafast",
                     "bf": "0", "g": str(FPS), "repeat-headers": "1"}  # fmt: skip
    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format = RATE, "stereo", "s16"
    audio.time_base = Fraction(1, RATE)
    black = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    white = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    click = np.zeros((2, AUDIO_FRAME), np.int16)
    click[:, : int(CLICK_S * RATE)] = 12_000
    silence = np.zeros((2, AUDIO_FRAME), np.int16)
    n_video = n_audio = 0
    with path.open("wb") as out:

        def write(kind: bytes, t: float, payload: bytes) -> None:
            out.write(RECORD.pack(kind, t, len(payload)) + payload)

        for i in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(white if (i / FPS) % 1.0 < FLASH_S else black,
                                               format="rgb24")  # fmt: skip
            frame.pts = i
            for packet in video.encode(frame.reformat(format="yuv420p")):
                write(b"v", float(packet.pts) / FPS, bytes(packet))
                n_video += 1
        for packet in video.encode(None):
            write(b"v", float(packet.pts) / FPS, bytes(packet))
            n_video += 1
        for i in range(round(seconds * RATE / AUDIO_FRAME)):
            samples = click if (i * AUDIO_FRAME / RATE) % 1.0 < AUDIO_FRAME / RATE else silence
            frame = av.AudioFrame.from_ndarray(samples.T.reshape(1, -1), "s16", "stereo")
            frame.sample_rate, frame.pts = RATE, i * AUDIO_FRAME
            for packet in audio.encode(frame):
                write(b"a", float(packet.pts) / RATE, bytes(packet))
                n_audio += 1
    return n_video, n_audio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(encode(args.out, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
