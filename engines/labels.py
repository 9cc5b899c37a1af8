"""The label vocabulary of scenestream's scene labels, shared by the bundled `avfusion` network,
the scene generator, the evaluation and the label maps of imported models.
"""

from __future__ import annotations

AUDIO_LABELS = ("speech", "siren", "horn", "alarm")
VIDEO_LABELS = ("flashing_lights", "approaching_object")
# Fused labels need both modalities: a siren while emergency lights flash in view; an impact
# sound at the instant an approaching object stops.
FUSED_LABELS = ("emergency_vehicle", "collision")
LABELS = AUDIO_LABELS + VIDEO_LABELS + FUSED_LABELS
