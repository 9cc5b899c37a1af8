"""Weight averaging of fine-tunes of one release (`scenestream average`).

Two models fine-tuned from the same checkpoint sit in one basin of the loss, so the mean of
their weights is a model too, often better away from the training distribution than either
(weight-space ensembles: "WiSE-FT", "model soups"). It costs nothing at inference: one network,
the same shapes. Batch-norm running statistics are averaged like the weights; integer buffers
(batch counters) are taken from the first model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def average_states(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """The weighted mean (equal weights by default) of state dicts with the same keys and
    shapes; a ValueError that names the first difference otherwise."""
    if len(states) < 2:
        raise ValueError("averaging needs at least two models")
    w = [1.0] * len(states) if weights is None else [float(x) for x in weights]
    if len(w) != len(states) or any(x <= 0 for x in w):
        raise ValueError(f"one positive weight per model, got {list(w)} for {len(states)}")
    total = sum(w)
    first = states[0]
    for i, state in enumerate(states[1:], start=2):
        if state.keys() != first.keys():
            missing = sorted(set(first) ^ set(state))[:3]
            raise ValueError(f"model {i} has other parameters ({missing} ...)")
        for key, value in state.items():
            if value.shape != first[key].shape:
                raise ValueError(
                    f"model {i}: {key} is {tuple(value.shape)}, not {tuple(first[key].shape)}"
                )
    out: dict[str, torch.Tensor] = {}
    for key, value in first.items():
        if value.is_floating_point():
            parts = [s[key] * (x / total) for x, s in zip(w, states, strict=True)]
            out[key] = torch.stack(parts).sum(dim=0)
        else:
            out[key] = value.clone()
    return out
