"""The interface the service uses to run an engine on windows.

An `EngineRuntime` is a loaded, warmed engine (manifest + backend + per-stream state). The
scheduler calls `infer` from the engine's own executor thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from engines.detect.decode import Detection
from engines.window import Window, WindowSpec


class EngineError(Exception):
    """An engine failed; the windows of that call are counted as `error`."""


class InputShapeError(EngineError):
    """Inputs do not match the manifest (wrong shape or dtype)."""


class ManifestError(Exception):
    """An engine manifest is invalid; the message names the file and the field."""


class Scores(dict[str, float]):
    """One window's scores per label; a detector's also carry the frame's detections (boxes),
    so that consumers of plain scores are unaffected."""

    __slots__ = ("detections",)

    def __init__(self, scores: Mapping[str, float], detections: Iterable[Detection] = ()) -> None:
        super().__init__(scores)
        self.detections: tuple[Detection, ...] = tuple(detections)


def detections_of(scores: Mapping[str, float]) -> tuple[Detection, ...] | None:
    """The detections carried by a window's scores, or None for an engine without boxes."""
    return scores.detections if isinstance(scores, Scores) else None


class EngineRuntime(Protocol):
    """A loaded engine, ready to run windows of many streams in one batch."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def spec(self) -> WindowSpec: ...

    @property
    def batch_sizes(self) -> tuple[int, ...]: ...

    @property
    def budget_s(self) -> float: ...

    @property
    def max_queue_delay_s(self) -> float: ...

    @property
    def backend_name(self) -> str: ...

    def infer(self, windows: Sequence[Window]) -> list[dict[str, float]]:
        """Scores per label for each window, in order. Blocking: call from an executor."""
        ...

    def release(self, stream: str) -> None:
        """Forget per-stream state (stateful engines) when a stream ends."""
        ...
