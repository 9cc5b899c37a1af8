"""Train or evaluate on your own clips: a directory of media files plus `labels.csv`.

`labels.csv` has the columns `file,start_s,end_s,label` (a header row, one labelled interval a
row; `file` relative to the directory; labels from `LABELS`). Every media file in the CSV is
decoded with PyAV, resized to the engine's frame size and resampled to its sample rate, and cut
into windows every hop exactly as the service does; a window's labels follow the generator's
rule (`engines.lab.scenes.truth.window_labels`: a label is on when it covers half of the window's
last 0.3 s).
Files listed with no interval are pure negatives.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engines.errors import UserError
from engines.lab.scenes.base import LABELS, LabelInterval
from engines.lab.scenes.truth import window_labels
from engines.lab.training.data import WindowSet, from_arrays
from engines.window import WindowSpec

CSV_NAME = "labels.csv"
COLUMNS = ("file", "start_s", "end_s", "label")


@dataclass(frozen=True, slots=True)
class Clip:
    """One decoded media file at the engine's rates."""

    name: str
    frames: npt.NDArray[np.uint8]  # [N, H, W, 3]
    frame_times: npt.NDArray[np.float64]  # [N] seconds from the file's start
    audio: npt.NDArray[np.float32]  # [S] mono at the engine's sample rate


def read_labels(directory: Path) -> dict[str, list[LabelInterval]]:
    """`labels.csv` as intervals per file; one clear `UserError` per problem (with the line)."""
    path = directory / CSV_NAME
    if not path.is_file():
        raise UserError(f"{path}: not found (columns: {', '.join(COLUMNS)})")
    out: dict[str, list[LabelInterval]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{path}: header must be {','.join(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            name, label = row["file"].strip(), row["label"].strip()
            if not (directory / name).is_file():
                raise UserError(f"{path}:{line}: media file not found: {name}")
            out.setdefault(name, [])
            if not label:
                continue  # a file listed without an interval: all negative
            if label not in LABELS:
                raise UserError(f"{path}:{line}: unknown label {label!r} (known: {LABELS})")
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
            except ValueError as exc:
                raise UserError(f"{path}:{line}: start_s/end_s must be numbers") from exc
            if not 0 <= start < end:
                raise UserError(f"{path}:{line}: need 0 <= start_s < end_s")
            out[name].append(LabelInterval(label, start, end))
    if not out:
        raise UserError(f"{path}: no rows")
    return out


def decode(path: Path, spec: WindowSpec) -> Clip:
    """All frames (resized, RGB) with their times, and the audio resampled to mono."""
    import av

    if spec.video is None or spec.audio is None:
        raise ValueError("needs a spec with video and audio")
    frames, times, audio = [], [], []
    try:
        with av.open(str(path)) as container:
            streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=spec.audio.sample_rate)
            for frame in container.decode(*streams):
                if isinstance(frame, av.VideoFrame):
                    img = frame.reformat(spec.video.width, spec.video.height, format="rgb24")
                    frames.append(img.to_ndarray())
                    times.append(float(frame.time or 0.0))
                elif isinstance(frame, av.AudioFrame):
                    for out in resampler.resample(frame):
                        audio.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                audio.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise UserError(f"{path}: cannot decode: {exc}") from exc
    if not frames or not audio:
        raise UserError(f"{path}: needs both a video and an audio stream")
    return Clip(
        name=path.name,
        frames=np.stack(frames),
        frame_times=np.asarray(times),
        audio=np.concatenate(audio).astype(np.float32),
    )


def clip_windows(
    clip: Clip, truth: list[LabelInterval], spec: WindowSpec
) -> tuple[
    list[npt.NDArray[np.uint8]], list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]]
]:
    """Windows every hop: the frames at `fps` ending at the window end, and the audio span."""
    if spec.video is None or spec.audio is None:
        raise ValueError("needs a spec with video and audio")
    rate, n_audio, t_frames = spec.audio.sample_rate, spec.audio.samples, spec.video.frames
    duration = min(float(clip.frame_times[-1]) + 1.0 / spec.video.fps, len(clip.audio) / rate)
    videos, audios, labels = [], [], []
    start = 0.0
    while start + spec.length_s <= duration + 1e-6:
        end = start + spec.length_s
        want = end - (t_frames - 1 - np.arange(t_frames)) / spec.video.fps - 1e-6
        # The latest frame shown at each wanted instant (what a live camera would have sent).
        idx = np.clip(np.searchsorted(clip.frame_times, want, side="right") - 1, 0, None)
        a0 = round(start * rate)
        chunk = clip.audio[a0 : a0 + n_audio]
        videos.append(clip.frames[idx])
        audios.append(np.pad(chunk, (0, n_audio - len(chunk))))
        labels.append(window_labels(truth, start, end))
        start += spec.hop_s
    return videos, audios, labels


def load_user_dir(directory: Path, spec: WindowSpec) -> dict[str, WindowSet]:
    """Windows of every file in `labels.csv`, as one set per file (kind = file name)."""
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    assert spec.audio is not None
    sets = {}
    for name, truth in read_labels(directory).items():
        videos, audios, labels = clip_windows(decode(directory / name, spec), truth, spec)
        if not videos:
            raise UserError(f"{directory / name}: shorter than one window ({spec.length_s} s)")
        sets[name] = from_arrays(
            np.stack(videos),
            np.stack(audios),
            np.stack(labels),
            [name] * len(videos),
            spec.audio.sample_rate,
        )
    return sets


def concat(sets: list[WindowSet]) -> WindowSet:
    """One set from several in-memory sets."""
    audio = [s.audio for s in sets]
    return WindowSet(
        video=np.concatenate([s.video for s in sets]),
        logmel=np.concatenate([s.logmel for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        care=np.concatenate([s.care for s in sets]),
        kinds=[k for s in sets for k in s.kinds],
        audio=None if any(a is None for a in audio) else np.concatenate(audio),  # type: ignore[arg-type]
    )


def split_user_sets(
    sets: dict[str, WindowSet], val_fraction: float = 0.2
) -> tuple[WindowSet, WindowSet]:
    """Train/val: whole files to validation when there are several (no leakage between
    overlapping windows), else the last windows of the only file."""
    names = sorted(sets)
    if len(names) >= 2:
        n_val = max(1, round(len(names) * val_fraction))
        return concat([sets[n] for n in names[:-n_val]]), concat([sets[n] for n in names[-n_val:]])
    only = sets[names[0]]
    cut = max(1, int(len(only) * (1 - val_fraction)))
    if cut >= len(only):
        return only, only
    take = slice(0, cut), slice(cut, None)
    parts = [
        WindowSet(
            video=only.video[s],
            logmel=only.logmel[s],
            labels=only.labels[s],
            care=only.care[s],
            kinds=only.kinds[s],
            audio=None if only.audio is None else only.audio[s],
        )
        for s in take
    ]
    return parts[0], parts[1]
