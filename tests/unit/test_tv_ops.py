"""The operators registered for torchvision's detection models where its compiled ops do not load
(`engines/runtime/nets/tv_detection.py`): NMS keeps exactly what scenestream's own NMS keeps, and
RoIAlign computes what ONNX Runtime's `RoiAlign` (the exported graph's) does, RoIs hanging over
the feature map's edges included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.detect.nms import nms
from engines.runtime.nets.tv_detection import nms_reference, roi_align_reference

pytestmark = pytest.mark.unit


CASES = [(0, 0.5, 0), (1, 0.5, 0), (500, 0.5, 1), (2000, 0.3, 2), (2000, 0.7, 3)]


@pytest.mark.parametrize(("count", "threshold", "seed"), CASES)
def test_reference_nms_keeps_what_scenestream_nms_keeps(
    count: int, threshold: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (count, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 60, (count, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(count).astype(np.float32) / max(count, 1)  # no ties
    kept = nms_reference(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
    assert kept.dtype == torch.long
    assert kept.tolist() == nms(boxes, scores, threshold).tolist()
    if count:
        assert scores[kept.numpy()].tolist() == sorted(scores[kept.numpy()], reverse=True)


def _onnx_roi_align(
    features: np.ndarray, rois: np.ndarray, scale: float, ratio: int, aligned: bool
) -> np.ndarray:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    mode = "half_pixel" if aligned else "output_half_pixel"
    node = helper.make_node(
        "RoiAlign", ["x", "r", "i"], ["y"], spatial_scale=scale, output_height=7,
        output_width=7, sampling_ratio=ratio, coordinate_transformation_mode=mode,
    )  # fmt: skip
    inputs = [
        helper.make_tensor_value_info(n, t, None)
        for n, t in (("x", TensorProto.FLOAT), ("r", TensorProto.FLOAT), ("i", TensorProto.INT64))
    ]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph([node], "roi", inputs, [output]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": features, "r": rois[:, 1:].copy(), "i": rois[:, 0].astype(np.int64)}
    result: np.ndarray = session.run(None, feeds)[0]
    return result


@pytest.mark.parametrize(
    ("height", "width", "scale", "ratio", "aligned"),
    [(10, 10, 1 / 32, 2, False), (20, 13, 1 / 16, 2, False), (40, 40, 1 / 8, 0, False),
     (12, 9, 0.25, 2, True), (7, 7, 1.0, 0, True)],
)  # fmt: skip
def test_reference_roi_align_matches_onnx_runtime(
    height: int, width: int, scale: float, ratio: int, aligned: bool
) -> None:
    rng = np.random.default_rng(height * width)
    features = rng.standard_normal((2, 3, height, width)).astype(np.float32)
    frame = np.array([width / scale, height / scale])
    xy = rng.uniform(-5, 1.1 * frame, (12, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.1, 60, (12, 2))], axis=1)
    edges = [[0, 0, *frame], [*(frame - 20), *frame]]  # the whole map; over its far corner
    rois = np.concatenate(
        [np.concatenate([rng.integers(0, 2, (12, 1)), boxes], axis=1), [[0, *e] for e in edges]]
    ).astype(np.float32)
    got = roi_align_reference(
        torch.from_numpy(features), torch.from_numpy(rois), scale, 7, 7, ratio, aligned
    )
    want = _onnx_roi_align(features, rois, scale, ratio, aligned)
    assert got.shape == (14, 3, 7, 7)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-5)
