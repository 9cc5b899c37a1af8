"""Silero VAD as a bundled engine: real speech (espeak-ng, synthesised here) against tones,
sweeps and noise, chunk by chunk, through the engine runtime with several streams batched
together and each stream's LSTM state and audio context carried from one call to the next."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engines.config import EnginesConfig
from engines.runtime.engine import Engine
from engines.runtime.loader import discover, load_engine
from engines.window import Window

pytestmark = pytest.mark.integration

RATE = 16000
CHUNK = 512
THRESHOLD = 0.5
F32 = npt.NDArray[np.float32]

SENTENCES = [
    ("en", "The quick brown fox jumps over the lazy dog near the river bank."),
    ("en-us+f3", "Please move to the side of the road, an ambulance is coming through."),
    ("en+m3", "Turn left at the next junction and then continue straight for two miles."),
    ("en-us", "Hello, can you hear me? I think the microphone is working again now."),
]


def espeak(tmp: Path, voice: str, text: str, speed: int) -> F32:
    """Speech from espeak-ng, resampled from its 22.05 kHz to 16 kHz, peak 0.5."""
    out = tmp / f"{voice}-{speed}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True)
    with wave.open(str(out)) as f:
        rate = f.getframerate()
        x = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float64) / 32768
    t = np.arange(int(len(x) * RATE / rate)) / RATE
    y = np.interp(t, np.arange(len(x)) / rate, x)
    speech: F32 = (0.5 * y / np.abs(y).max()).astype(np.float32)
    return speech


def non_speech(seconds: float, seed: int) -> dict[str, F32]:
    """Tones, sweeps and noises, each `seconds` long."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(freqs, 1.0)), n)
    brown = np.fft.irfft(spectrum / np.maximum(freqs, 1.0), n)
    sweep_f = 100 * (40.0 ** (t / seconds))  # 100 Hz -> 4 kHz, exponential
    signals = {
        "tone-440": np.sin(2 * np.pi * 440 * t),
        "tone-1k": np.sin(2 * np.pi * 1000 * t),
        "tone-3k+5k": np.sin(2 * np.pi * 3000 * t) + np.sin(2 * np.pi * 5000 * t),
        "sweep": np.sin(2 * np.pi * np.cumsum(sweep_f) / RATE),
        "siren": np.sin(2 * np.pi * np.cumsum(700 + 300 * np.sin(2 * np.pi * 0.5 * t)) / RATE),
        "white": white,
        "pink": pink,
        "brown": brown,
    }
    return {k: (0.3 * v / np.abs(v).max()).astype(np.float32) for k, v in signals.items()}


def speech_truth(audio: F32) -> npt.NDArray[np.bool_]:
    """Chunks that carry speech: energy within 26 dB of the loudest chunk (pauses excluded)."""
    chunks = audio[: len(audio) // CHUNK * CHUNK].reshape(-1, CHUNK)
    rms = np.sqrt((chunks.astype(np.float64) ** 2).mean(axis=1))
    truth: npt.NDArray[np.bool_] = rms > 0.05 * rms.max()
    return truth


def run_streams(engine: Engine, streams: dict[str, F32]) -> dict[str, F32]:
    """Cut every stream into tiling windows; one call per hop carries one window of each stream."""
    samples = engine.spec.audio.samples  # type: ignore[union-attr]
    counts = {k: len(v) // samples for k, v in streams.items()}
    scores: dict[str, list[F32]] = {k: [] for k in streams}
    for i in range(max(counts.values())):
        batch = [
            Window(k, engine.name, i, i * engine.spec.hop_s, (i + 1) * engine.spec.hop_s,
                   None, None, v[i * samples : (i + 1) * samples])
            for k, v in streams.items() if i < counts[k]
        ]  # fmt: skip
        for window, chunk_scores in zip(batch, engine.chunk_scores(batch), strict=True):
            scores[window.stream].append(chunk_scores[:, 0])
    for k in streams:
        engine.release(k)  # streams end here: the next run starts fresh
    return {k: np.concatenate(v) for k, v in scores.items()}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    cfg = EnginesConfig.model_validate(
        {"cache_dir": tmp_path_factory.mktemp("cache"), "backends": ["onnxruntime"]}
    )
    loaded, report = load_engine(discover(None).manifests["silero-vad"], cfg)
    assert report.backend == "onnxruntime"
    return loaded


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, F32]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: no speech to test Silero VAD against")
    tmp = tmp_path_factory.mktemp("speech")
    return {
        f"speech-{i}": espeak(tmp, voice, text, speed)
        for i, (voice, text) in enumerate(SENTENCES)
        for speed in ([150] if i % 2 else [130])
    }


def test_speech_recall_and_non_speech_false_positives(
    engine: Engine, speech: dict[str, F32]
) -> None:
    others = non_speech(8.0, seed=1)
    scores = run_streams(engine, {**speech, **others})
    hits = total = 0
    for name, audio in speech.items():
        truth = speech_truth(audio)[: len(scores[name])]
        hits += int((scores[name][truth] > THRESHOLD).sum())
        total += int(truth.sum())
    recall = hits / total
    false = sum(int((scores[k] > THRESHOLD).sum()) for k in others)
    chunks = sum(len(scores[k]) for k in others)
    fpr = false / chunks
    print(f"silero-vad: recall {recall:.3f} on {total} speech chunks; FPR {fpr:.4f} on {chunks}")
    assert total > 300
    assert chunks > 1500
    assert recall >= 0.8
    assert fpr <= 0.02


def test_batched_streams_equal_each_stream_alone(engine: Engine, speech: dict[str, F32]) -> None:
    # State isolation: running three streams batched together gives each stream exactly what it
    # gets alone, so state is carried per stream and never mixed between batch rows.
    names = sorted(speech)[:3]
    together = run_streams(engine, {k: speech[k] for k in names})
    assert engine.stream_count() == 0
    for k in names:
        alone = run_streams(engine, {k: speech[k]})
        np.testing.assert_allclose(together[k], alone[k], atol=1e-5)


def test_carried_state_matters_and_release_resets_it(
    engine: Engine, speech: dict[str, F32]
) -> None:
    audio = next(iter(speech.values()))
    samples = engine.spec.audio.samples  # type: ignore[union-attr]
    windows = [
        Window("s", engine.name, i, 0, 0, None, None, audio[i * samples : (i + 1) * samples])
        for i in range(4)
    ]
    carried = [engine.chunk_scores([w])[0] for w in windows]
    fresh = []
    for w in windows:
        engine.release("s")
        fresh.append(engine.chunk_scores([w])[0])
    engine.release("s")
    assert np.allclose(carried[0], fresh[0])  # first window: same start either way
    assert not np.allclose(np.concatenate(carried[1:]), np.concatenate(fresh[1:]), atol=1e-3)
    window_scores = engine.infer(windows[:1])
    assert window_scores[0]["speech"] == pytest.approx(float(carried[0].max()), abs=1e-6)
    engine.release("s")


def test_torch_backend_agrees_with_onnxruntime_on_speech(
    engine: Engine, speech: dict[str, F32], tmp_path: Path
) -> None:
    # The torch backend runs the package's TorchScript network; state carried by the runtime.
    cfg = EnginesConfig.model_validate({"cache_dir": tmp_path, "backends": ["torch"]})
    on_torch, report = load_engine(engine.manifest, cfg)
    assert report.backend == "torch"
    streams = {k: speech[k] for k in sorted(speech)[:2]}
    got, want = run_streams(on_torch, streams), run_streams(engine, streams)
    for k in streams:
        np.testing.assert_allclose(got[k], want[k], atol=1e-4)
