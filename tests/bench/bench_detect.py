"""CPU cost of the detection post-processing, per frame, on one thread:

    python tests/bench/bench_detect.py [--rounds 200]

- decoding a YOLOv8-shaped raw head `[84, 8400]` (640×640 input, 80 classes) with a realistic
  score distribution (most anchors near 0, a few hundred above the threshold around 20 objects),
  class-aware NMS included;
- class-aware NMS alone on 1,000 overlapping boxes;
- one tracker update with 20 tracked objects moving (ByteTrack-style association, TTC).

Prints the median CPU milliseconds of each over `--rounds` runs (process time, so that a busy
machine does not inflate it; numpy runs these on one thread).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from engines.detect.decode import DecodeSpec, Detection, decode_frame
from engines.detect.nms import batched_nms
from engines.detect.tracker import Tracker, TrackerParams

CLASSES = tuple(f"c{i}" for i in range(80))


def yolo_head(rng: np.random.Generator, objects: int = 20) -> np.ndarray:
    """A head like a trained YOLOv8n's on a street: ~25 anchors per object score high."""
    n = 8400
    head = np.zeros((84, n), dtype=np.float32)
    head[:2] = rng.uniform(0, 640, (2, n))
    head[2:4] = rng.uniform(8, 64, (2, n))
    head[4:] = rng.uniform(0, 0.02, (80, n))
    for _ in range(objects):
        cx, cy, w, h = (
            rng.uniform(50, 590),
            rng.uniform(50, 590),
            rng.uniform(20, 150),
            rng.uniform(20, 150),
        )
        idx = rng.choice(n, 25, replace=False)
        head[0, idx] = cx + rng.normal(0, 3, 25)
        head[1, idx] = cy + rng.normal(0, 3, 25)
        head[2, idx] = w * rng.uniform(0.9, 1.1, 25)
        head[3, idx] = h * rng.uniform(0.9, 1.1, 25)
        head[4 + int(rng.integers(0, 80)), idx] = rng.uniform(0.3, 0.95, 25)
    return head


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    spec = DecodeSpec(layout="yolo", class_names=CLASSES, box_format="cxcywh", normalized=False,
                      width=640, height=640)  # fmt: skip
    head = yolo_head(rng)
    print(f"decode + NMS, [84, 8400] head, {len(decode_frame(spec, [head]))} kept: "
          f"{timed(lambda: decode_frame(spec, [head]), args.rounds):.2f} ms")  # fmt: skip
    xy = rng.uniform(0, 600, (1000, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (1000, 2)).astype(np.float32)], axis=1)
    scores, classes = rng.random(1000).astype(np.float32), rng.integers(0, 5, 1000)
    nms_ms = timed(lambda: batched_nms(boxes, scores, classes, 0.45), args.rounds)
    print(f"class-aware NMS, 1000 boxes: {nms_ms:.2f} ms")
    tracker = Tracker(TrackerParams())
    starts = rng.uniform(0.1, 0.8, (20, 2))
    speed = rng.uniform(-0.01, 0.01, (20, 2))
    frame = [0]

    def step() -> None:
        k = frame[0]
        frame[0] += 1
        dets = [
            Detection((float(x), float(y), float(x) + 0.08, float(y) + 0.08), 0.8, i % 3, "c", "c")
            for i, (x, y) in enumerate(starts + k * speed)
        ]
        tracker.update(k * 0.2, dets)

    for _ in range(5):
        step()
    print(f"tracker update, 20 objects: {timed(step, args.rounds):.2f} ms "
          f"({len(tracker.tracks)} tracks)")  # fmt: skip


if __name__ == "__main__":
    main()
