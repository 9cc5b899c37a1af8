"""One capture clock for a stream's audio and video: RTP timestamps to sender capture time.

Each track's RTP timestamps run on their own clock (48 kHz audio, 90 kHz video) from a random
origin. RTCP Sender Reports pair an RTP timestamp with the sender's NTP wall clock, which puts
both tracks on one timeline (Unix seconds at the camera/microphone). Until a track's first
report arrives, its media is mapped by arrival time instead: network jitter only ever delays a
packet, so the least-delayed recent packet gives the best offset.

Timeline policy (`CaptureClock`): capture times never run backwards. A mapping correction that
moves times later is applied at once (the rings record a gap); one that moves them earlier is
slewed out at `max_slew` seconds per media second, so frames stay in order and nothing already
cut is rewritten. Pure logic: no asyncio, no I/O.
"""

from __future__ import annotations

from collections import deque

_RTP_MODULO = 1 << 32


def skew(audio_time: float, video_time: float) -> float:
    """Signed A/V skew in seconds: positive when audio is ahead of video on the capture clock."""
    return audio_time - video_time


class RtpUnwrapper:
    """Extends 32-bit RTP timestamps to an unbounded count (steps are taken as < 2**31)."""

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, timestamp: int) -> int:
        """The extended value of `timestamp`, nearest to the previous one."""
        if self._last is None:
            self._last = timestamp % _RTP_MODULO
            return self._last
        step = (timestamp - self._last) % _RTP_MODULO
        if step >= _RTP_MODULO // 2:
            step -= _RTP_MODULO  # a step backwards (reordering), not a wrap forwards
        self._last += step
        return self._last


class SlidingMin:
    """Minimum of the last `size` values, O(1) amortised per push (monotonic deque)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self._size = size
        self._count = 0
        self._deque: deque[tuple[int, float]] = deque()

    def push(self, value: float) -> float:
        """Add `value`; returns the minimum of the window."""
        while self._deque and self._deque[-1][1] >= value:
            self._deque.pop()
        self._deque.append((self._count, value))
        self._count += 1
        if self._deque[0][0] <= self._count - 1 - self._size:
            self._deque.popleft()
        return self._deque[0][1]

    @property
    def min(self) -> float | None:
        """Current minimum, None before the first push."""
        return self._deque[0][1] if self._deque else None


class CaptureClock:
    """Maps one track's RTP timestamps to the sender's capture clock (Unix seconds).

    `capture = media + offset`, where `media` is the unwrapped RTP time since the first timestamp
    seen. Before a Sender Report, `offset` is the minimum of `arrival - media` over the last
    `smoothing_window` packets (jitter only delays; the window lets it follow receiver/sender
    clock drift). After one, it is the report's NTP time minus its media time, refined by each
    later report. See the module docstring for how corrections are applied.
    """

    def __init__(
        self,
        clock_rate: int,
        *,
        smoothing_window: int = 64,
        max_slew: float = 0.1,
        max_sender_offset_s: float = 3600.0,
    ) -> None:
        if clock_rate < 1 or not 0 < max_slew < 1:
            raise ValueError("clock_rate must be positive and max_slew in (0, 1)")
        self.clock_rate = clock_rate
        self.max_slew = max_slew
        self.max_sender_offset_s = max_sender_offset_s
        self.synced = False
        self.sender_reports = 0
        self.ignored_reports = 0
        self.last_report_arrival: float | None = None
        self._unwrapper = RtpUnwrapper()
        self._base: int | None = None  # extended timestamp at media time 0
        self._arrival_offsets = SlidingMin(smoothing_window)
        self._lags = SlidingMin(smoothing_window)
        self._target: float | None = None  # offset the mapping converges to
        self._correction = 0.0  # extra offset still to slew out (>= 0)
        self._correction_from = 0.0  # media time the slew started
        self._last_media: float | None = None

    def capture_time(self, rtp_timestamp: int, arrival: float) -> float:
        """Capture time of the media with `rtp_timestamp`, received at local time `arrival`."""
        media = self._media(rtp_timestamp)
        if not self.synced:
            target = self._arrival_offsets.push(arrival - media)
            if target != self._target:
                self._retarget(target)
        captured = media + self._offset_at(media)
        if self._last_media is None or media > self._last_media:
            self._last_media = media
        self._lags.push(arrival - captured)
        return captured

    def on_sender_report(self, ntp_unix: float, rtp_timestamp: int, arrival: float) -> None:
        """Apply an RTCP Sender Report: `rtp_timestamp` was sampled at sender time `ntp_unix`.

        A report more than `max_sender_offset_s` away from its arrival time is ignored (counted
        in `ignored_reports`): aiortc sends NTP time 0 (read as 2036) before its first packet,
        and a sender clock that far off would throw every window out of place.
        """
        if not abs(ntp_unix - arrival) <= self.max_sender_offset_s:
            self.ignored_reports += 1
            return
        self._retarget(ntp_unix - self._media(rtp_timestamp))
        self.synced = True
        self.sender_reports += 1
        self.last_report_arrival = arrival

    @property
    def lag(self) -> float | None:
        """Smallest recent `arrival - capture time`: network delay plus sender/receiver offset."""
        return self._lags.min

    @property
    def correction_s(self) -> float:
        """Backward correction not yet slewed out at the newest media time (seconds)."""
        if self._last_media is None or self._target is None:
            return 0.0
        return self._offset_at(self._last_media) - self._target

    def capture_now(self, local_now: float) -> float:
        """The capture-clock time of the freshest media that could have arrived by `local_now`."""
        lag = self.lag
        return local_now if lag is None else local_now - lag

    def _media(self, rtp_timestamp: int) -> float:
        extended = self._unwrapper.unwrap(rtp_timestamp)
        if self._base is None:
            self._base = extended
        return (extended - self._base) / self.clock_rate

    def _offset_at(self, media: float) -> float:
        assert self._target is not None
        slewed = self.max_slew * max(0.0, media - self._correction_from)
        return self._target + max(0.0, self._correction - slewed)

    def _retarget(self, target: float) -> None:
        """Move to a new offset: at once if it is later, slewed from the newest media if earlier."""
        reference = self._last_media
        if self._target is None or reference is None:
            self._target, self._correction = target, 0.0
            return
        current = self._offset_at(reference)
        self._target = target
        self._correction = max(0.0, current - target)
        self._correction_from = reference


def stream_now(local_now: float, *clocks: CaptureClock) -> float:
    """A stream's capture-clock "now" from its tracks' clocks (the most delayed track wins).

    Window cutting uses it to decide when a modality is late: taking the largest lag means a
    track that is always slower (e.g. video encoding) is not reported late for being itself.
    """
    lags = [lag for clock in clocks if (lag := clock.lag) is not None]
    return local_now - max(lags) if lags else local_now
