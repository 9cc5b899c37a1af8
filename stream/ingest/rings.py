"""Per-stream media rings on the capture clock: fixed memory, drop-oldest, every drop counted.

Pure numpy, no I/O, no locks: a ring is owned by one thread (the event loop). Both rings are
preallocated at construction, so a push never allocates and memory per stream is fixed.
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt


class BufferPolicy(enum.Enum):
    """What a full ring does with a new item."""

    DROP_OLDEST = "drop_oldest"
    """Overwrite the oldest item. Live analysis wants the newest media: an old frame nobody has
    cut yet is worth less than a fresh one, and never blocking the reader keeps latency flat.
    The cost is that a lagging consumer loses history (counted, never silent)."""


class VideoRing:
    """Fixed slots of `[H, W, 3]` uint8 frames with their capture times; drop-oldest, counted.

    Frames must arrive in capture order: a frame not after the newest one is rejected
    (`rejected`). When full, the oldest frame is overwritten; `overwritten` counts the evicted
    frames that no `select` ever returned (media lost to a lagging cutter), `evicted` all of them.
    """

    policy = BufferPolicy.DROP_OLDEST

    def __init__(self, capacity: int, height: int, width: int) -> None:
        if capacity < 1 or height < 1 or width < 1:
            raise ValueError("capacity, height and width must be positive")
        self.capacity = capacity
        self.height = height
        self.width = width
        self._frames = np.zeros((capacity, height, width, 3), np.uint8)
        self._times = np.zeros(capacity, np.float64)
        self._used = np.zeros(capacity, np.bool_)
        self._head = 0  # slot the next push writes
        self._count = 0
        self._seen: float | None = None
        self.overwritten = 0
        self.evicted = 0
        self.rejected = 0

    def __len__(self) -> int:
        return self._count

    @property
    def newest_time(self) -> float | None:
        """Capture time of the newest kept frame."""
        return float(self._times[(self._head - 1) % self.capacity]) if self._count else None

    @property
    def oldest_time(self) -> float | None:
        """Capture time of the oldest kept frame."""
        return (
            float(self._times[(self._head - self._count) % self.capacity]) if self._count else None
        )

    @property
    def seen_time(self) -> float | None:
        """How far the video has been received: the newest pushed or `mark_seen` time."""
        newest = self.newest_time
        if self._seen is None or (newest is not None and newest > self._seen):
            return newest
        return self._seen

    def push(self, frame: npt.NDArray[np.uint8], t: float) -> None:
        """Copy `frame` (shape `(H, W, 3)`) captured at `t` into the next slot."""
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"frame shape {frame.shape} != ring shape {(self.height, self.width, 3)}"
            )
        newest = self.newest_time
        if newest is not None and not t > newest:
            self.rejected += 1  # out of order or duplicate: the timeline only moves forward
            return
        slot = self._head
        if self._count == self.capacity:
            self.evicted += 1
            if not self._used[slot]:
                self.overwritten += 1
        else:
            self._count += 1
        self._frames[slot] = frame
        self._times[slot] = t
        self._used[slot] = False
        self._head = (slot + 1) % self.capacity

    def mark_seen(self, t: float) -> None:
        """Record that a frame captured at `t` was received but not stored (sampled out).

        Window cutting waits until the video has reached a window's end; a stream whose frames
        are thinned before the ring still reaches it through this call.
        """
        if self._seen is None or t > self._seen:
            self._seen = t

    def capture_times(self) -> npt.NDArray[np.float64]:
        """Capture times of the kept frames, oldest first (a copy)."""
        return self._times[self._order()]

    def select(
        self,
        times: npt.NDArray[np.float64],
        out: npt.NDArray[np.uint8] | None = None,
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
        """For each wanted time, the newest frame captured at or before it (else the oldest kept).

        Returns `([T, H, W, 3] copy, [T] capture times of the chosen frames)`; `out`, if given,
        receives the frames instead of a new array. Raises `LookupError` if the ring is empty.
        """
        if not self._count:
            raise LookupError("video ring is empty")
        order = self._order()
        pos = np.searchsorted(self._times[order], times, side="right") - 1
        slots = order[np.maximum(pos, 0)]
        self._used[slots] = True
        frames = np.take(self._frames, slots, axis=0, out=out)
        return frames, self._times[slots]

    def _order(self) -> npt.NDArray[np.intp]:
        """Slot indices of the kept frames, oldest first."""
        start = self._head - self._count
        return np.arange(start, self._head, dtype=np.intp) % self.capacity


class AudioRing:
    """Mono float32 samples on the capture timeline, in a preallocated circular buffer.

    Sample `i` of the timeline sits at `origin + i / sample_rate`, fixed by the first push, so
    a missing stretch is zeros plus a gap, never a shift of what follows. A push within
    `jitter_tolerance_s` of the current end is written contiguously (timestamp jitter absorbed);
    further ahead is a gap (zeros written, `gap_seconds_total`); further back overwrites what is
    kept (`overwritten_samples`) and drops what is older than the ring (`dropped_samples`).
    """

    policy = BufferPolicy.DROP_OLDEST

    def __init__(
        self, sample_rate: int, capacity_s: float, *, jitter_tolerance_s: float = 0.0015
    ) -> None:
        capacity = round(sample_rate * capacity_s)
        if sample_rate < 1 or capacity < 1:
            raise ValueError("sample_rate and capacity_s must be positive")
        self.sample_rate = sample_rate
        self.capacity = capacity
        self._tolerance = max(1.0, jitter_tolerance_s * sample_rate)  # in samples
        self._buf = np.zeros(capacity, np.float32)
        self._valid = np.zeros(capacity, np.bool_)  # False: never received (gap)
        self._origin: float | None = None  # capture time of timeline sample 0
        self._begin = 0  # first timeline index ever written
        self._end = 0  # one past the newest timeline index
        self.gap_seconds_total = 0.0
        self.gaps = 0
        self.overwritten_samples = 0
        self.dropped_samples = 0

    @property
    def start_time(self) -> float | None:
        """Capture time of the oldest kept sample."""
        if self._origin is None:
            return None
        return self._origin + self._kept_start() / self.sample_rate

    @property
    def end_time(self) -> float | None:
        """Capture time one past the newest sample."""
        if self._origin is None:
            return None
        return self._origin + self._end / self.sample_rate

    def push(self, samples: npt.NDArray[np.float32], t_first: float) -> None:
        """Place `samples` (1-D float32) whose first sample was captured at `t_first`."""
        if samples.ndim != 1:
            raise ValueError(f"audio must be 1-D mono, got shape {samples.shape}")
        n = samples.shape[0]
        if n == 0:
            return
        if self._origin is None:
            self._origin = t_first
            self._write(0, samples)
            self._begin, self._end = 0, n
            return
        offset = (t_first - self._origin) * self.sample_rate - self._end
        # Within the tolerance it is timestamp jitter: keep the stream contiguous.
        index = self._end + (0 if abs(offset) <= self._tolerance else round(offset))
        if index > self._end:
            self._fill_gap(index)
        elif index < self._end:
            index, samples = self._trim_old(index, samples)
            self.overwritten_samples += max(0, min(self._end, index + len(samples)) - index)
        if len(samples):
            self._write(index, samples)
            self._begin = min(self._begin, index)
            self._end = max(self._end, index + len(samples))

    def read(
        self, start: float, samples: int
    ) -> tuple[npt.NDArray[np.float32], list[tuple[float, float]]]:
        """Samples of `[start, start + samples / sample_rate)` and the gaps in that range.

        Parts never received or no longer kept are zeros and reported as capture-clock
        `(start, end)` gaps.
        """
        out = np.zeros(samples, np.float32)
        if self._origin is None:
            return out, ([(start, start + samples / self.sample_rate)] if samples else [])
        first = round((start - self._origin) * self.sample_rate)
        lo = max(first, self._kept_start())
        hi = min(first + samples, self._end)
        valid = np.zeros(samples, np.bool_)
        if hi > lo:
            self._copy_out(lo, hi, out[lo - first : hi - first], valid[lo - first : hi - first])
        if valid.all():
            return out, []
        return out, self._gap_spans(valid, first)

    def _kept_start(self) -> int:
        return max(self._begin, self._end - self.capacity)

    def _fill_gap(self, index: int) -> None:
        """Zeros (flagged invalid) from the current end up to `index`."""
        length = index - self._end
        self.gaps += 1
        self.gap_seconds_total += length / self.sample_rate
        kept = min(length, self.capacity)  # older zeros would be overwritten at once
        self._write(index - kept, np.zeros(kept, np.float32), valid=False)
        self._end = index

    def _trim_old(
        self, index: int, samples: npt.NDArray[np.float32]
    ) -> tuple[int, npt.NDArray[np.float32]]:
        """Drop the head of a late push that is older than what the ring keeps."""
        oldest = self._end - self.capacity
        if index >= oldest:
            return index, samples
        cut = min(oldest - index, len(samples))
        self.dropped_samples += cut
        return index + cut, samples[cut:]

    def _write(self, index: int, data: npt.NDArray[np.float32], valid: bool = True) -> None:
        """Write `data` at timeline `index`, wrapping around the buffer (keeps the tail)."""
        if len(data) > self.capacity:
            index += len(data) - self.capacity
            data = data[-self.capacity :]
        pos = index % self.capacity
        first = min(len(data), self.capacity - pos)
        self._buf[pos : pos + first] = data[:first]
        self._valid[pos : pos + first] = valid
        rest = len(data) - first
        if rest:
            self._buf[:rest] = data[first:]
            self._valid[:rest] = valid

    def _copy_out(
        self,
        lo: int,
        hi: int,
        out: npt.NDArray[np.float32],
        valid: npt.NDArray[np.bool_],
    ) -> None:
        """Copy timeline `[lo, hi)` (kept) into `out` and its received-flags into `valid`."""
        pos = lo % self.capacity
        first = min(hi - lo, self.capacity - pos)
        out[:first] = self._buf[pos : pos + first]
        valid[:first] = self._valid[pos : pos + first]
        if first < hi - lo:
            out[first:] = self._buf[: hi - lo - first]
            valid[first:] = self._valid[: hi - lo - first]

    def _gap_spans(self, valid: npt.NDArray[np.bool_], first: int) -> list[tuple[float, float]]:
        """Capture-clock spans of the runs of False in `valid` (timeline index `first` onward)."""
        assert self._origin is not None
        edges = np.diff(np.concatenate(([1], valid.view(np.int8), [1])))
        starts = np.flatnonzero(edges == -1)
        ends = np.flatnonzero(edges == 1)
        t0, sr = self._origin, self.sample_rate
        return [
            (t0 + (first + a) / sr, t0 + (first + b) / sr)
            for a, b in zip(starts, ends, strict=True)
        ]
