"""The NMS operator registered for torchvision's detection models where its compiled ops do not
load (`engines/runtime/nets/tv_detection.py`) keeps exactly what scenestream's own NMS keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.detect.nms import nms
from engines.runtime.nets.tv_detection import nms_reference

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
