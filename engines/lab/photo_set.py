"""The packaged photos a detector is evaluated on, with what a person sees in each.

scikit-image's data images (a PyPI wheel) and OpenCV's sample data (the Debian package
`opencv-doc`, fetched pinned), including frames of `vtest.avi`. What the expectations mean and
how detections are scored against them: `engines.lab.photos`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]
Point = tuple[float, float]
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
