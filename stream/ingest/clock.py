"""One capture clock for a stream's audio and video: RTP timestamps to sender capture time.

Each track's RTP timestamps run on their own clock (48 kHz audio, 90 kHz video) from a random
origin. RTCP Sender Reports pair an RTP timestamp with the sender's NTP clock, which puts both
tracks on one timeline. That clock is used as wall-clock (Unix seconds at the camera) only while
it agrees with arrival times; some senders' does not (the RTP
timestamps in GStreamer 1.22 webrtcbin's reports ran ahead of its media's at about twice real
time: 1 s ahead after 1 s, 8.4 s after 8 s, differently per track), and then it only relates a
track's media to its own arrival (and to the other track's, while they agree). Until a track's
first report arrives, its media is mapped by arrival time: network jitter only ever delays a
packet, so the least-delayed recent packet gives the best offset. Capture times are never later
than arrival, so capture-to-publish latency is never negative.

Timeline policy (`CaptureClock`): capture times never run backwards. A mapping correction that
moves times later is applied at once (the rings record a gap); one that moves them earlier is
slewed out at `max_slew` seconds per media second, so frames stay in order and nothing already
cut is rewritten. Pure logic: no asyncio, no I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

_RTP_MODULO = 1 << 32


def skew(audio_time: float, video_time: float) -> float:
    """Signed A/V skew in seconds: positive when audio is ahead of video on the capture clock."""
    return audio_time - video_time


class RtpUnwrapper:
    """Extends 32-bit RTP timestamps to an unbounded count (steps are taken as < 2**31)."""

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, timestamp: int, *, track: bool = True) -> int:
        """The extended value of `timestamp`, nearest to the previous one.

        With `track=False` the timestamp is not taken as the new reference: a Sender Report's,
        which may lie far from the media's (GStreamer's ran seconds ahead), must not move it.
        """
        if self._last is None:
            self._last = timestamp % _RTP_MODULO
            return self._last
        step = (timestamp - self._last) % _RTP_MODULO
        if step >= _RTP_MODULO // 2:
            step -= _RTP_MODULO  # a step backwards (reordering), not a wrap forwards
        if not track:
            return self._last + step
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


ClockKind = Literal["sender", "relative", "arrival"]
CLOCK_KINDS: tuple[ClockKind, ...] = ("sender", "relative", "arrival")
# A sender's clock may run this far ahead of ours and still count as wall-clock (NTP-synced hosts
# differ by milliseconds; Sender Reports round); capture times are clamped to arrival anyway.
SENDER_AHEAD_TOLERANCE_S = 0.05


TRACKS_AGREE_S = 0.1


class ClockAnchor:
    """Anchors a stream's relative sender clocks on arrival, together while they agree.

    Each track reports the least recent `arrival - sender time` of its own packets. While the
    tracks' values lie within `agree_s` of each other, all tracks use the smallest: one sender
    timeline keeps audio and video aligned, placed as late as the earliest arrival allows (jitter
    only delays). When they disagree (GStreamer 1.22's audio and video Sender Reports drifted
    apart by 0.4 to 4 s), each track is anchored on its own arrival instead.
    """

    def __init__(self, agree_s: float = TRACKS_AGREE_S) -> None:
        self.agree_s = agree_s
        self._mins: dict[int, float] = {}

    def anchor(self, track: int, own_min: float) -> float:
        """The anchor for `track`, given its own least `arrival - sender time`."""
        self._mins[track] = own_min
        low, high = min(self._mins.values()), max(self._mins.values())
        return low if high - low <= self.agree_s else own_min

    def forget(self, track: int) -> None:
        self._mins.pop(track, None)


class CaptureClock:
    """Maps one track's RTP timestamps to capture time on our wall clock (Unix seconds).

    `capture = media + offset`, where `media` is the unwrapped RTP time since the first timestamp
    seen. Three ways to choose `offset` (`kind`):

    - `arrival`, before any Sender Report: the minimum of `arrival - media` over the last
      `smoothing_window` packets (jitter only delays; the window follows clock drift);
    - `sender`, once a report's NTP time agrees with arrival: the report's NTP time minus its
      media time, refined by each later report. "Agrees" means the least recent delay from the
      sender's clock to our arrival time lies in [-SENDER_AHEAD_TOLERANCE_S,
      `trust_offset_s`]: a browser's NTP-synced clock does, GStreamer's pipeline clock does not;
    - `relative`, when it does not: the sender clock still relates this track to the stream's
      other tracks, anchored on arrival by the stream's `ClockAnchor` (min-filtered).

    A capture time is never later than the arrival of its media. See the module docstring for
    how corrections are applied.
    """

    def __init__(
        self,
        clock_rate: int,
        *,
        smoothing_window: int = 64,
        max_slew: float = 0.1,
        max_sender_offset_s: float = 3600.0,
        trust_offset_s: float = 1.0,
        anchor: ClockAnchor | None = None,
    ) -> None:
        if clock_rate < 1 or not 0 < max_slew < 1 or trust_offset_s <= 0:
            raise ValueError("clock_rate and trust_offset_s must be positive, max_slew in (0, 1)")
        self.clock_rate = clock_rate
        self.max_slew = max_slew
        self.max_sender_offset_s = max_sender_offset_s
        self.trust_offset_s = trust_offset_s
        self.kind: ClockKind = "arrival"
        self.synced = False  # a Sender Report was applied (sender or relative)
        self.sender_reports = 0
        self.ignored_reports = 0
        self.last_report_arrival: float | None = None
        self.sender_delay: float | None = None  # arrival minus sender clock at the last judgement
        self._anchor = anchor if anchor is not None else ClockAnchor()
        self._sender_lags = SlidingMin(smoothing_window)  # arrival - sender time, minus _lag_bias
        self._lag_bias = 0.0  # moves the stored lags when a report moves the sender offset
        self._sender_offset: float | None = None  # sender time = media + this
        self._judge_pending = False
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
        arrival_offset = self._arrival_offsets.push(arrival - media)
        target: float | None = arrival_offset
        if self._sender_offset is not None:
            lag = arrival - media - self._sender_offset
            own = self._sender_lags.push(lag - self._lag_bias) + self._lag_bias
            anchored = self._anchor.anchor(id(self), own)
            if self._judge_pending:
                self._judge(arrival_offset)
            target = self._sender_offset + anchored if self.kind == "relative" else None
        if target is not None and target != self._target:
            self._retarget(target)
        captured = min(media + self._offset_at(media), arrival)
        if self._last_media is None or media > self._last_media:
            self._last_media = media
        self._lags.push(arrival - captured)
        return captured

    def on_sender_report(self, ntp_unix: float, rtp_timestamp: int, arrival: float) -> None:
        """Apply an RTCP Sender Report: `rtp_timestamp` was sampled at sender time `ntp_unix`.

        A report more than `max_sender_offset_s` away from its arrival time is ignored (counted
        in `ignored_reports`): aiortc sends NTP time 0 (read as 2036) before its first packet.
        Whether the sender's clock is wall-clock is judged against arrival times (`kind`).
        """
        if not abs(ntp_unix - arrival) <= self.max_sender_offset_s:
            self.ignored_reports += 1
            return
        offset = ntp_unix - self._media(rtp_timestamp, track=False)
        if self._sender_offset is not None:
            self._lag_bias += self._sender_offset - offset
        self._sender_offset = offset
        self.synced = True
        self.sender_reports += 1
        self.last_report_arrival = arrival
        if self._arrival_offsets.min is None:
            self._judge_pending = True  # judged with the first packet's arrival
        else:
            self._judge(self._arrival_offsets.min)

    def _judge(self, arrival_offset: float) -> None:
        """Sender or relative clock, from the least delay sender clock -> arrival."""
        assert self._sender_offset is not None
        self._judge_pending = False
        delay = arrival_offset - self._sender_offset
        self.sender_delay = delay
        if -SENDER_AHEAD_TOLERANCE_S <= delay <= self.trust_offset_s:
            self.kind = "sender"
            # a clock slightly ahead of ours is moved back by that much: the least-delayed
            # media then maps to its arrival and capture times stay strictly ordered
            self._retarget(self._sender_offset + min(0.0, delay))
        else:
            self.kind = "relative"  # retargeted on the anchor by `capture_time`

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

    def _media(self, rtp_timestamp: int, *, track: bool = True) -> float:
        extended = self._unwrapper.unwrap(rtp_timestamp, track=track)
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


def stream_clock(*clocks: CaptureClock | None) -> ClockKind:
    """A stream's clock kind: `sender` only if every track's is; `relative` if any track's is."""
    kinds = {clock.kind for clock in clocks if clock is not None}
    if kinds == {"sender"}:
        return "sender"
    return "relative" if "relative" in kinds else "arrival"


def stream_now(local_now: float, *clocks: CaptureClock) -> float:
    """A stream's capture-clock "now" from its tracks' clocks (the most delayed track wins).

    Window cutting uses it to decide when a modality is late: taking the largest lag means a
    track that is always slower (e.g. video encoding) is not reported late for being itself.
    """
    lags = [lag for clock in clocks if (lag := clock.lag) is not None]
    return local_now - max(lags) if lags else local_now
