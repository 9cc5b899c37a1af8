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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.detect.boxes import iou_matrix
from engines.detect.decode import Detection

Box = tuple[float, float, float, float]
Point = tuple[float, float]
THRESHOLDS = (0.35, 0.5)
DEFAULT_CACHE = Path(".cache/scenestream/photos")
OPENCV_DOC = "opencv-doc"
OPENCV_DOC_VERSION = "4.6.0+dfsg-12"
OPENCV_DOC_FILE = "opencv-doc_4.6.0+dfsg-12_all.deb"
OPENCV_DOC_SHA256 = "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a"
OPENCV_DOC_BYTES = 95715012
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data/"


@dataclass(frozen=True, slots=True)
class Photo:
    """One packaged photo and what a person sees in it."""

    name: str  # scikit-image's name, or `opencv-doc:<file>` (`<file>#<frame>` for a video)
    expected: tuple[str, ...] = ()  # COCO classes that must be found
    allowed: tuple[str, ...] = ()  # classes really there that may be found
    box: Box | None = None  # hand-drawn box of expected[0]
    note: str = ""
    points: tuple[Point, ...] = ()  # one marked point per instance of expected[0]
    exhaustive: bool = False  # every instance of expected[0] is marked

    @property
    def source(self) -> str:
        """`skimage` or `opencv-doc`."""
        return OPENCV_DOC if self.name.startswith(f"{OPENCV_DOC}:") else "skimage"

    @property
    def group(self) -> str:
        """How the report groups it: `skimage`, `opencv-doc` (stills) or `vtest` (frames)."""
        return "vtest" if "vtest.avi" in self.name else self.source


def _px(
    points: Sequence[tuple[int, int]], width: int = 768, height: int = 576
) -> tuple[Point, ...]:
    """Pixel points → fractions of the frame."""
    return tuple((x / width, y / height) for x, y in points)


VEHICLES_PARKED = ("car", "truck", "bus")  # the vans and car parked at the top of vtest.avi
# Where each walker's body is, in pixels of the 768 x 576 frame (marked by hand on each frame).
VTEST_PEOPLE: dict[int, list[tuple[int, int]]] = {
    0: [(267, 265), (515, 193), (662, 283)],
    100: [(230, 78), (362, 237), (393, 218), (440, 222), (506, 185), (528, 185), (603, 192)],
    200: [(96, 185), (236, 230), (502, 182), (687, 125), (712, 130), (632, 315), (723, 305)],
    300: [(201, 196), (254, 190), (312, 193), (329, 252), (596, 197), (631, 200)],
    400: [(288, 242), (603, 172), (716, 355)],
    500: [(320, 228), (574, 285), (589, 335), (627, 322)],
    600: [(198, 180), (582, 245), (687, 255), (475, 360), (655, 360), (306, 505)],
    700: [(198, 203), (293, 257), (380, 212), (414, 178), (485, 167), (532, 200), (705, 265),
          (121, 342)],
}  # fmt: skip

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
    Photo("opencv-doc:messi5.jpg", ("person", "sports ball"), ("chair",),
          (0.12, 0.18, 0.83, 0.98), "a footballer kicking the ball; a blurred crowd behind"),
    Photo("opencv-doc:basketball1.png", ("person", "sports ball"), ("chair",), None,
          "two men in an office, one holding a basketball (greyscale)",
          points=((0.17, 0.5), (0.88, 0.5)), exhaustive=True),
    Photo("opencv-doc:licenseplate_motion.jpg", ("car",), (), (0.0, 0.05, 1.0, 0.92),
          "the back of a car, close, motion-blurred"),
    Photo("opencv-doc:fruits.jpg", ("orange",), ("apple", "banana", "bowl"), None,
          "cut citrus fruit, a kiwi, cheese"),
    Photo("opencv-doc:apple.jpg", ("apple",), (), None, "one red apple"),
    Photo("opencv-doc:orange.jpg", ("orange",), (), None, "one orange"),
    Photo("opencv-doc:building.jpg", (), ("car", "potted plant", "bench"), None,
          "an office building; a car and planters by the entrance"),
    Photo("opencv-doc:home.jpg", (), ("bird",), None, "a domed building, birds far up in the sky"),
    Photo("opencv-doc:aero1.jpg", (), ("car", "truck", "bus", "boat"), None,
          "a town seen from an aircraft"),
    Photo("opencv-doc:box_in_scene.png", (), ("book",), None,
          "food boxes in a bag (greyscale)"),
    Photo("opencv-doc:squirrel_cls.jpg", note="a squirrel on a branch (no COCO class)"),
    Photo("opencv-doc:baboon.jpg", note="a mandrill's face (no COCO class)"),
    Photo("opencv-doc:stuff.jpg", note="a pencil, a lighter, a coin, caps on a table"),
    Photo("opencv-doc:starry_night.jpg", note="Van Gogh's painting"),
    *(
        Photo(f"opencv-doc:vtest.avi#{frame}", ("person",), VEHICLES_PARKED, None,
              f"vtest.avi frame {frame}: {len(people)} people walking on a campus path",
              points=_px(people), exhaustive=True)
        for frame, people in VTEST_PEOPLE.items()
    ),
)  # fmt: skip


def load_photo(name: str, cache: Path = DEFAULT_CACHE) -> npt.NDArray[np.uint8]:
    """The photo as RGB uint8 `[H, W, 3]` (greyscale and binary images repeated)."""
    if name.startswith(f"{OPENCV_DOC}:"):
        image = _opencv_doc_image(name.removeprefix(f"{OPENCV_DOC}:"), cache)
    elif name.startswith("motorcycle_"):
        import skimage.data

        pair = skimage.data.stereo_motorcycle()  # type: ignore[no-untyped-call]
        image = np.asarray(pair[0 if name.endswith("left") else 1])
    else:
        import skimage.data

        image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = np.where(image, 255, 0)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def fetch_opencv_doc(cache: Path, files: Sequence[str]) -> Path:
    """Extract `files` (of OpenCV's sample data) from the pinned `opencv-doc` package into
    `cache/opencv-doc/` (downloading and checking the package only when one is missing)."""
    from engines.lab.realsounds.fetch import _deb_members, download
    from engines.lab.realsounds.manifest import Source

    out = cache / OPENCV_DOC
    missing = [f for f in files if not (out / f).exists()]
    if missing:
        source = Source("deb", OPENCV_DOC, OPENCV_DOC_VERSION, OPENCV_DOC_FILE,
                        OPENCV_DOC_SHA256, OPENCV_DOC_BYTES)  # fmt: skip
        deb = download(source, cache / "dist")
        members = _deb_members(deb, {OPENCV_DATA + f for f in missing})
        out.mkdir(parents=True, exist_ok=True)
        for f in missing:
            if OPENCV_DATA + f not in members:
                raise SystemExit(f"{OPENCV_DOC} {OPENCV_DOC_VERSION}: no file {OPENCV_DATA}{f}")
            (out / f).write_bytes(members[OPENCV_DATA + f])
        deb.unlink()
    return out


def _opencv_doc_image(spec: str, cache: Path) -> npt.NDArray[np.uint8]:
    """One image file, or frame `#n` of a video, of OpenCV's sample data, as RGB."""
    import av

    file, _, frame = spec.partition("#")
    path = fetch_opencv_doc(cache, [file]) / file
    index = int(frame or 0)
    with av.open(str(path)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == index:
                return np.asarray(decoded.to_ndarray(format="rgb24"), dtype=np.uint8)
    raise SystemExit(f"{path}: no frame {index}")


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
        "Written by `python -m engines.lab.photos` (engines/lab/photos.py holds the "
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
