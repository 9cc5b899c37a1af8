"""Write a scene to files: Y4M video, 16-bit WAV audio and its ground truth as JSON.

Chromium's fake camera and microphone (`--use-file-for-fake-video-capture=x.y4m`,
`--use-file-for-fake-audio-capture=x.wav`) take exactly these formats, so browser tests publish
a generated scene through the real page. Usage:

    python -m engines.lab.scenes.render emergency --out artifacts/scenes --seconds 12
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.base import LABELS, SceneRenderer
from engines.lab.scenes.scene import Scene

CHUNK_FRAMES = 8


@dataclass(frozen=True)
class RenderedFiles:
    """Where `render_files` wrote the scene."""

    video: Path
    audio: Path
    truth: Path


def truth_document(renderer: SceneRenderer, *, seed: int, seconds: float) -> dict[str, Any]:
    """The ground truth as written next to the media (times in seconds from the scene start)."""
    return {
        "scenario": renderer.name,
        "seed": seed,
        "duration_s": seconds,
        "labels": list(LABELS),
        "truth": [
            {"label": iv.label, "start_s": iv.start_s, "end_s": min(iv.end_s, seconds)}
            for iv in renderer.truth
            if iv.start_s < seconds
        ],
    }


def rgb_to_i420(frame: npt.NDArray[np.uint8]) -> bytes:
    """BT.601 studio-range planar Y, U, V (4:2:0, chroma averaged over 2x2 blocks)."""
    rgb = frame.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    h, w = y.shape
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = [np.clip(np.round(p), 0, 255).astype(np.uint8).tobytes() for p in (y, u, v)]
    return b"".join(planes)


def _frames(renderer: SceneRenderer, times: npt.NDArray[np.float64], h: int, w: int) -> list[Any]:
    if isinstance(renderer, Scene):
        return list(renderer.render_clip(times, h, w))
    return [renderer.render_video(float(t), h, w) for t in times]


def write_y4m(
    out: BinaryIO, renderer: SceneRenderer, seconds: float, fps: int, height: int, width: int
) -> int:
    """Write `seconds` of video as Y4M (I420); returns the number of frames."""
    if height % 2 or width % 2:
        raise ValueError("Y4M 4:2:0 needs an even width and height")
    out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
    total = math.ceil(seconds * fps)
    for first in range(0, total, CHUNK_FRAMES):
        times = np.arange(first, min(total, first + CHUNK_FRAMES), dtype=np.float64) / fps
        for frame in _frames(renderer, times, height, width):
            out.write(b"FRAME\n")
            out.write(rgb_to_i420(frame))
    return total


def write_wav(path: Path, renderer: SceneRenderer, seconds: float, sample_rate: int) -> int:
    """Write `seconds` of mono 16-bit PCM; returns the number of samples."""
    total = round(seconds * sample_rate)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        for k0 in range(0, total, sample_rate):
            n = min(sample_rate, total - k0)
            x = renderer.render_audio(k0 / sample_rate, n, sample_rate)
            wav.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return total


def render_files(
    renderer: SceneRenderer,
    out_dir: Path,
    *,
    seed: int = 0,
    seconds: float | None = None,
    fps: int = 30,
    height: int = 480,
    width: int = 640,
    sample_rate: int = 48000,
) -> RenderedFiles:
    """Render `renderer` to `<name>.y4m`, `<name>.wav` and `<name>.truth.json` in `out_dir`."""
    length = seconds if seconds is not None else renderer.duration_s
    if not math.isfinite(length) or length <= 0:
        raise ValueError(f"{renderer.name} is endless: give a positive number of seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = RenderedFiles(
        out_dir / f"{renderer.name}.y4m",
        out_dir / f"{renderer.name}.wav",
        out_dir / f"{renderer.name}.truth.json",
    )
    with files.video.open("wb") as fh:
        write_y4m(fh, renderer, length, fps, height, width)
    write_wav(files.audio, renderer, length, sample_rate)
    doc = truth_document(renderer, seed=seed, seconds=length)
    files.truth.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    """`python -m engines.lab.scenes.render NAME|FILE --out DIR [...]`."""
    from engines.errors import UserError
    from engines.lab.scenes.registry import load_scenario

    p = argparse.ArgumentParser(prog="python -m engines.lab.scenes.render", description=__doc__)
    p.add_argument("scenario", help="scenario name or .toml script")
    p.add_argument("--out", type=Path, default=Path("artifacts/scenes"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", choices=["train", "val", "heldout"])
    p.add_argument("--seconds", type=float, help="length (default: the scene's duration)")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    p.add_argument("--sample-rate", type=int, default=48000)
    args = p.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
        scene = load_scenario(args.scenario, seed=args.seed, split=args.split)
        files = render_files(scene, args.out, seed=args.seed, seconds=args.seconds, fps=args.fps,
                             height=height, width=width, sample_rate=args.sample_rate)  # fmt: skip
    except (UserError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    print(f"{files.video}\n{files.audio}\n{files.truth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
