"""CPU cost per training window of the scene generator's audio (scene build and render):

    python tests/bench/bench_scene_audio.py [--windows 1000] [--warmup 1500]

Builds the scenes of the training generator (`dataset.example_scene`, split `train`) and renders
each one's 1 s window at 16 kHz, as training does, after `--warmup` windows that fill the
per-process caches (background loops, speech and recording banks). Prints process CPU time
(all threads) per window, which a loaded machine disturbs less than wall time; the video
render (most of a training window's cost) is not included.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1500)
    args = parser.parse_args()
    from engines.lab.scenes.dataset import W0, example_scene
    from engines.window import AudioSpec, VideoSpec, WindowSpec

    spec = WindowSpec(1.0, 0.5, VideoSpec(8, 8.0, 64, 64), AudioSpec(16000, 16000))
    for i in range(args.warmup):
        scene, _ = example_scene(i, spec, seed=1, split="train")
        scene.render_audio(W0, 16000, 16000)
    build = render = 0.0
    for i in range(args.windows):
        t0 = time.process_time()
        scene, _ = example_scene(i, spec, seed=2, split="train")
        t1 = time.process_time()
        scene.render_audio(W0, 16000, 16000)
        t2 = time.process_time()
        build, render = build + t1 - t0, render + t2 - t1
    n = args.windows
    print(
        f"scene build {1000 * build / n:.2f} ms/window, "
        f"audio render {1000 * render / n:.2f} ms/window (CPU time, {n} windows)"
    )


if __name__ == "__main__":
    main()
