"""Object detectors on real photos that packages ship: scikit-image's data images (a PyPI
wheel) and OpenCV's sample data (the Debian package `opencv-doc`), including frames of
`vtest.avi`, a pedestrian scene filmed from above a campus path.

Each photo has hand-written expectations, decided by looking at it on a 10 x 10 grid: the COCO
classes that must be found (`expected`), classes that are really in the picture and may be found
without counting as errors (`allowed`: the shuttle model beside the astronaut, the parked vans in
`vtest.avi`), for the main object a hand-drawn reference box (`xyxy`, fractions of the photo),
and where a photo holds several of the expected[0] class, a point marked on each (`points`;
`exhaustive` when every one is marked). Photos with nothing COCO names (bricks, grass, coins,
text, a star field, a baboon, a squirrel) expect nothing: any detection there is a false one.

The photo is resized to the engine's input the way the service resizes camera frames (swscale
area averaging to RGB), run through the engine runtime (`load_engine`, ONNX Runtime CPU), and
its detections are scored at each threshold: expected classes found, the IoU of the best box of
the main class with the reference box, marked objects whose point lies in a box of their class
and, on exhaustively marked photos, boxes of that class that hold no point; false classes
(neither expected nor allowed); and the same at the scene-label level (`person`, `vehicle`: what
`serve` publishes).

    python -m engines.lab.photos --engine engines/bundled/nanodet \\
        --json engines/bundled/nanodet/photos.json --markdown engines/bundled/nanodet/photos.md

scikit-image is a development dependency (the `dev` extra). `opencv-doc` is downloaded with
`apt-get download` (pinned version and SHA-256, about 96 MB, into `.cache/scenestream/photos`;
nothing is written into the repository); `--set skimage` skips it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.detect.boxes import iou_matrix
from engines.detect.decode import Detection
from engines.lab.photo_set import DEFAULT_CACHE, PHOTOS, Photo, Point, load_photo

THRESHOLDS = (0.35, 0.5)


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
    marked = found_marked = unmatched = None
    if photo.points and photo.expected:
        mine = [d for d in dets if d.class_name == photo.expected[0]]
        claimed = match_points(mine, photo.points)
        marked, found_marked = len(photo.points), sum(c is not None for c in claimed)
        if photo.exhaustive:
            unmatched = sum(c is None for c in claimed_by_box(mine, photo.points))
    return {
        "expected_found": sorted(found & set(photo.expected)),
        "expected_missed": sorted(set(photo.expected) - found),
        "false_classes": false,
        "scene_expected": sorted(want_scene),
        "scene_found": sorted(got_scene & want_scene),
        "scene_false": sorted(got_scene - ok_scene),
        "box_iou": iou,
        "marked": marked,
        "marked_found": found_marked,
        "boxes_on_no_mark": unmatched,
    }


def claimed_by_box(dets: Sequence[Detection], points: Sequence[Point]) -> list[int | None]:
    """Per detection (best score first), the marked point it claims: of the points inside its
    box not claimed by a better one, the nearest to the box's centre (None: it claims none)."""
    taken: set[int] = set()
    out: list[int | None] = []
    for d in sorted(dets, key=lambda d: -d.score):
        x1, y1, x2, y2 = d.box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        inside = [
            (float(np.hypot(px - cx, py - cy)), i)
            for i, (px, py) in enumerate(points)
            if i not in taken and x1 <= px <= x2 and y1 <= py <= y2
        ]
        best = min(inside)[1] if inside else None
        if best is not None:
            taken.add(best)
        out.append(best)
    return out


def match_points(dets: Sequence[Detection], points: Sequence[Point]) -> list[int | None]:
    """Per marked point, the index (best score first) of the detection that claimed it."""
    out: list[int | None] = [None] * len(points)
    for rank, point in enumerate(claimed_by_box(dets, points)):
        if point is not None:
            out[point] = rank
    return out


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
        "marked": sum(r["marked"] or 0 for r in rows),
        "marked_found": sum(r["marked_found"] or 0 for r in rows),
        "boxes_on_no_mark": sum(r["boxes_on_no_mark"] or 0 for r in rows),
    }


GROUPS = ("skimage", "opencv-doc", "vtest")


def evaluate(
    engine_dir: Path, photos: Sequence[Photo] = PHOTOS, cache: Path = DEFAULT_CACHE
) -> dict[str, Any]:
    """Run the engine at `engine_dir` on the photos; results per threshold and group."""
    import time

    from engines.config import EnginesConfig
    from engines.runtime.interface import detections_of
    from engines.runtime.loader import load_engine
    from engines.runtime.manifest import load_manifest
    from engines.runtime.manifest_schema import DETECTIONS
    from engines.window import Window

    manifest = load_manifest(engine_dir)
    video = manifest.window_spec().video
    det = manifest.doc.detections
    if video is None or det is None:
        raise SystemExit(f"{engine_dir}: not a detector engine")
    # Decode down to the lowest threshold reported (the engine's own may be higher).
    low = det.model_copy(update={"score_threshold": min(min(THRESHOLDS), det.score_threshold)})
    manifest = dataclasses.replace(
        manifest, doc=manifest.doc.model_copy(update={"detections": low})
    )
    labels = manifest.label_maps.get(DETECTIONS, {})
    with tempfile.TemporaryDirectory() as engine_cache:
        cfg = EnginesConfig.model_validate({"cache_dir": engine_cache, "backends": ["onnxruntime"]})
        engine, _ = load_engine(manifest, cfg)
        per_photo: list[dict[str, Any]] = []
        latencies = []
        for photo in photos:
            image = load_photo(photo.name, cache)
            frame = resize_like_service(image, video.height, video.width)
            window = Window("photos", manifest.name, 0, 0.0, manifest.doc.window.length_s,
                            frame[None], None, None)  # fmt: skip
            started = time.perf_counter()
            scores = engine.infer([window])[0]
            latencies.append(time.perf_counter() - started)
            dets = detections_of(scores) or ()
            per_photo.append({
                "photo": photo.name, "group": photo.group, "size": list(image.shape[:2]),
                "note": photo.note, "marked": [list(p) for p in photo.points],
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
        "score_threshold": det.score_threshold,
        "photos": per_photo,
        "summary": {
            group: {
                str(t): summarise([p["at"][str(t)] for p in per_photo if p["group"] == group])
                for t in THRESHOLDS
            }
            for group in GROUPS
            if any(p["group"] == group for p in per_photo)
        },
        "latency_ms_p50": round(float(np.median(latencies)) * 1000, 1),
    }


def markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown tables."""
    lines = [
        f"# `{report['engine']}` on packaged photos",
        "",
        "Written by `python -m engines.lab.photos` (engines/lab/photo_set.py holds the "
        "hand-written expectations): scikit-image's data images, OpenCV's sample images "
        "(`opencv-doc`) and frames of its `vtest.avi` (people walking). Input "
        f"{report['input'][1]}x{report['input'][0]}; the engine keeps detections at score ≥ "
        f"{report['score_threshold']}, the rows below count those at score ≥ threshold.",
        "",
        "| photos | threshold | classes found | mean box IoU (IoU ≥ 0.5) | marked objects found "
        "| boxes on no mark | photos with false classes | person/vehicle found "
        "| photos with a false person/vehicle |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for group, by_t in report["summary"].items():
        n = sum(p["group"] == group for p in report["photos"])
        for t, s in by_t.items():
            iou = "–" if s["box_iou_mean"] is None else f"{s['box_iou_mean']:.2f}"
            iou += f" ({s['boxes_iou_over_0_5']}/{s['boxes_scored']})" if s["boxes_scored"] else ""
            marked = f"{s['marked_found']}/{s['marked']}" if s["marked"] else "–"
            lines.append(
                f"| {group} ({n}) | {t} | {s['expected_found']}/{s['expected_objects']} | {iou} "
                f"| {marked} | {s['boxes_on_no_mark'] if s['marked'] else '–'} "
                f"| {s['photos_with_false_classes']}/{n} "
                f"| {s['scene_found']}/{s['scene_expected']} "
                f"| {s['photos_with_false_scene_labels']}/{n} |"
            )
    low = str(min(THRESHOLDS))
    lines += [
        "",
        f"Per photo, at {low}:",
        "",
        "| photo | expected | found (best score) | box IoU | marked found | false classes "
        "(best score) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in report["photos"]:
        r = p["at"][low]
        best: dict[str, float] = {}
        for d in p["detections"]:
            best[d["class"]] = max(best.get(d["class"], 0.0), d["score"])

        def named(classes: Sequence[str], best: dict[str, float] = best) -> str:
            return ", ".join(f"{c} ({best[c]:.2f})" for c in classes) or "–"

        iou = "–" if r["box_iou"] is None else f"{r['box_iou']:.2f}"
        marked = "–" if r["marked"] is None else f"{r['marked_found']}/{r['marked']}"
        if r["boxes_on_no_mark"]:
            marked += f" (+{r['boxes_on_no_mark']} on none)"
        lines.append(
            f"| {p['photo']} | {', '.join(p['expected']) or '(nothing)'} "
            f"| {named(r['expected_found'])} | {iou} | {marked} "
            f"| {named(r['false_classes'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engine", type=Path, required=True, help="a detector engine directory")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where opencv-doc goes")
    parser.add_argument("--set", choices=["all", "skimage"], default="all",
                        help="skimage: only scikit-image's photos (no download)")  # fmt: skip
    args = parser.parse_args(argv)
    photos = [p for p in PHOTOS if args.set == "all" or p.source == "skimage"]
    report = evaluate(args.engine, photos, args.cache)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
