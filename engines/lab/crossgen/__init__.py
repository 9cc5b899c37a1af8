"""An independent scene generator for evaluating engines on data their training never drew
from: its own synthesis, parameter families and label rules, written from the label definitions
in the model card (a label is on for a window when it covers at least half of the window's last
0.3 s). It shares nothing with `engines/lab/scenes` but the label names and the window contract.
"""

from .dataset import CrossSet, build_cross_set, fingerprint, make_scene, windows
from .scenes import DISTRACTOR_KINDS, KINDS, STREAM_EDGE_KINDS

__all__ = [
    "DISTRACTOR_KINDS",
    "KINDS",
    "STREAM_EDGE_KINDS",
    "CrossSet",
    "build_cross_set",
    "fingerprint",
    "make_scene",
    "windows",
]
