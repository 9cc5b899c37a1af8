"""WindowCutter on a synthetic feed: counts, timing, frame choice, audio content, late and
missing modalities, gaps, skipping ahead, and frame sampling for ingest."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.window import AudioSpec, VideoSpec, Window, WindowSpec
from stream.ingest.cutter import WindowCutter, frame_gaps, merge_spans
from stream.ingest.rings import AudioRing, VideoRing

pytestmark = pytest.mark.unit

T0 = 1_795_929_600.0  # a multiple of every hop used here: window ends are T0 + k * hop
BASE = T0 - 0.05  # the feed's media starts here, so the first end is T0 + length
SR = 16_000
CHUNK = 320  # 20 ms of audio
SIZE = 8
SPEC = WindowSpec(
    length_s=1.0,
    hop_s=0.5,
    video=VideoSpec(frames=8, fps=8.0, height=SIZE, width=SIZE),
    audio=AudioSpec(sample_rate=SR, samples=SR),
)


@dataclass
class Feed:
    """30 fps frames (pixel value = frame index) and 20 ms audio chunks (sample value = its
    index on the timeline), pushed in arrival order with a poll after every push."""

    cutter: WindowCutter
    video: VideoRing | None = None
    audio: AudioRing | None = None
    windows: list[Window] = field(default_factory=list)
    cut_now: list[float] = field(default_factory=list)  # `now` of the poll that cut each
    frame_times: list[float] = field(default_factory=list)
    mono: float = 0.0

    def run(
        self,
        seconds: float,
        *,
        jitter: float = 0.003,
        video_stops: tuple[float, float] | None = None,
        audio_stops: tuple[float, float] | None = None,
        seed: int = 1,
    ) -> None:
        rng = np.random.default_rng(seed)
        events: list[tuple[float, str, int]] = []
        if self.video is not None:
            for i in range(int(seconds * 30)):
                t = BASE + i / 30 + rng.uniform(-jitter, jitter)
                if not _inside(i / 30, video_stops):
                    events.append((t, "v", i))
        if self.audio is not None:
            for k in range(int(seconds * SR) // CHUNK):
                if not _inside(k * CHUNK / SR, audio_stops):
                    events.append((BASE + (k + 1) * CHUNK / SR, "a", k))  # arrives when complete
        for arrival, kind, i in sorted(events):
            if kind == "v":
                assert self.video is not None
                self.video.push(np.full((SIZE, SIZE, 3), i % 256, np.uint8), arrival)
                self.frame_times.append(arrival)
            else:
                assert self.audio is not None
                data = np.arange(i * CHUNK, (i + 1) * CHUNK, dtype=np.float32)
                self.audio.push(data, BASE + i * CHUNK / SR)
            self.poll(arrival)

    def poll(self, now: float) -> list[Window]:
        self.mono += 1.0
        cut = self.cutter.poll(self.video, self.audio, now, self.mono)
        self.windows.extend(cut)
        self.cut_now.extend([now] * len(cut))
        return cut


def _inside(t: float, span: tuple[float, float] | None) -> bool:
    return span is not None and span[0] <= t < span[1]


def make_feed(
    spec: WindowSpec = SPEC, *, video: bool = True, audio: bool = True, max_wait: float = 0.25
) -> Feed:
    cutter = WindowCutter(
        "cam1", "avfusion", spec, max_wait_s=max_wait, has_video=video, has_audio=audio
    )
    return Feed(
        cutter,
        VideoRing(150, SIZE, SIZE) if video else None,
        AudioRing(SR, 4.0) if audio else None,
    )


def expected_frame(frame_times: list[float], wanted: float) -> int:
    """Index of the newest frame at or before `wanted` (frames are indexed in push order)."""
    before = [i for i, t in enumerate(frame_times) if t <= wanted]
    return before[-1] if before else 0


# ---------------------------------------------------------------- the synthetic feed


def test_six_seconds_give_exactly_the_expected_windows() -> None:
    feed = make_feed()
    feed.run(6.0)
    # ends on the 0.5 s grid from first media + 1 s; the 6.0 s end is not reached by video
    assert [round(w.end - T0, 6) for w in feed.windows] == [1.0 + 0.5 * k for k in range(10)]
    assert [w.seq for w in feed.windows] == list(range(10))
    for w in feed.windows:
        assert w.start == pytest.approx(w.end - 1.0)
        assert w.stream == "cam1"
        assert w.engine == "avfusion"
        assert w.missing == frozenset()
        assert w.gaps == ()
    cut_at = [w.cut_at for w in feed.windows]
    assert cut_at == sorted(cut_at)
    assert feed.cutter.skipped == 0


def test_frames_are_the_newest_at_or_before_each_wanted_time() -> None:
    feed = make_feed()
    feed.run(6.0, jitter=0.012)
    for w in feed.windows:
        assert w.video is not None
        assert w.frame_times is not None
        assert w.video.shape == (8, SIZE, SIZE, 3)
        wanted = w.end - np.arange(7, -1, -1) / 8.0
        chosen = [expected_frame(feed.frame_times, t) for t in wanted]
        assert [int(f[0, 0, 0]) for f in w.video] == [c % 256 for c in chosen]
        assert w.frame_times.tolist() == [feed.frame_times[c] for c in chosen]
        assert all(t <= x for t, x in zip(w.frame_times, wanted, strict=True))
        assert np.all(np.diff(w.frame_times) > 0)


def test_audio_is_exactly_the_pushed_samples_ending_at_the_window_end() -> None:
    feed = make_feed()
    feed.run(4.0)
    assert feed.windows
    for w in feed.windows:
        assert w.audio is not None
        first = round((w.end - BASE) * SR) - SR
        assert w.audio.dtype == np.float32
        assert np.array_equal(w.audio, np.arange(first, first + SR, dtype=np.float32))
        assert w.av_skew_s < 0.05  # audio and video arrive together in this feed


def test_a_window_waits_for_the_lagging_modality_then_cuts_what_it_has() -> None:
    feed = make_feed(max_wait=0.25)
    feed.run(3.1, video_stops=(1.8, 10.0))  # video ends near T0 + 1.72, audio at T0 + 3.05
    ends = [round(w.end - T0, 6) for w in feed.windows]
    assert ends == [1.0, 1.5, 2.0, 2.5]  # 2.0 is cut at 2.25 (max wait), 2.5 at 2.75
    assert feed.cut_now[2] - T0 == pytest.approx(2.25, abs=0.021)  # the next audio arrival
    assert feed.cut_now[2] >= T0 + 2.25
    late = feed.windows[2]
    last_frame = feed.frame_times[-1]
    # the late video is used up to its last frame; the rest of the window is a gap
    assert late.missing == frozenset()
    assert late.video is not None
    assert late.frame_times is not None
    assert late.frame_times.max() == pytest.approx(last_frame)
    assert late.gaps[-1] == pytest.approx((last_frame, T0 + 2.0))
    assert late.audio is not None
    assert late.audio.any()
    assert late.cut_at > feed.windows[1].cut_at
    assert feed.windows[3].missing == frozenset()  # [1.5, 2.5] still holds some video
    # nothing more while the video is still missing but max_wait has not passed
    assert feed.poll(T0 + 3.2) == []
    (window,) = feed.poll(T0 + 3.25)
    assert window.end == pytest.approx(T0 + 3.0)
    assert window.missing == frozenset({"video"})  # none of [2.0, 3.0] ever came
    assert window.video is not None
    assert not window.video.any()
    assert window.frame_times is not None
    assert window.frame_times.tolist() == pytest.approx((3.0 - np.arange(7, -1, -1) / 8) + T0)


def test_late_window_is_not_cut_before_max_wait() -> None:
    feed = make_feed(max_wait=0.4)
    feed.run(2.2, video_stops=(0.9, 10.0))  # video never reaches 1.0; audio ends at 2.15
    assert [round(w.end - T0, 6) for w in feed.windows] == [1.0, 1.5]  # 2.0 would be at 2.4
    # each is cut by the first poll at or after end + max_wait (audio arrives every 20 ms)
    for w, now in zip(feed.windows, feed.cut_now, strict=True):
        assert w.end + 0.4 <= now < w.end + 0.42
    # video until ~0.82 of [0, 1.0]: used, its last frame standing in for the rest (a tail
    # shorter than two frame intervals is not a gap)
    assert feed.windows[0].missing == frozenset()
    assert feed.windows[0].frame_times is not None
    assert feed.windows[0].frame_times.max() == pytest.approx(feed.frame_times[-1])
    assert feed.windows[1].missing == frozenset()  # [0.5, 1.5]: video until ~0.82, then a gap
    assert feed.windows[1].gaps[-1] == pytest.approx((feed.frame_times[-1], T0 + 1.5))
    # video that reaches 1.0 but not 1.5: the first window is complete, the second late
    feed2 = make_feed(max_wait=0.4)
    feed2.run(2.2, video_stops=(1.1, 10.0))
    assert [round(w.end - T0, 6) for w in feed2.windows] == [1.0, 1.5]
    assert feed2.windows[0].missing == frozenset()
    assert feed2.windows[0].gaps == ()
    assert feed2.windows[1].missing == frozenset()
    assert feed2.windows[1].gaps


def test_audio_only_stream_marks_video_missing_with_full_shapes() -> None:
    feed = make_feed(video=False)
    feed.run(3.1)
    assert len(feed.windows) == 5  # ends 1.0 .. 3.0: audio alone decides
    for w in feed.windows:
        assert w.missing == frozenset({"video"})
        assert w.video is not None
        assert w.video.shape == (8, SIZE, SIZE, 3)
        assert not w.video.any()
        assert w.audio is not None
        assert w.audio.shape == (SR,)
        assert w.av_skew_s == 0.0


def test_video_only_stream_marks_audio_missing() -> None:
    feed = make_feed(audio=False)
    feed.run(3.0)
    assert len(feed.windows) == 4  # ends 1.0 .. 2.5; 3.0 needs a frame after 3.0
    for w in feed.windows:
        assert w.missing == frozenset({"audio"})
        assert w.audio is not None
        assert w.audio.shape == (SR,)
        assert not w.audio.any()


def test_engine_without_video_gets_no_video() -> None:
    spec = WindowSpec(length_s=0.5, hop_s=0.25, audio=AudioSpec(SR, 8000))
    feed = make_feed(spec)
    feed.run(2.1)
    assert len(feed.windows) == 7  # ends 0.5 .. 2.0
    for w in feed.windows:
        assert w.video is None
        assert w.frame_times is None
        assert w.audio is not None
        assert w.audio.shape == (8000,)
        assert w.missing == frozenset()


def test_engine_without_audio_in_an_audio_only_stream_is_refused() -> None:
    spec = WindowSpec(length_s=1.0, hop_s=0.5, video=SPEC.video)
    assert not WindowCutter.serves(spec, has_video=False, has_audio=True)
    assert WindowCutter.serves(spec, has_video=True, has_audio=False)
    with pytest.raises(ValueError, match="none of the media"):
        WindowCutter("s", "e", spec, max_wait_s=0.2, has_video=False, has_audio=True)


def test_gaps_in_audio_and_video_are_reported() -> None:
    feed = make_feed()
    feed.run(4.0, jitter=0.0, audio_stops=(1.2, 1.3), video_stops=(2.6, 2.9))
    by_end = {round(w.end - T0, 6): w for w in feed.windows}
    audio_gap = by_end[1.5].gaps
    assert [(round(a - T0, 6), round(b - T0, 6)) for a, b in audio_gap] == [(1.15, 1.25)]
    window = by_end[1.5].audio
    assert window is not None
    assert not window[10400:12000].any()  # 0.65 s .. 0.75 s into the window
    assert window[:10400].all()
    assert window[12000:].all()
    assert by_end[2.0].gaps == by_end[1.5].gaps  # still inside [1.0, 2.0]
    assert by_end[2.5].gaps == ()
    # video: the last frame before the stall (77) to the first after it (87)
    (gap,) = by_end[3.0].gaps
    assert gap[0] - BASE == pytest.approx(77 / 30)
    assert gap[1] - BASE == pytest.approx(87 / 30)
    assert by_end[3.5].gaps == by_end[3.0].gaps
    assert by_end[3.0].missing == frozenset()


def test_cutter_skips_ahead_after_a_stall_and_never_goes_back() -> None:
    feed = make_feed()
    feed.run(2.0)
    before = len(feed.windows)
    # both modalities stall, then 3 s of media arrive at once (a burst after a network stall)
    video, audio = feed.video, feed.audio
    assert video is not None
    assert audio is not None
    for i in range(60, 150):
        video.push(np.full((SIZE, SIZE, 3), i % 256, np.uint8), BASE + i / 30)
    audio.push(np.zeros(3 * SR, np.float32), BASE + 2.0)
    cut = feed.poll(T0 + 5.0)
    assert len(cut) == 1
    assert cut[0].end == pytest.approx(T0 + 4.5)  # only the newest due window
    assert feed.cutter.skipped == 5  # 2.0, 2.5, 3.0, 3.5 and 4.0 were due too
    ends = [w.end for w in feed.windows]
    assert all(b > a for a, b in itertools.pairwise(ends))
    assert [w.seq for w in feed.windows] == list(range(before + 1))


def test_two_due_windows_are_both_cut() -> None:
    feed = make_feed()
    feed.run(1.45)
    assert len(feed.windows) == 1
    video, audio = feed.video, feed.audio
    assert video is not None
    assert audio is not None
    video.push(np.zeros((SIZE, SIZE, 3), np.uint8), T0 + 2.01)
    audio.push(np.zeros(round(0.6 * SR), np.float32), BASE + 1.45)
    cut = feed.poll(T0 + 2.05)
    assert [round(w.end - T0, 6) for w in feed.windows] == [1.0, 1.5, 2.0]
    assert len(cut) == 2
    assert feed.cutter.skipped == 0


def test_cutter_created_mid_stream_starts_at_the_newest_window() -> None:
    feed = make_feed()
    feed.run(3.1)
    late = WindowCutter("cam1", "other", SPEC, max_wait_s=0.25, has_video=True, has_audio=True)
    cut = late.poll(feed.video, feed.audio, T0 + 3.1, 0.0)
    assert [round(w.end - T0, 6) for w in cut] == [3.0]
    assert late.skipped == 0


def test_nothing_is_cut_before_media() -> None:
    cutter = WindowCutter("s", "e", SPEC, max_wait_s=0.1, has_video=True, has_audio=True)
    assert cutter.poll(VideoRing(4, SIZE, SIZE), AudioRing(SR, 1.0), T0 + 100, 0.0) == []
    assert cutter.poll(None, None, T0 + 100, 0.0) == []
    assert cutter.next_end is None


def test_ring_that_does_not_match_the_spec_is_an_error() -> None:
    assert SPEC.video is not None
    bigger = WindowSpec(1.0, 0.5, video=VideoSpec(8, 8.0, SIZE * 2, SIZE), audio=SPEC.audio)
    feed = make_feed(bigger)
    with pytest.raises(ValueError, match="engine wants"):
        feed.run(1.2)


# ---------------------------------------------------------------- frame sampling for ingest


@settings(max_examples=25, deadline=None)
@given(
    length=st.sampled_from([0.5, 1.0, 2.0]),
    hop=st.sampled_from([0.25, 0.5, 1.0, 1.5]),
    frames=st.integers(1, 16),
    fps=st.sampled_from([4.0, 8.0, 15.0]),
    seed=st.integers(0, 1000),
)
def test_frames_kept_by_wants_frame_give_identical_windows(
    length: float, hop: float, frames: int, fps: float, seed: int
) -> None:
    """A ring fed only the frames `wants_frame` asks for cuts the same frames as a full one."""
    spec = WindowSpec(length, hop, video=VideoSpec(frames, fps, 2, 2))
    full = WindowCutter("s", "e", spec, max_wait_s=0.2, has_video=True, has_audio=False)
    sampled = WindowCutter("s", "e", spec, max_wait_s=0.2, has_video=True, has_audio=False)
    ring_full, ring_sampled = VideoRing(400, 2, 2), VideoRing(400, 2, 2)
    rng = np.random.default_rng(seed)
    times = T0 + 0.1 + np.arange(240) / 30 + rng.uniform(-0.004, 0.004, 240)
    out_full: list[Window] = []
    out_sampled: list[Window] = []
    kept = 0
    for i, t in enumerate(times):
        image = np.full((2, 2, 3), i % 256, np.uint8)
        ring_full.push(image, float(t))
        # the period to the next frame is estimated with a margin for jitter
        if sampled.wants_frame(float(t), 1 / 30 + 0.01):
            ring_sampled.push(image, float(t))
            kept += 1
        else:
            ring_sampled.mark_seen(float(t))
        out_full += full.poll(ring_full, None, float(t), 0.0)
        out_sampled += sampled.poll(ring_sampled, None, float(t), 0.0)
    assert len(out_full) == len(out_sampled) > 0
    for a, b in zip(out_full, out_sampled, strict=True):
        assert a.end == b.end
        assert a.frame_times is not None
        assert b.frame_times is not None
        assert a.frame_times.tolist() == b.frame_times.tolist()
    # each wanted time keeps at most the two frames around it (the period has a margin)
    grid_windows = int((times[-1] - times[0] + length) / hop) + 2
    assert kept <= 1 + 2 * frames * grid_windows


def test_wants_frame_is_false_for_engines_without_video() -> None:
    spec = WindowSpec(1.0, 0.5, audio=AudioSpec(SR, SR))
    cutter = WindowCutter("s", "e", spec, max_wait_s=0.2, has_video=True, has_audio=True)
    assert not cutter.wants_frame(T0, 0.033)


# ---------------------------------------------------------------- helpers


def test_frame_gaps() -> None:
    times = np.array([0.0, 0.1, 0.2, 0.6, 0.7])
    assert frame_gaps(times, 0.05, 0.65, 0.25) == [(0.2, 0.6)]
    assert frame_gaps(times, 0.3, 1.2, 0.25) == [(0.3, 0.6), (0.7, 1.2)]  # none after 0.7
    assert frame_gaps(times[3:], 0.0, 0.65, 0.25) == [(0.0, 0.6)]  # nothing before the first
    assert frame_gaps(times, 0.0, 0.2, 0.25) == []


def test_merge_spans() -> None:
    assert merge_spans([(3.0, 4.0), (1.0, 2.0), (1.5, 2.5)]) == ((1.0, 2.5), (3.0, 4.0))
    assert merge_spans([]) == ()
