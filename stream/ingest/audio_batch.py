"""Decoded audio frames → mono float32 at an engine rate, converted in batches.

WebRTC audio arrives as 20 ms frames (50 a second per stream). Resampling each one on arrival
was the largest cost ingest added to aiortc's own work: most of a PyAV resampler call is
per-call overhead, not arithmetic. Nothing reads the audio rings between window cuts, so frames
are held here as they arrive (a view of the decoded samples, no conversion) and converted in one
resampler call just before the cutters look at the rings: a few calls a second instead of fifty,
with the same output and no added latency.

A batch is one contiguous run of one format: a frame that does not continue the run (a gap, a
repeat, a format change) closes it, so each run is placed in the ring at its own capture time and
the ring keeps accounting for gaps and overlaps as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# Frames whose capture times are this close to contiguous are one run (the ring's own
# tolerance for timestamp jitter).
CONTIGUITY_TOLERANCE_S = 0.0015


@dataclass
class _Run:
    fmt: str
    layout: str
    rate: int
    t_first: float
    chunks: list[npt.NDArray[Any]] = field(default_factory=list)
    samples: int = 0

    def continues(self, frame: av.AudioFrame, t: float) -> bool:
        return (
            frame.format.name == self.fmt
            and frame.layout.name == self.layout
            and int(frame.sample_rate) == self.rate
            and abs(t - (self.t_first + self.samples / self.rate)) <= CONTIGUITY_TOLERANCE_S
        )


class AudioBatcher:
    """Holds one stream's decoded frames until `flush`, then converts them to mono `rate`."""

    def __init__(self, rate: int, max_held_s: float = 0.5) -> None:
        self.rate = rate
        self.max_held_s = max_held_s
        self._runs: list[_Run] = []
        self._resampler: av.AudioResampler | None = None
        self._resampler_input: tuple[str, str, int] | None = None

    @property
    def held_s(self) -> float:
        """Seconds of audio waiting for conversion."""
        return sum(run.samples / run.rate for run in self._runs)

    def add(self, frame: av.AudioFrame, t: float) -> bool:
        """Hold `frame`, captured at `t`. True when enough is held that it should be flushed."""
        run = self._runs[-1] if self._runs else None
        if run is None or not run.continues(frame, t):
            run = _Run(frame.format.name, frame.layout.name, int(frame.sample_rate), t)
            self._runs.append(run)
        run.chunks.append(frame.to_ndarray())
        run.samples += frame.samples
        return self.held_s >= self.max_held_s

    def flush(self) -> list[tuple[F32, float]]:
        """Convert everything held: `(mono samples at rate, capture time of the run's start)`."""
        out = []
        for run in self._runs:
            samples = self._convert(run)
            if len(samples):
                out.append((samples, run.t_first))
        self._runs.clear()
        return out

    def _convert(self, run: _Run) -> F32:
        data = run.chunks[0] if len(run.chunks) == 1 else np.concatenate(run.chunks, axis=1)
        frame = av.AudioFrame.from_ndarray(data, format=run.fmt, layout=run.layout)
        frame.sample_rate = run.rate
        key = (run.fmt, run.layout, run.rate)
        if self._resampler is None or self._resampler_input != key:
            # A new input format needs a new graph; the old one's last millisecond is lost.
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
            self._resampler_input = key
        chunks = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, np.float32)
        mono = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        return mono.astype(np.float32, copy=False)
