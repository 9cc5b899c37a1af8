"""Speech-like sources: a source-filter formant synthesiser, espeak-ng in languages and voice
variants chosen here, and multi-talker babble (a crowd, not a talker: background).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from .dsp import F64, envelope, fft_filter, harmonic_amps, oscillator, rms
from .sounds import Source, _merge

# (F1, F2, F3) targets in Hz of a few vowels, spread over the vowel space.
VOWELS = (
    (730, 1090, 2440),
    (530, 1840, 2480),
    (270, 2290, 3010),
    (570, 840, 2410),
    (300, 870, 2240),
    (660, 1720, 2410),
    (490, 1350, 1690),
)
ESPEAK_VOICES = ("de", "fr", "es", "it", "pl", "nl", "sv", "pt", "hu", "fi", "cs", "tr")
ESPEAK_VARIANTS = ("", "+f2", "+f4", "+m3", "+m5", "+klatt", "+croak", "+whisper")
SYLLABLES = ("ka", "lo", "mi", "tre", "son", "va", "pu", "der", "ni", "ga", "fel", "ro", "shu")
FRAME, HOP = 512, 128


def _formant_gain(freqs: F64, f123: F64, bw: F64) -> F64:
    """Spectral envelope `[frames, bins]`: a sum of resonances at each frame's formants."""
    g = np.zeros((len(f123), len(freqs)))
    for k in range(3):
        f = f123[:, k : k + 1]
        g += (0.8**k) / (1 + ((freqs[None, :] - f) / bw[k]) ** 2)
    return g


def _syllable_plan(
    start: float, end: float, rng: np.random.Generator
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Syllables (s, e) and the utterances (label spans) they form."""
    syl, utt, t = [], [], start
    while t < end - 0.2:
        u_end = min(end, t + rng.uniform(0.8, 3.5))
        u0 = t
        while t < u_end - 0.1:
            d = rng.uniform(0.11, 0.3)
            syl.append((t, min(u_end, t + d)))
            t += d + (rng.uniform(0.03, 0.2) if rng.uniform() < 0.3 else 0.0)
        utt.append((u0, min(t, u_end)))
        t += rng.uniform(0.45, 1.3)
    return syl, _merge(utt, 0.3)


def formant_talker(
    n: int, sr: int, span: tuple[float, float], rng: np.random.Generator, harmonics: int = 30
) -> Source:
    """One talker: glottal pulses with prosody through moving formants, fricative bursts."""
    syl, utt = _syllable_plan(span[0], span[1], rng)
    t = np.arange(n) / sr
    f0 = rng.uniform(85, 240) * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t))
    f0 *= 1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1))
    voiced = oscillator(f0, sr, harmonic_amps("saw", harmonics, rng) ** 1.3)
    scale = rng.uniform(0.9, 1.2)  # vocal tract length
    frames = 1 + max(0, (n - FRAME) // HOP)
    centres = (np.arange(frames) * HOP + FRAME / 2) / sr
    targets = np.array([VOWELS[int(rng.integers(len(VOWELS)))] for _ in syl], dtype=np.float64)
    mids = np.array([(s + e) / 2 for s, e in syl]) if syl else np.zeros(1)
    f123 = np.stack(
        [np.interp(centres, mids, targets[:, k] if syl else np.full(1, 500.0)) for k in range(3)],
        axis=1,
    )
    y = _filter_frames(voiced, f123 * scale, sr)
    fric = fft_filter(rng.standard_normal(n), sr, lo=rng.uniform(2500, 4500))
    cons = [(s, s + rng.uniform(0.02, 0.07)) for s, _ in syl if rng.uniform() < 0.6]
    vowel_env = np.zeros(n)
    for s, e in syl:
        a, b = int(s * sr), min(n, int(e * sr))
        if b > a:
            vowel_env[a:b] = np.sin(np.linspace(0, np.pi, b - a)) ** 0.7
    x = y / (rms(y) + 1e-12) * vowel_env + 0.5 * fric * envelope(n, sr, cons, 0.005)
    gate = envelope(n, sr, utt)
    on = gate > 0.5
    x = x / (rms(x[on]) + 1e-12) if on.any() else x
    return Source(x, utt, {"synth": "formant"})


def _filter_frames(x: F64, f123: F64, sr: int) -> F64:
    """Short-time filtering (Hann, 4x overlap) by the per-frame formant envelope."""
    n, frames = len(x), len(f123)
    win = np.hanning(FRAME)
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
    pad = np.concatenate([x, np.zeros(max(0, idx.max() + 1 - n))])
    spec = np.fft.rfft(pad[idx] * win, axis=1)
    freqs = np.asarray(np.fft.rfftfreq(FRAME, 1 / sr), dtype=np.float64)
    spec *= _formant_gain(freqs, f123, np.array([90.0, 120.0, 170.0]))
    out = np.zeros(len(pad))
    np.add.at(out, idx, np.fft.irfft(spec, FRAME, axis=1) * win)
    return out[:n] / 1.5


def espeak_available() -> bool:
    """Whether `espeak-ng` is on PATH."""
    return shutil.which("espeak-ng") is not None


def espeak_talker(
    n: int, sr: int, span: tuple[float, float], rng: np.random.Generator
) -> Source | None:
    """espeak-ng reading pseudo-words; None when espeak-ng is missing or fails."""
    if not espeak_available():
        return None
    voice = ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))]
    voice += ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
    words = " ".join(
        "".join(SYLLABLES[int(i)] for i in rng.integers(0, len(SYLLABLES), rng.integers(1, 4)))
        + ("." if rng.uniform() < 0.2 else "")
        for _ in range(int(rng.integers(6, 16)))
    )
    cmd = [
        "espeak-ng",
        "-v",
        voice,
        "-s",
        str(int(rng.integers(120, 200))),
        "-p",
        str(int(rng.integers(20, 80))),
        "--stdout",
        words,
    ]
    try:
        wav = subprocess.run(cmd, capture_output=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    pcm = np.frombuffer(wav[44:], dtype="<i2").astype(np.float64) / 32768.0
    src_sr = int.from_bytes(wav[24:28], "little") or 22050
    pcm = fft_filter(pcm, src_sr, hi=0.45 * sr)
    m = int(len(pcm) * sr / src_sr)
    pcm = np.interp(np.arange(m) * src_sr / sr, np.arange(len(pcm)), pcm)
    a = int(span[0] * sr)
    m = max(0, min(m, int(span[1] * sr) - a, n - a))
    x = np.zeros(n)
    x[a : a + m] = pcm[:m]
    spans = _active_spans(x, sr)
    gate = envelope(n, sr, spans)
    on = gate > 0.5
    x = x / (rms(x[on]) + 1e-12) if on.any() else x
    return Source(x, spans, {"synth": "espeak-ng", "voice": voice})


def _active_spans(x: F64, sr: int) -> list[tuple[float, float]]:
    """Where a voice is active: 20 ms frames above -35 dB of the loudest, gaps < 0.3 s merged."""
    hop = sr // 50
    frames = len(x) // hop
    if frames == 0:
        return []
    e = np.sqrt(np.mean(x[: frames * hop].reshape(frames, hop) ** 2, axis=1))
    on = e > np.max(e) * 10 ** (-35 / 20)
    spans, start = [], None
    for i, v in enumerate(np.append(on, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            spans.append((start * hop / sr, i * hop / sr))
            start = None
    return [s for s in _merge(spans, 0.3) if s[1] - s[0] >= 0.1]


def talker(n: int, sr: int, span: tuple[float, float], rng: np.random.Generator) -> Source:
    """One foreground talker: espeak-ng half the time when installed, else formant synthesis."""
    if rng.uniform() < 0.5:
        spoken = espeak_talker(n, sr, span, rng)
        if spoken is not None and spoken.spans:
            return spoken
    return formant_talker(n, sr, span, rng)


def babble(n: int, sr: int, rng: np.random.Generator) -> F64:
    """A crowd: 6-10 overlapping formant talkers, low-passed (far away), unit RMS."""
    x = np.zeros(n)
    for _ in range(int(rng.integers(6, 11))):
        x += formant_talker(n, sr, (0.0, n / sr), rng, harmonics=16).signal
    x = fft_filter(x, sr, lo=120, hi=rng.uniform(1800, 3500))
    return x / (rms(x) + 1e-12)
