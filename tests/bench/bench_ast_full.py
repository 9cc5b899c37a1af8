"""CPU cost per window of an imported Audio Spectrogram Transformer at full size:

    python tests/bench/bench_ast_full.py DIR [--rounds 5]

Builds AST from its default configuration (12 layers, 768 wide, 1,024 frames, 527 AudioSet
class names where the shipped map names them; random weights: no download), imports it with
`engines import` (ONNX export with the filter banks in the graph; minutes and about 2 GB of
memory), then times one 1 s window through the engine runtime on ONNX Runtime (one thread).
Prints the import's parity and the median CPU and wall milliseconds per window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    from engines.config import EnginesConfig
    from engines.lab.importers.audio import import_audio_classifier
    from engines.labelmaps import load_label_map
    from engines.runtime.loader import load_engine
    from engines.runtime.manifest import load_manifest
    from engines.window import Window

    mapped = list(load_label_map("audioset"))
    names = mapped + [f"Class {i}" for i in range(527 - len(mapped))]
    cfg = ASTConfig(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    source = args.dir / "ast-full"
    ASTForAudioClassification(cfg).eval().save_pretrained(source)
    ASTFeatureExtractor().save_pretrained(source)
    t = time.perf_counter()
    report = import_audio_classifier(str(source), args.dir / "engines" / "ast-full", window_s=1.0)
    import_s = time.perf_counter() - t
    config = EnginesConfig.model_validate(
        {"cache_dir": args.dir / "cache", "backends": ["onnxruntime"]}
    )
    engine, _ = load_engine(load_manifest(report.engine_dir), config)
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    window = [Window("mic", "ast-full", 0, 0.0, 1.0, None, None, audio)]
    engine.infer(window)
    cpu, wall = [], []
    for _ in range(args.rounds):
        t, c = time.perf_counter(), time.process_time()
        engine.infer(window)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(json.dumps({
        "import_s": round(import_s, 1),
        "parity_max_abs_diff": report.parity_max_abs_diff,
        "cpu_ms_per_window_p50": round(statistics.median(cpu) * 1000),
        "wall_ms_per_window_p50": round(statistics.median(wall) * 1000),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
