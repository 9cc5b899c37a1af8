"""From one recorded clip to an engine's windows: decode, find where it sounds, place it in a
short scene (optionally over noise at a stated SNR), cut windows as the service does, label them.

Pure numpy except `decode_audio` (PyAV). The rules:

* **Level.** The clip is scaled so that its active part has an RMS of `TARGET_DBFS` (−20 dBFS),
  peaks limited to ±0.99: the set measures what a sound is, not how loud the package made it.
* **Where it sounds.** 20 ms frames whose RMS is within `ACTIVE_RANGE_DB` (30 dB) of the
  clip's loudest frame and above −60 dBFS are active, blips under 50 ms dropped. The clip's
  labels are on over the active spans, pauses up to 0.5 s bridged (the generator's
  `MERGE_GAP_S`: between words, between honks); for `alarm` and `siren` up to 1.6 s (the
  pause of a T3 smoke-alarm pattern is 1.5 s: an alarm between beep groups is still sounding).
* **Scene.** `LEAD_S` of silence (or noise) before the clip and `TAIL_S` after, at least one
  window long, so windows see the onset and the offset as a live stream would.
* **Noise.** Pink noise (seeded) over the whole scene, scaled to `snr_db` below the active
  part's RMS.
* **Windows** start every hop at 0; the audio is the samples `[round(start*rate), +samples)`.
  Labels follow the engine's contract: for scores that describe the window's end, the
  generator's rule (`engines.lab.scenes.truth`: on when the label covers half of the last
  0.3 s, borderline windows not scored); for scores that describe the whole window, on when
  the label covers at least half of it, not scored when it covers less but some. Labels the
  manifest marks `dontcare` are not scored anywhere in the clip.
* **Video** is neutral: the same still frame (a grey sky over a darker road, no motion) in
  every window. Video labels are not scored; they and the fused labels must stay off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engines.lab.scenes.base import LabelInterval
from engines.lab.scenes.truth import MERGE_GAP_S, coverage, merge, window_care, window_labels
from engines.labels import LABELS
from engines.window import VideoSpec, WindowSpec

TARGET_DBFS = -20.0
PEAK_LIMIT = 0.99
FRAME_S = 0.02
ACTIVE_RANGE_DB = 30.0
ABSOLUTE_FLOOR_DBFS = -60.0
LABEL_MERGE_GAP_S = {"alarm": 1.6, "siren": 1.6}
MIN_ACTIVE_S = 0.05
LEAD_S = 0.5
TAIL_S = 0.5

F32 = npt.NDArray[np.float32]


def decode_audio(path: Path, rate: int) -> F32:
    """The first audio stream of `path`, mono float32 at `rate` (PyAV's resampler)."""
    import av

    out: list[F32] = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                out.append(np.asarray(piece.to_ndarray(), dtype=np.float32).reshape(-1))
        for piece in resampler.resample(None):
            out.append(np.asarray(piece.to_ndarray(), dtype=np.float32).reshape(-1))
    if not out:
        raise ValueError(f"{path}: no audio")
    return np.concatenate(out).astype(np.float32)


def frame_db(audio: F32, rate: int, frame_s: float = FRAME_S) -> npt.NDArray[np.float64]:
    """RMS level (dBFS) of consecutive frames (the last partial frame included)."""
    n = max(1, round(frame_s * rate))
    frames = -(-len(audio) // n)
    padded = np.zeros(frames * n, dtype=np.float64)
    padded[: len(audio)] = audio
    rms = np.sqrt(np.mean(padded.reshape(frames, n) ** 2, axis=1))
    return np.asarray(20 * np.log10(rms + 1e-10), dtype=np.float64)


def active_spans(
    audio: F32, rate: int, merge_gap_s: float = MERGE_GAP_S
) -> list[tuple[float, float]]:
    """Where the clip sounds, in seconds, pauses up to `merge_gap_s` bridged (see the module
    docstring for the rule)."""
    if len(audio) == 0:
        return []
    db = frame_db(audio, rate)
    on = (db >= db.max() - ACTIVE_RANGE_DB) & (db >= ABSOLUTE_FLOOR_DBFS)
    spans: list[tuple[float, float]] = []
    i = 0
    while i < len(on):
        if not on[i]:
            i += 1
            continue
        j = i
        while j < len(on) and on[j]:
            j += 1
        start, end = i * FRAME_S, min(j * FRAME_S, len(audio) / rate)
        if spans and start - spans[-1][1] <= merge_gap_s:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        i = j
    return [(s, e) for s, e in spans if e - s >= MIN_ACTIVE_S]


def active_rms(audio: F32, rate: int, spans: Sequence[tuple[float, float]]) -> float:
    """RMS over the active spans (the whole clip when there are none)."""
    parts = [audio[round(s * rate) : round(e * rate)] for s, e in spans]
    x = np.concatenate(parts) if parts else audio
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0


def normalise(audio: F32, rate: int, spans: Sequence[tuple[float, float]]) -> F32:
    """Scaled to `TARGET_DBFS` over the active part, peaks limited to `PEAK_LIMIT`."""
    rms = active_rms(audio, rate, spans)
    if rms <= 0:
        return audio.astype(np.float32)
    gain = 10 ** (TARGET_DBFS / 20) / rms
    peak = float(np.max(np.abs(audio))) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (audio * gain).astype(np.float32)


def pink_noise(n: int, seed: int) -> F32:
    """Unit-RMS pink (1/f power) noise of `n` samples, deterministic in `seed`."""
    if n <= 0:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    y: F32 = (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)
    return y


@dataclass(frozen=True, slots=True)
class Scene:
    """A clip placed in a short stream: its audio and the intervals of its labels."""

    audio: F32
    rate: int
    truth: tuple[LabelInterval, ...]
    dontcare: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.rate


def build_scene(
    clip: F32,
    rate: int,
    labels: Sequence[str],
    dontcare: Sequence[str] = (),
    *,
    min_length_s: float = 1.0,
    snr_db: float | None = None,
    seed: int = 0,
) -> Scene:
    """The clip, normalised, with `LEAD_S` before and at least `TAIL_S` after (the scene at
    least `min_length_s` long), over pink noise at `snr_db` when given."""
    spans = active_spans(clip, rate)
    clip = normalise(clip, rate, spans)
    lead = round(LEAD_S * rate)
    total = max(lead + len(clip) + round(TAIL_S * rate), round(min_length_s * rate))
    audio = np.zeros(total, dtype=np.float32)
    audio[lead : lead + len(clip)] = clip
    if snr_db is not None:
        level = active_rms(clip, rate, spans) * 10 ** (-snr_db / 20)
        audio = audio + pink_noise(total, seed) * np.float32(level)
        audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    raw = active_spans(clip, rate, merge_gap_s=0.0)
    truth: list[LabelInterval] = []
    for label in labels:
        spans_of = [LabelInterval(label, LEAD_S + s, LEAD_S + e) for s, e in raw]
        truth += merge(spans_of, LABEL_MERGE_GAP_S.get(label, MERGE_GAP_S))
    return Scene(audio=audio, rate=rate, truth=tuple(truth), dontcare=tuple(dontcare))


def neutral_video(spec: VideoSpec) -> npt.NDArray[np.uint8]:
    """`[frames, H, W, 3]`: one still frame repeated, a light grey sky over a darker grey road."""
    rows = np.linspace(150.0, 90.0, spec.height, dtype=np.float64)
    frame = np.repeat(rows[:, None, None], spec.width, axis=1).repeat(3, axis=2)
    frame[..., 2] += 6.0  # a slightly blue cast
    still = np.clip(frame, 0, 255).astype(np.uint8)
    return np.repeat(still[None], spec.frames, axis=0)


@dataclass(frozen=True, slots=True)
class SceneWindows:
    """The windows of one scene: audio `[N, S]`, labels and care `[N, len(LABELS)]`."""

    audio: F32
    labels: F32
    care: F32
    starts: npt.NDArray[np.float64]


def _window_truth(scene: Scene, spec: WindowSpec, start: float, end: float) -> tuple[F32, F32]:
    if spec.labels_at == "end":
        return (
            window_labels(scene.truth, start, end).astype(np.float32),
            window_care(scene.truth, start, end).astype(np.float32),
        )
    cov = np.array([coverage(scene.truth, label, start, end) for label in LABELS])
    on = (cov >= 0.5).astype(np.float32)
    care = ((cov >= 0.5) | (cov == 0.0)).astype(np.float32)
    return on, care


def scene_windows(scene: Scene, spec: WindowSpec) -> SceneWindows:
    """Windows every hop from 0 while a whole window fits, labelled for the engine's contract."""
    if spec.audio is None:
        raise ValueError("the engine takes no audio")
    rate, n = spec.audio.sample_rate, spec.audio.samples
    if rate != scene.rate:
        raise ValueError(f"scene at {scene.rate} Hz, engine at {rate} Hz")
    audios, labels, cares, starts = [], [], [], []
    k = 0
    while k * spec.hop_s + spec.length_s <= scene.duration_s + 1e-9:
        start = k * spec.hop_s
        end = start + spec.length_s
        a0 = round(start * rate)
        chunk = scene.audio[a0 : a0 + n]
        audios.append(np.pad(chunk, (0, n - len(chunk))))
        on, care = _window_truth(scene, spec, start, end)
        for label in scene.dontcare:
            care[LABELS.index(label)] = 0.0
        labels.append(on)
        cares.append(care)
        starts.append(start)
        k += 1
    width = len(LABELS)
    return SceneWindows(
        audio=np.stack(audios).astype(np.float32) if audios else np.zeros((0, n), np.float32),
        labels=np.stack(labels) if labels else np.zeros((0, width), np.float32),
        care=np.stack(cares) if cares else np.zeros((0, width), np.float32),
        starts=np.asarray(starts, dtype=np.float64),
    )
