"""`scenestream engines import SOURCE --out DIR`: a pretrained model → an engine directory.

`torchvision:ARCH` is a torchvision detection model (exported here); an existing `.onnx` file
is imported as an object detector; anything else (a directory holding a
`transformers` checkpoint, or a hub id) as an audio classifier. The importers live in the lab
(`engines/lab/importers/`): `serve` never loads them, it loads the directory they write.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from engines.errors import UserError
from engines.runtime.interface import ManifestError


def run(args: argparse.Namespace) -> int:
    """Import, print what was written, optionally write the report as JSON."""
    from pathlib import Path

    source = str(args.source)
    try:
        if source.startswith("torchvision:"):
            from engines.lab.importers.tv_detector import import_torchvision_detector

            report = import_torchvision_detector(
                source, args.out, weights=args.weights, num_classes=args.num_classes,
                names_file=args.names, size=args.size, name=args.name, fps=args.fps,
            )  # fmt: skip
        elif source.endswith(".onnx"):
            from engines.lab.importers.detector import import_detector

            report = import_detector(
                Path(source), args.out, names_file=args.names, name=args.name, fps=args.fps
            )
        else:
            from engines.lab.importers.audio import import_audio_classifier

            report = import_audio_classifier(
                source, args.out, name=args.name, window_s=args.window_s
            )
    except ManifestError as exc:
        raise UserError(f"the imported engine does not load: {exc}") from exc
    print(f"wrote {report.kind} engine {report.engine_dir}", flush=True)
    print(f"  classes: {report.classes}; scene labels: {', '.join(report.labels)}", flush=True)
    print(f"  parity (source vs ONNX Runtime): max |diff| {report.parity_max_abs_diff:.2e}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    return 0
