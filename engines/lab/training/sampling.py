"""Which training windows a batch draws, and how often: pure functions over a set's kinds and
labels (no torch), so the trainer only multiplies probabilities.

- `kind_weights`: rare scene kinds (distractors) are drawn more often than generated.
- `shortcut_weights`: breaks label co-occurrences the generator makes but the label meanings do
  not. In the generated training set an `approaching_object` was on in 48 % of the windows with
  `flashing_lights` and in 6 % of the others (emergency vehicles mostly drive at the camera), and
  the model learned "lights, so approaching": on the independent generator 40 % of the
  lights-only and 31 % of the emergency-vehicle windows fired `approaching_object` without
  anything approaching. Drawing the cue-on/target-off windows more often brings the target's odds
  given the cue toward its odds without it, so only growth can tell.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

Shortcut = tuple[str, tuple[str, ...], tuple[str, ...]]
"""(target, cues, unless): windows with any cue on, the target off and no `unless` label on are
drawn more often."""

# Flashing lights only: after kind balancing an approach is 8x as likely with them as without
# (these weights bring that to about 3x); with a siren it is about as likely as without.
# Emergency vehicles stay as drawn: boosting every lights-and-no-approach window (their
# non-approaching emergency vehicles too) made the model call emergency vehicles more eagerly
# (held-out distractor false positives 0.8 -> 1.4 %).
SHORTCUTS: tuple[Shortcut, ...] = (
    ("approaching_object", ("flashing_lights",), ("emergency_vehicle",)),
)
SHORTCUT_MAX_WEIGHT = 4.0  # at most this many times as often as before


def kind_weights(kinds: list[str], balance: float) -> Array:
    """Per-window sampling probabilities: a kind with c windows gets weight c^(1-balance)
    in total (0 = as generated, 1 = every kind equally often)."""
    _, inverse, counts = np.unique(np.asarray(kinds), return_inverse=True, return_counts=True)
    w = counts[inverse].astype(np.float64) ** -balance
    return np.asarray(w / w.sum())


def shortcut_weights(
    probabilities: Array,
    labels: npt.NDArray[np.floating],
    care: npt.NDArray[np.floating],
    names: tuple[str, ...],
    shortcuts: tuple[Shortcut, ...] = SHORTCUTS,
    max_weight: float = SHORTCUT_MAX_WEIGHT,
) -> Array:
    """`probabilities` with each shortcut's cue-on/target-off windows (none of its `unless`
    labels on) up-weighted so that, under the returned distribution, the target's odds given a
    cue match its odds without one (the weight capped at `max_weight`; never below 1: a cue that
    already predicts absence is left)."""
    p = np.asarray(probabilities, np.float64).copy()
    for target, cues, unless in shortcuts:
        t = names.index(target)
        known = care[:, t] > 0.5
        on = labels[:, t] > 0.5
        cue = np.zeros(len(p), bool)
        for c in cues:
            cue |= labels[:, names.index(c)] > 0.5
        with_cue = known & cue
        without = known & ~cue
        odds_without = p[without & on].sum() / max(p[without & ~on].sum(), 1e-12)
        odds_with = p[with_cue & on].sum() / max(p[with_cue & ~on].sum(), 1e-12)
        if odds_without <= 0 or odds_with <= odds_without:
            continue
        spared = np.zeros(len(p), bool)
        for u in unless:
            spared |= labels[:, names.index(u)] > 0.5
        p[with_cue & ~on & ~spared] *= min(odds_with / odds_without, max_weight)
    return np.asarray(p / p.sum())
