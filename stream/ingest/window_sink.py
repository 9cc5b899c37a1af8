"""Where ingest hands the windows it cuts: the `WindowSink` interface (the scheduler implements
it), and the sink of an ingest-only service (`Service(settings, window_sink=...)`: no engines,
windows only counted) used by the load benchmark's `--no-engine` trials and the ingest tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from engines.window import AudioSpec, VideoSpec, Window, WindowSpec


class WindowSink(Protocol):
    """Where cut windows go (the scheduler). Both calls must return at once, never block."""

    def submit(self, window: Window) -> None: ...

    def stream_ended(self, stream: str) -> None:
        """The stream is gone: release its per-stream state and close its open events."""
        ...


# What a typical engine asks for: 1 s windows every 0.5 s, 8 frames of 224x224, 16 kHz audio.
INGEST_ONLY_SPECS: dict[str, WindowSpec] = {
    "ingest": WindowSpec(
        length_s=1.0,
        hop_s=0.5,
        video=VideoSpec(frames=8, fps=8.0, height=224, width=224),
        audio=AudioSpec(sample_rate=16_000, samples=16_000),
    )
}


@dataclass
class CountingWindowSink:
    """A `WindowSink` that keeps only counts (no engine attached); optionally the last windows."""

    keep: int = 0
    submitted: dict[str, int] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)

    def submit(self, window: Window) -> None:
        self.submitted[window.stream] = self.submitted.get(window.stream, 0) + 1
        if self.keep:
            self.windows.append(window)
            del self.windows[: -self.keep]

    def stream_ended(self, stream: str) -> None:
        self.ended.append(stream)
