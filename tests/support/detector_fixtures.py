"""A tiny randomly initialised YOLO-style detector (anchor-free head over a strided conv
backbone, the YOLOv8 layout), built from a config in torch, exported to ONNX, and an engine
directory around it. No downloads.

The ONNX graph takes the engine's video input (uint8 `[B, 1, H, W, 3]`) and emits the raw head
`[B, 4 + C, N]`: per anchor a box (centre x, centre y, width, height, pixels) then per-class
scores (sigmoid in the graph), as YOLOv8 exports do. The box branch's weights are scaled down
so that random weights give boxes near their anchors (stable from frame to frame, hence tracks),
and the class named `hot_class` gets a bias so that a random model still detects something.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.engine_fixtures import to_toml

COCO = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Shape of the tiny detector: input size, backbone widths (each conv halves the size)."""

    size: int = 64
    widths: tuple[int, ...] = (8, 16, 16)
    classes: tuple[str, ...] = COCO
    hot_class: str = "car"
    seed: int = 0


def build_detector(cfg: DetectorConfig) -> Any:
    """The torch module (eval mode), randomly initialised from `cfg.seed`."""
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)

    class TinyYolo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            cin = 3
            for w in cfg.widths:
                layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1), nn.SiLU()]
                cin = w
            self.backbone = nn.Sequential(*layers)
            self.box = nn.Conv2d(cin, 4, 1)
            self.cls = nn.Conv2d(cin, len(cfg.classes), 1)
            with torch.no_grad():
                self.box.weight.mul_(0.05)
                self.box.bias.fill_(1.5)
                self.cls.bias.fill_(-6.0)
                self.cls.bias[cfg.classes.index(cfg.hot_class)] = 2.0
            stride = 2 ** len(cfg.widths)
            cells = cfg.size // stride
            ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
            centres = torch.stack([xs, ys]).reshape(2, -1).float().add(0.5).mul(stride)
            self.register_buffer("centres", centres)
            self.stride = float(stride)

        def forward(self, video: torch.Tensor) -> torch.Tensor:
            return self.head(video[:, -1].permute(0, 3, 1, 2).float().div(255.0))

        def head(self, x: torch.Tensor) -> torch.Tensor:
            """Float RGB `[B, 3, H, W]` in 0..1 → the raw head `[B, 4 + C, N]`."""
            f = self.backbone(x)
            ltrb = nn.functional.softplus(self.box(f)).flatten(2) * self.stride  # [B, 4, N]
            x1y1 = self.centres - ltrb[:, :2]
            x2y2 = self.centres + ltrb[:, 2:]
            box = torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], dim=1)
            return torch.cat([box, torch.sigmoid(self.cls(f).flatten(2))], dim=1)

    return TinyYolo().eval()


def export_detector(cfg: DetectorConfig, path: Path) -> None:
    """`build_detector(cfg)` exported to ONNX at `path` (input `video`, output `output0`)."""
    import torch

    model = build_detector(cfg)
    batch = torch.export.Dim("batch", min=1, max=64)
    example = (torch.zeros(2, 1, cfg.size, cfg.size, 3, dtype=torch.uint8),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=["video"],
            output_names=["output0"],
            dynamic_shapes={"video": {0: batch}},
            opset_version=18,
            verbose=False,
        )
    single_file(path)


def single_file(path: Path) -> None:
    """Fold the exporter's external weights file (`model.onnx.data`) into the model itself."""
    import onnx

    model = onnx.load(str(path))
    data = path.with_name(path.name + ".data")
    onnx.save(model, str(path))
    data.unlink(missing_ok=True)


def detector_manifest(cfg: DetectorConfig, name: str = "tiny-yolo") -> dict[str, Any]:
    """The engine manifest for the exported detector: COCO classes mapped to vehicle/person."""
    return {
        "engine": {
            "name": name,
            "version": "0.1.0",
            "description": "tiny randomly initialised YOLO-style detector (tests)",
            "model": "model.onnx",
            "batch_sizes": [1, 2, 4],
            "budget_ms": 300,
        },
        "window": {"length_s": 0.25, "hop_s": 0.25, "labels_at": "end"},
        "inputs": {
            "video": {
                "role": "video",
                "dtype": "uint8",
                "shape": ["B", 1, cfg.size, cfg.size, 3],
                "fps": 4.0,
            },
        },
        "outputs": {
            "detections": {
                "layout": "yolo",
                "output": "output0",
                "class_names": list(cfg.classes),
                "box_format": "cxcywh",
                "normalized": False,
                "score_threshold": 0.25,
                "iou_threshold": 0.45,
                "max_detections": 8,
                "label_map": "coco",
            }
        },
    }


def build_detector_engine(root: Path, cfg: DetectorConfig | None = None) -> Path:
    """Write `root/tiny-yolo` (ONNX model + manifest); return the engine directory."""
    cfg = cfg or DetectorConfig()
    engine_dir = root / "tiny-yolo"
    engine_dir.mkdir(parents=True)
    export_detector(cfg, engine_dir / "model.onnx")
    (engine_dir / "engine.toml").write_text(to_toml(detector_manifest(cfg)))
    return engine_dir


def export_standard_detector(
    cfg: DetectorConfig, path: Path, *, end2end: bool = False, objectness: bool = False
) -> None:
    """The detector as standard exporters write it: float input `images` `[B, 3, H, W]`, output
    `output0` (the raw head, or `[B, K, 6]` end-to-end rows: the K best anchors as corner box,
    score, class), or with `objectness` YOLOv5-style rows `[B, N, 5 + C]` (box, objectness 0.9,
    class scores); class names in the file's `names` metadata (as Ultralytics writes them)."""
    import onnx
    import torch
    from torch import nn

    core = build_detector(cfg)

    class Standard(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            head = core.head(images)
            if objectness:
                rows = head.transpose(1, 2)
                obj = torch.full_like(rows[..., :1], 0.9)
                return torch.cat([rows[..., :4], obj, rows[..., 4:]], dim=-1)
            if not end2end:
                return head
            rows = head.transpose(1, 2)  # [B, N, 4 + C]
            score, cls = rows[..., 4:].max(dim=-1)
            top = score.topk(10, dim=1).indices  # [B, K]
            pick = rows.gather(1, top[..., None].expand(-1, -1, rows.shape[-1]))
            cxcy, wh = pick[..., :2], pick[..., 2:4]
            boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)
            best = score.gather(1, top)[..., None]
            label = cls.gather(1, top)[..., None].float()
            return torch.cat([boxes, best, label], dim=-1)

    example = (torch.zeros(1, 3, cfg.size, cfg.size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            Standard().eval(), example, str(path), input_names=["images"],
            output_names=["output0"], opset_version=18, verbose=False,
        )  # fmt: skip
    single_file(path)
    model = onnx.load(str(path))
    names = {i: n for i, n in enumerate(cfg.classes)}
    model.metadata_props.add(key="names", value=repr(names))
    onnx.save(model, str(path))
