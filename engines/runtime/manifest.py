"""Engine manifests (`engine.toml`): what an engine is, validated once, at load.

An engine is a directory holding `engine.toml` and its model file(s). Everything a user can get
wrong in a manifest (unknown keys, missing files, wrong dtypes, shapes that disagree with the
ONNX graph, label counts that disagree with an output) is a `ManifestError` naming the file and
the field here, never a surprise at first inference.

The tables and their fields: `engines.runtime.manifest_schema`; the rules across fields and
against the ONNX graph: `engines.runtime.manifest_checks`.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from engines.detect.decode import DecodeSpec
from engines.labelmaps import LabelMapError, apply_overrides, load_label_map, mapped_labels
from engines.runtime.interface import ManifestError
from engines.runtime.manifest_checks import check_against_onnx, check_consistency, fail
from engines.runtime.manifest_schema import (
    DETECTIONS,
    DetectionsTable,
    EngineTable,
    InputTable,
    ManifestDoc,
    OutputTable,
)
from engines.window import AudioSpec, VideoSpec, WindowSpec

MANIFEST_FILE = "engine.toml"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest with its files resolved."""

    path: Path  # the engine.toml
    doc: ManifestDoc
    model_path: Path | None  # the ONNX file, when there is one
    # Per output (and `detections`), class name -> scene label, where a label map is declared.
    label_maps: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """The engine directory."""
        return self.path.parent

    @property
    def name(self) -> str:
        """Engine name."""
        return self.doc.engine.name

    @property
    def labels(self) -> tuple[str, ...]:
        """All scene labels, in output declaration order (mapped where a label map applies),
        then the detections' labels."""
        out: list[str] = []
        for name, table in self.doc.outputs.items():
            out.extend(self.output_labels(name, table))
        return tuple(out) + self.detection_labels

    def output_labels(self, name: str, table: OutputTable) -> tuple[str, ...]:
        """The scene labels one score output yields."""
        mapping = self.label_maps.get(name)
        return table.labels if mapping is None else mapped_labels(table.labels, mapping)

    @property
    def detection_labels(self) -> tuple[str, ...]:
        """The scene labels of a detector's detections (mapped classes, or all class names)."""
        det = self.doc.detections
        if det is None:
            return ()
        mapping = self.label_maps.get(DETECTIONS)
        if mapping is None:
            return det.class_names
        labels = mapped_labels(det.class_names, mapping)
        if det.keep_unmapped:
            labels += tuple(c for c in det.class_names if c not in mapping)
        return labels

    def decode_spec(self) -> DecodeSpec | None:
        """How to decode the detections, for detectors."""
        det = self.doc.detections
        if det is None:
            return None
        video = self.window_spec().video
        mapping = self.label_maps.get(DETECTIONS)
        labels: dict[str, str | None] = {}
        if mapping is not None:
            labels = {c: mapping.get(c, c if det.keep_unmapped else None) for c in det.class_names}
        return DecodeSpec(
            layout=det.layout,
            class_names=det.class_names,
            box_format=det.box_format or ("cxcywh" if det.layout.startswith("yolo") else "xyxy"),
            normalized=det.normalized,
            width=float(video.width) if video else 1.0,
            height=float(video.height) if video else 1.0,
            score_threshold=det.score_threshold,
            iou_threshold=det.iou_threshold,
            max_detections=det.max_detections,
            nms=det.nms if det.nms is not None else det.layout != "end2end",
            activation=det.activation,
            labels=labels,
            keep_unmapped=True,
            strides=det.strides,
            reg_max=det.reg_max,
            center_offset=det.center_offset,
        )

    @property
    def graph_outputs(self) -> tuple[str, ...]:
        """Every graph output a backend must return: declared outputs, then the detections'."""
        det = self.doc.detections.graph_outputs() if self.doc.detections else ()
        return tuple(dict.fromkeys((*self.doc.outputs, *det)))

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes to build and warm, ascending."""
        return self.doc.engine.batch_sizes

    @property
    def stateful(self) -> bool:
        """Whether per-stream state is carried between calls."""
        return self.doc.streaming is not None or any(
            i.role == "state" for i in self.doc.inputs.values()
        )

    def inputs_with_role(self, role: str) -> dict[str, InputTable]:
        """Declared inputs of one role, by graph name."""
        return {k: v for k, v in self.doc.inputs.items() if v.role == role}

    def window_spec(self) -> WindowSpec:
        """The windows this engine consumes."""
        win = self.doc.window
        video = audio = None
        for spec in self.inputs_with_role("video").values():
            t, h, w = (int(d) for d in spec.shape[1:4])
            video = VideoSpec(frames=t, fps=float(spec.fps or 0), height=h, width=w)
        for spec in self.inputs_with_role("audio").values():
            rate = int(spec.sample_rate or 0)
            samples = round(win.length_s * rate) if self.doc.streaming else int(spec.shape[1])
            audio = AudioSpec(sample_rate=rate, samples=samples)
        return WindowSpec(
            length_s=win.length_s,
            hop_s=win.hop_s,
            video=video,
            audio=audio,
            labels_at=win.labels_at,
        )


def load_manifest(path: Path) -> Manifest:
    """Read, validate and resolve `path` (an `engine.toml` or the directory holding one)."""
    path = path / MANIFEST_FILE if path.is_dir() else path
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: manifest not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from exc
    try:
        doc = ManifestDoc.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{path}: {where}: {first['msg']}") from exc
    model_path = _resolve_model(path, doc.engine)
    manifest = Manifest(
        path=path, doc=doc, model_path=model_path, label_maps=_label_maps(path, doc)
    )
    check_consistency(manifest)
    if model_path is not None and model_path.suffix == ".onnx":
        check_against_onnx(manifest, model_path)
    return manifest


def _label_maps(path: Path, doc: ManifestDoc) -> dict[str, dict[str, str]]:
    tables: dict[str, OutputTable | DetectionsTable] = dict(doc.outputs)
    if doc.detections is not None:
        tables[DETECTIONS] = doc.detections
    out: dict[str, dict[str, str]] = {}
    for name, table in tables.items():
        if table.label_map is None and not table.label_overrides:
            continue
        try:
            base = load_label_map(table.label_map, path.parent) if table.label_map else {}
            out[name] = apply_overrides(base, table.label_overrides)
        except LabelMapError as exc:
            raise fail(path, f"outputs.{name}.label_map", str(exc)) from exc
    return out


def _resolve_model(path: Path, engine: EngineTable) -> Path | None:
    if engine.model and engine.model_package:
        raise fail(path, "engine.model", "give either model or model_package, not both")
    if engine.model:
        model = (path.parent / engine.model).resolve()
        if not model.is_file():
            raise fail(path, "engine.model", f"file not found: {model}")
        return model
    if engine.model_package:
        package, _, inner = engine.model_package.partition(":")
        spec = importlib.util.find_spec(package.split(".")[0])
        found = importlib.util.find_spec(package) if spec else None
        if found is None or not found.submodule_search_locations:
            raise fail(path, "engine.model_package", f"package {package!r} is not installed")
        model = Path(next(iter(found.submodule_search_locations))) / inner
        if not model.is_file():
            raise fail(path, "engine.model_package", f"file not found: {model}")
        return model
    if not engine.torch_factory:
        raise fail(path, "engine.model", "give model, model_package or torch_factory")
    return None
