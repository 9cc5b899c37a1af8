"""A bank of short utterances per split: espeak-ng voices, or a formant synthesiser without it.

The bank is built at first use (espeak-ng takes ~10 ms a clip) and cached on disk under
`cache_root()`, so worker processes and later runs load it at once. Splits use disjoint voices:
`heldout` speech is in voices the model never heard.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from engines.lab.scenes.audio import F32, F64, TWO_PI, unit_rms

SR = 16000
BANK_VERSION = 2
CLIPS_PER_VOICE = 10
VOICES: dict[str, tuple[str, ...]] = {
    "train": (
        "en-us+m1", "en-us+f2", "en+m3", "en+f3", "en-us+m5", "en+f4", "en-gb-scotland+m2",
        "de+m4", "fr+f1", "es+m6", "nl+f5", "en-us+klatt2", "it+m7", "en+edward",
        "en-us+linda", "en+john",
    ),
    "heldout": ("en-us+m2", "en+f1", "pt+m1", "sv+f3", "en-us+max", "en+Annie", "pl+m8"),
}  # fmt: skip
SENTENCES = (
    "Please move to the left lane when it is safe.",
    "The next stop is the central station.",
    "I think we should turn around here.",
    "Did you see where the bus went?",
    "Let me call you back in five minutes.",
    "It is going to rain again this afternoon.",
    "We are almost there, just two more blocks.",
    "Can you open the window a little?",
    "That restaurant on the corner is new.",
    "Remember to pick up the keys tomorrow.",
    "How long does the bridge stay closed?",
    "Turn the music down, I can't hear you.",
    "The meeting moved to half past three.",
    "Look out for the cyclist on your right.",
    "We need milk, bread and some coffee.",
    "She said the parking garage is full.",
    "Which exit do we take after the tunnel?",
    "I left my umbrella on the train again.",
    "Thanks for waiting, the doors are opening.",
    "Could you check the tyre pressure later?",
    "The concert starts at eight tonight.",
    "Keep going straight past the old church.",
    "My phone battery is almost empty.",
    "Do you want to stop for something to eat?",
)


def cache_root() -> Path:
    """Where generated assets are cached (`$XDG_CACHE_HOME/scenestream`, else `~/.cache`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scenestream"


def voices_for(split: str) -> tuple[str, ...]:
    """Voices of a split: `val` shares the training voices, `heldout` has its own."""
    return VOICES["heldout" if split == "heldout" else "train"]


@functools.lru_cache(maxsize=4)
def speech_bank(split: str) -> tuple[F32, ...]:
    """The utterances of `split` at 16 kHz, trimmed of silence, unit RMS."""
    engine = "espeak" if shutil.which("espeak-ng") else "formant"
    pool = "heldout" if split == "heldout" else "train"
    path = cache_root() / f"speech-v{BANK_VERSION}-{engine}-{pool}.npz"
    if path.exists():
        with np.load(path) as npz:
            data, offsets = npz["data"], npz["offsets"]
        return tuple(data[a:b] for a, b in itertools.pairwise(offsets))
    clips = _build(pool, engine)
    _store(path, clips)
    return clips


def _build(pool: str, engine: str) -> tuple[F32, ...]:
    clips: list[F32] = []
    for vi, voice in enumerate(VOICES[pool]):
        for ci in range(CLIPS_PER_VOICE):
            text = SENTENCES[(vi * CLIPS_PER_VOICE + ci) % len(SENTENCES)]
            rng = np.random.default_rng([vi, ci, len(pool)])
            speed, pitch = int(rng.integers(130, 200)), int(rng.integers(25, 75))
            raw = _espeak(voice, text, speed, pitch) if engine == "espeak" else None
            if raw is None:
                raw = formant_utterance(rng, 1.2 + 1.2 * rng.random())
            clips.append(_trim_normalise(raw))
    return tuple(clips)


def _store(path: Path, clips: tuple[F32, ...]) -> None:
    """Write atomically; a read-only cache only costs a rebuild next time."""
    offsets = np.cumsum([0, *(len(c) for c in clips)])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, data=np.concatenate(clips), offsets=offsets)
        os.replace(tmp, path)
    except OSError:
        pass


def _espeak(voice: str, text: str, speed: int, pitch: int) -> F32 | None:
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text]
    try:
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=20).stdout
        with wave.open(io.BytesIO(out)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (OSError, subprocess.SubprocessError, wave.Error, EOFError):
        return None
    x = pcm.astype(np.float64) / 32768.0
    if len(x) < rate // 10:
        return None
    return _to_16k(x, rate)


def _to_16k(x: F64, rate: int) -> F32:
    if rate == SR:
        return x.astype(np.float32)
    n_out = round(len(x) * SR / rate)
    spec = np.fft.rfft(x)[: n_out // 2 + 1]
    return (np.fft.irfft(spec, n_out) * (n_out / len(x))).astype(np.float32)


def _trim_normalise(x: F32) -> F32:
    frame = SR // 100
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > 0.05 * rms.max())
    a, b = loud[0] * frame, (loud[-1] + 1) * frame
    y = x[a:b].astype(np.float64)
    return unit_rms(y).astype(np.float32)


# Vowel formants (F1, F2, F3) in Hz, for the fallback synthesiser.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
           (660, 1720, 2410), (570, 840, 2410), (440, 1020, 2240))  # fmt: skip


def formant_utterance(rng: np.random.Generator, seconds: float) -> F32:
    """Procedural speech: glottal harmonics shaped by vowel formants, in 4–6 Hz syllables,
    with fricative noise at syllable onsets and a falling intonation."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 230) * (1.1 - 0.25 * t / seconds) * (1 + 0.03 * np.sin(TWO_PI * 5 * t))
    phase = np.cumsum(TWO_PI * f0 / SR)
    syl = rng.uniform(0.16, 0.28)
    idx = np.minimum((t / syl).astype(int), int(seconds / syl))
    table = np.array(_VOWELS, dtype=np.float64)[rng.integers(0, len(_VOWELS), idx.max() + 1)]
    formants = table[idx] * rng.uniform(0.9, 1.15)
    pos = np.mod(t, syl) / syl
    env = np.sin(np.pi * np.clip(pos * 1.15, 0, 1)) ** 0.7
    voiced = np.zeros(n)
    for h in range(1, 40):
        fh = h * f0
        gain = sum(1.0 / (1.0 + ((fh - formants[:, j]) / (60 + 40 * j)) ** 2) for j in range(3))
        voiced += np.where(fh < 0.45 * SR, gain * np.sin(h * phase) / h**0.5, 0.0)
    fric = rng.standard_normal(n) * (pos < 0.15) * (rng.random(idx.max() + 1) < 0.5)[idx]
    fric = np.diff(fric, prepend=0.0)
    out: F32 = ((voiced * env + 0.3 * fric) * (t < seconds - 0.05)).astype(np.float32)
    return out
