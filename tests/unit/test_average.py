"""Weight averaging of fine-tunes of one release."""

from __future__ import annotations

import pytest
import torch

from engines.lab.training.average import average_states
from engines.runtime.nets.avfusion import AVFusion, AVFusionConfig

pytestmark = pytest.mark.unit


def test_the_mean_of_two_models_is_the_mean_of_every_float_tensor() -> None:
    torch.manual_seed(0)
    a, b = AVFusion().state_dict(), AVFusion().state_dict()
    for key in a:  # different batch counters: the first model's is kept
        if not a[key].is_floating_point():
            b[key] = a[key] + 7
    mean = average_states([a, b])
    weighted = average_states([a, b], [3.0, 1.0])
    for key, value in a.items():
        if value.is_floating_point():
            assert torch.allclose(mean[key], (value + b[key]) / 2), key
            assert torch.allclose(weighted[key], 0.75 * value + 0.25 * b[key]), key
        else:
            assert torch.equal(mean[key], value), key
    assert set(mean) == set(a)


def test_models_of_other_shapes_or_bad_weights_are_refused() -> None:
    a = AVFusion().state_dict()
    with pytest.raises(ValueError, match="at least two"):
        average_states([a])
    with pytest.raises(ValueError, match="is \\("):
        average_states([a, AVFusion(AVFusionConfig(video_width=64)).state_dict()])
    with pytest.raises(ValueError, match="one positive weight per model"):
        average_states([a, a], [1.0, 0.0])
    with pytest.raises(ValueError, match="one positive weight per model"):
        average_states([a, a], [1.0])
