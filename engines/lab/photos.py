"""Object detectors on real photos that a package ships: scikit-image's data images.

Each photo has hand-written expectations, decided by looking at it (tests/.. and the model card
quote them): the COCO classes that must be found (`expected`), classes that are really in the
picture and may be found without counting as errors (`allowed`: the shuttle model beside the
astronaut, the chair and shelves behind the motorcycle), and for the main object a hand-drawn
reference box (`xyxy`, fractions of the photo). Photos with nothing COCO names (bricks, grass,
coins, text, a star field) expect nothing: any detection there is a false one.

The photo is resized to the engine's input the way the service resizes camera frames (swscale
area averaging to RGB), run through the engine runtime (`load_engine`, ONNX Runtime CPU), and
its detections are scored at each threshold: expected classes found, the IoU of the best box of
the main class with the reference box, false classes (neither expected nor allowed), and the
same at the scene-label level (`person`, `vehicle`: what `serve` publishes).

    python -m engines.lab.photos --engine engines/bundled/nanodet \\
        --json engines/bundled/nanodet/photos.json --markdown engines/bundled/nanodet/photos.md

scikit-image is a development dependency (the `dev` extra); the photos come from its wheel.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.detect.boxes import iou_matrix
from engines.detect.decode import Detection

Box = tuple[float, float, float, float]
THRESHOLDS = (0.35, 0.5)


@dataclass(frozen=True, slots=True)
class Photo:
    """One packaged photo and what a person sees in it."""

    name: str  # scikit-image's name for it
    expected: tuple[str, ...] = ()  # COCO classes that must be found
    allowed: tuple[str, ...] = ()  # classes really there that may be found
    box: Box | None = None  # hand-drawn box of expected[0]
    note: str = ""


# Boxes drawn by hand on a 10 x 10 grid over each photo (fractions of width and height).
PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", ("person",), ("airplane",), (0.04, 0.03, 0.70, 1.0),
          "Eileen Collins in a flight suit; a space-shuttle model and a flag behind her"),
    Photo("camera", ("person",), (), (0.0, 0.12, 0.64, 1.0),
          "a man filming with a camera on a tripod (greyscale); buildings far behind"),
    Photo("chelsea", ("cat",), (), (0.0, 0.0, 1.0, 1.0), "a tabby cat's face filling the frame"),
    Photo("coffee", ("cup",), ("spoon", "bowl", "dining table"), (0.28, 0.03, 0.70, 0.72),
          "an espresso cup on a saucer with a spoon, on a wooden table"),
    Photo("motorcycle_left", ("motorcycle",), ("bicycle", "chair", "bench", "bottle"),
          (0.16, 0.20, 0.93, 0.93), "a motorcycle in a garage (stereo pair, left view)"),
    Photo("motorcycle_right", ("motorcycle",), ("bicycle", "chair", "bench", "bottle"),
          (0.09, 0.20, 0.85, 0.93), "the same motorcycle, right view"),
    Photo("horse", ("horse",), (), None, "a horse's black silhouette on white"),
    Photo("clock", ("clock",), (), None, "a wall clock, motion-blurred (greyscale)"),
    Photo("rocket", (), (), None, "a rocket on its launch pad at dusk, towers and lights"),
    Photo("hubble_deep_field", note="galaxies on black (Hubble deep field)"),
    Photo("brick", note="a brick wall (greyscale texture)"),
    Photo("grass", note="grass (greyscale texture)"),
    Photo("gravel", note="gravel (greyscale texture)"),
    Photo("coins", note="Greek coins on a flat background (greyscale)"),
    Photo("moon", note="the moon's surface (greyscale)"),
    Photo("page", note="a scanned page of text"),
    Photo("text", note="text painted on a wall (greyscale)"),
)  # fmt: skip


def load_photo(name: str) -> npt.NDArray[np.uint8]:
    """The photo as RGB uint8 `[H, W, 3]` (greyscale and binary images repeated)."""
    import skimage.data

    if name.startswith("motorcycle_"):
        pair = skimage.data.stereo_motorcycle()  # type: ignore[no-untyped-call]
        image = np.asarray(pair[0 if name.endswith("left") else 1])
    else:
        image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = np.where(image, 255, 0)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def resize_like_service(image: npt.NDArray[np.uint8], height: int, width: int) -> Any:
    """`image` at height x width, as the service's ingest resizes frames (swscale, area)."""
    import av
    from av.video.reformatter import Interpolation, VideoReformatter

    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    out = VideoReformatter().reformat(
        frame, width, height, "rgb24", interpolation=Interpolation.AREA
    )
    return out.to_ndarray()


def score_photo(
    photo: Photo,
    detections: Sequence[Detection],
    threshold: float,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """One photo's result at `threshold` (pure). `labels` maps COCO classes to scene labels."""
    dets = [d for d in detections if d.score >= threshold]
    found = {d.class_name for d in dets}
    ok = set(photo.expected) | set(photo.allowed)
    false = sorted(found - ok)
    want_scene = {labels[c] for c in photo.expected if c in labels}
    ok_scene = want_scene | {labels[c] for c in photo.allowed if c in labels}
    got_scene = {d.label for d in dets if d.label is not None}
    iou = None
    if photo.box is not None and photo.expected:
        mine = [d for d in dets if d.class_name == photo.expected[0]]
        if mine:
            best = max(mine, key=lambda d: d.score)
            iou = float(iou_matrix([best.box], [photo.box])[0, 0])
    return {
        "expected_found": sorted(found & set(photo.expected)),
        "expected_missed": sorted(set(photo.expected) - found),
        "false_classes": false,
        "scene_expected": sorted(want_scene),
        "scene_found": sorted(got_scene & want_scene),
        "scene_false": sorted(got_scene - ok_scene),
        "box_iou": iou,
    }


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the photos' results at one threshold (pure)."""
    expected = sum(len(r["expected_found"]) + len(r["expected_missed"]) for r in rows)
    found = sum(len(r["expected_found"]) for r in rows)
    scene_expected = sum(len(r["scene_expected"]) for r in rows)
    ious = [r["box_iou"] for r in rows if r["box_iou"] is not None]
    return {
        "expected_objects": expected,
        "expected_found": found,
        "recall": found / expected if expected else None,
        "photos_with_false_classes": sum(bool(r["false_classes"]) for r in rows),
        "false_classes": sum(len(r["false_classes"]) for r in rows),
        "scene_expected": scene_expected,
        "scene_found": sum(len(r["scene_found"]) for r in rows),
        "photos_with_false_scene_labels": sum(bool(r["scene_false"]) for r in rows),
        "box_iou_mean": float(np.mean(ious)) if ious else None,
        "boxes_iou_over_0_5": sum(i >= 0.5 for i in ious),
        "boxes_scored": len(ious),
    }


def evaluate(engine_dir: Path, photos: Sequence[Photo] = PHOTOS) -> dict[str, Any]:
    """Run the engine at `engine_dir` on the photos; results per threshold."""
    import time

    from engines.config import EnginesConfig
    from engines.runtime.interface import detections_of
    from engines.runtime.loader import load_engine
    from engines.runtime.manifest import load_manifest
    from engines.runtime.manifest_schema import DETECTIONS
    from engines.window import Window

    manifest = load_manifest(engine_dir)
    video = manifest.window_spec().video
    if video is None or manifest.doc.detections is None:
        raise SystemExit(f"{engine_dir}: not a detector engine")
    labels = manifest.label_maps.get(DETECTIONS, {})
    with tempfile.TemporaryDirectory() as cache:
        cfg = EnginesConfig.model_validate({"cache_dir": cache, "backends": ["onnxruntime"]})
        engine, _ = load_engine(manifest, cfg)
        per_photo: list[dict[str, Any]] = []
        latencies = []
        for photo in photos:
            image = load_photo(photo.name)
            frame = resize_like_service(image, video.height, video.width)
            window = Window("photos", manifest.name, 0, 0.0, manifest.doc.window.length_s,
                            frame[None], None, None)  # fmt: skip
            started = time.perf_counter()
            scores = engine.infer([window])[0]
            latencies.append(time.perf_counter() - started)
            dets = detections_of(scores) or ()
            per_photo.append({
                "photo": photo.name, "size": list(image.shape[:2]), "note": photo.note,
                "expected": list(photo.expected), "allowed": list(photo.allowed),
                "reference_box": list(photo.box) if photo.box else None,
                "detections": [
                    {"class": d.class_name, "label": d.label, "score": round(d.score, 4),
                     "box": [round(v, 4) for v in d.box]}
                    for d in dets
                ],
                "at": {
                    str(t): score_photo(photo, dets, t, labels) for t in THRESHOLDS
                },
            })  # fmt: skip
    return {
        "engine": manifest.name,
        "input": [video.height, video.width],
        "score_threshold": manifest.doc.detections.score_threshold,
        "photos": per_photo,
        "summary": {str(t): summarise([p["at"][str(t)] for p in per_photo]) for t in THRESHOLDS},
        "latency_ms_p50": round(float(np.median(latencies)) * 1000, 1),
    }


def markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown tables."""
    lines = [
        f"# `{report['engine']}` on scikit-image's photos",
        "",
        "Written by `python -m engines.lab.photos` (engines/lab/photos.py holds the "
        "hand-written expectations). Input "
        f"{report['input'][1]}x{report['input'][0]}, detections at score ≥ threshold.",
        "",
        "| threshold | expected found | mean box IoU (IoU ≥ 0.5) | photos with false classes "
        "| person/vehicle found | photos with a false person/vehicle |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t, s in report["summary"].items():
        iou = "–" if s["box_iou_mean"] is None else f"{s['box_iou_mean']:.2f}"
        lines.append(
            f"| {t} | {s['expected_found']}/{s['expected_objects']} | {iou} "
            f"({s['boxes_iou_over_0_5']}/{s['boxes_scored']}) "
            f"| {s['photos_with_false_classes']}/{len(report['photos'])} "
            f"| {s['scene_found']}/{s['scene_expected']} "
            f"| {s['photos_with_false_scene_labels']}/{len(report['photos'])} |"
        )
    low = str(min(THRESHOLDS))
    lines += [
        "",
        f"Per photo, at {low}:",
        "",
        "| photo | expected | found (best score) | box IoU | false classes (best score) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in report["photos"]:
        r = p["at"][low]
        best: dict[str, float] = {}
        for d in p["detections"]:
            best[d["class"]] = max(best.get(d["class"], 0.0), d["score"])

        def named(classes: Sequence[str], best: dict[str, float] = best) -> str:
            return ", ".join(f"{c} ({best[c]:.2f})" for c in classes) or "–"

        iou = "–" if r["box_iou"] is None else f"{r['box_iou']:.2f}"
        lines.append(
            f"| {p['photo']} | {', '.join(p['expected']) or '(nothing)'} "
            f"| {named(r['expected_found'])} | {iou} | {named(r['false_classes'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engine", type=Path, required=True, help="a detector engine directory")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    report = evaluate(args.engine)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
