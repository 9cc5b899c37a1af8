"""YAMNet (Google's AudioSet tagger) as the bundled `yamnet` engine, on ONNX Runtime CPU:
espeak-ng speech scores as speech, harmonic siren sweeps as siren, and neither fires on the
other or on noise; its 521 classes reach the scene labels through the `audioset` label map."""

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
F32 = npt.NDArray[np.float32]
MODEL = Path(__file__).resolve().parents[2] / "engines" / "bundled" / "yamnet" / "model.onnx"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if not MODEL.exists():
        pytest.skip("engines/bundled/yamnet/model.onnx is absent (make yamnet builds it)")
    cfg = EnginesConfig.model_validate(
        {"cache_dir": tmp_path_factory.mktemp("cache"), "backends": ["onnxruntime"]}
    )
    loaded, report = load_engine(discover(None).manifests["yamnet"], cfg)
    assert report.backend == "onnxruntime"
    return loaded


def windows(engine: Engine, audio: F32, stream: str) -> list[Window]:
    samples = engine.spec.audio.samples  # type: ignore[union-attr]
    hop = samples // 2
    return [
        Window(stream, engine.name, i, i * engine.spec.hop_s, i * engine.spec.hop_s + 1.0,
               None, None, audio[s : s + samples])
        for i, s in enumerate(range(0, len(audio) - samples + 1, hop))
    ]  # fmt: skip


def speech(tmp: Path) -> dict[str, F32]:
    """Two espeak-ng voices, resampled to 16 kHz, peak 0.3."""
    out: dict[str, F32] = {}
    for voice in ("en", "en-us+f3"):
        path = tmp / f"{voice}.wav"
        text = "Please move to the side of the road, an ambulance is coming through right now."
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
        with wave.open(str(path)) as f:
            rate = f.getframerate()
            x = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float64)
        y = np.interp(np.arange(int(len(x) * RATE / rate)) / RATE, np.arange(len(x)) / rate, x)
        out[voice] = (0.3 * y / np.abs(y).max()).astype(np.float32)
    return out


def sirens_and_noise(seconds: float) -> dict[str, F32]:
    """Siren-like sweeps with harmonics (wail, yelp) and white/pink noise, peak 0.3."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(3)

    def harmonic(freq: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        phase = 2 * np.pi * np.cumsum(freq) / RATE
        return sum((np.sin(k * phase) / k for k in range(1, 8)), np.zeros(n))

    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / RATE), 1.0)), n)
    signals = {
        "wail": harmonic(900 + 350 * np.sin(2 * np.pi * 0.7 * t)),
        "yelp": harmonic(600 + 800 * ((t * 3) % 1)),
        "white": rng.standard_normal(n),
        "pink": pink,
    }
    return {k: (0.3 * v / np.abs(v).max()).astype(np.float32) for k, v in signals.items()}


def scores(engine: Engine, audio: dict[str, F32]) -> dict[str, list[dict[str, float]]]:
    return {k: engine.infer(windows(engine, v, k)) for k, v in audio.items()}


def test_manifest_maps_audioset_classes_to_scene_labels(engine: Engine) -> None:
    assert set(engine.labels) == {"speech", "siren", "horn", "alarm", "impact"}
    assert engine.spec.audio is not None
    assert engine.spec.audio.sample_rate == RATE
    assert engine.spec.audio.samples == 15600


def test_speech_scores_as_speech_and_sirens_as_siren(engine: Engine, tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: no speech to test against")
    talk = scores(engine, speech(tmp_path))
    other = scores(engine, sirens_and_noise(4.0))
    speech_hits = [w["speech"] > 0.5 for v in talk.values() for w in v]
    print({k: [round(w["speech"], 2) for w in v] for k, v in talk.items()})
    print({k: [round(w["siren"], 2) for w in v] for k, v in other.items()})
    assert len(speech_hits) >= 8
    assert np.mean(speech_hits) >= 0.7  # a window may straddle a pause
    for k in ("wail", "yelp"):
        siren = [w["siren"] for w in other[k]]
        assert np.median(siren) > 0.15, (k, siren)
        assert max(w["speech"] for w in other[k]) < 0.2
    for k in ("white", "pink"):
        assert max(w["siren"] for w in other[k]) < 0.05
        assert max(w["speech"] for w in other[k]) < 0.2
    assert max(w["siren"] for v in talk.values() for w in v) < 0.05


def test_batched_windows_equal_each_window_alone(engine: Engine) -> None:
    audio = sirens_and_noise(3.0)["wail"]
    batch = windows(engine, audio, "s")
    together = engine.infer(batch)
    for w, want in zip(batch, together, strict=True):
        (alone,) = engine.infer([w])
        for label, value in want.items():
            assert alone[label] == pytest.approx(value, abs=1e-5)


def test_real_sound_scoring_takes_an_engine_with_labels_outside_the_scene_set(
    tmp_path: Path,
) -> None:
    # `impact` (an AudioSet engine's label for the collision rule) has no real-sound truth: the
    # evaluation scores the scene labels and leaves it out instead of failing.
    if not MODEL.exists():
        pytest.skip("engines/bundled/yamnet/model.onnx is absent")
    from engines.lab.evaluation.scoring import load_scorer
    from engines.lab.realsounds.evaluate import score_condition, summarise
    from engines.lab.realsounds.manifest import Entry
    from engines.labels import LABELS

    scorer = load_scorer("yamnet", backend="onnxruntime", cache_dir=tmp_path)
    assert "impact" in scorer.labels
    audio = sirens_and_noise(3.0)

    def entry(kind: str, labels: tuple[str, ...]) -> Entry:
        return Entry(kind, "test", "none", "0", kind, "", "CC0", labels, (), kind, "", "eval",
                     "signal check", "")  # fmt: skip

    decoded = [
        (entry("siren_wail", ("siren",)), audio["wail"]),
        (entry("noise", ()), audio["pink"]),
    ]
    scored = score_condition(scorer, decoded, None, "clean")
    assert scored.scores.shape[1] == len(LABELS)
    summary = summarise(scored, scorer.labels)
    assert "impact" not in summary["labels"]
    assert summary["labels"]["siren"]["support"] > 0
