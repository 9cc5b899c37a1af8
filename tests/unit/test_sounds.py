"""The training generator's sound families: pitch and rhythm in their documented ranges,
stateless rendering, unlabelled distractors, levels, and real recordings with honest labels."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engines.lab.scenes.compose import compose_scene
from engines.lab.scenes.dataset import LEVEL_DBFS, example_scene
from engines.lab.scenes.pools import random_look
from engines.lab.scenes.sounds.alarms import draw_alarm
from engines.lab.scenes.sounds.distractors import DISTRACTOR_STYLES, draw_distractor
from engines.lab.scenes.sounds.horns import HORN_STYLES, draw_horn
from engines.lab.scenes.sounds.noises import NOISE_KINDS, NoiseBurst
from engines.lab.scenes.sounds.sirens import SIREN_STYLES, draw_siren, siren_pattern
from engines.lab.scenes.sounds.tonal import SPEED_OF_SOUND, Doppler, Pattern, Tone, timbre
from engines.window import AudioSpec, VideoSpec, WindowSpec

pytestmark = pytest.mark.unit

SR = 16000
F64 = npt.NDArray[np.float64]


def render(src: object, t0: float, seconds: float, sr: int = SR) -> F64:
    k = round(t0 * sr) + np.arange(round(seconds * sr), dtype=np.int64)
    out: F64 = src.render(k, sr)  # type: ignore[attr-defined]
    return out


def peak_track(x: F64, sr: int = SR, frame_s: float = 0.02) -> F64:
    """The strongest frequency of each frame (Hz), Hann-windowed, zero-padded to 4 Hz bins."""
    n = round(frame_s * sr)
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    spec = np.abs(np.fft.rfft(frames, sr // 4, axis=1))
    return np.asarray(np.argmax(spec, axis=1) * 4.0, dtype=np.float64)


def envelope_runs(x: F64, sr: int = SR, frame_s: float = 0.01) -> list[tuple[bool, float]]:
    """(on?, duration s) runs of a 10 ms RMS envelope thresholded at a quarter of its peak."""
    n = round(frame_s * sr)
    rms = np.sqrt(np.mean(x[: len(x) // n * n].reshape(-1, n) ** 2, axis=1))
    on = rms > 0.25 * rms.max()
    runs: list[tuple[bool, float]] = []
    for v in on:
        if runs and runs[-1][0] == bool(v):
            runs[-1] = (bool(v), runs[-1][1] + frame_s)
        else:
            runs.append((bool(v), frame_s))
    return runs


# --- statelessness ------------------------------------------------------------------------------


def test_a_tone_renders_the_same_in_20_ms_chunks_as_in_one_window() -> None:
    tone = Tone(
        0.3, 3.7, Pattern("sweep", 500, 1500, 0.27, 0.8), timbre("square", 16), voices=(1.0, 1.2),
        gate=(0.3, 0.1), drive=3.0, band=(300.0, 4000.0), vibrato=(5.0, 0.01),
        doppler=Doppler(2.0, 25.0, 6.0), offset_s=0.11,
    )  # fmt: skip
    whole = render(tone, 0.0, 4.0, 48000)
    chunks = np.concatenate([render(tone, i * 0.02, 0.02, 48000) for i in range(200)])
    assert np.max(np.abs(whole - chunks)) < 1e-9
    assert np.all(whole[: round(0.3 * 48000)] == 0.0)


# --- sirens --------------------------------------------------------------------------------------

SIREN_RANGES = {  # (lowest lo, highest hi, shortest period, longest period), as documented
    "wail": (450, 1800, 2.0, 6.0), "yelp": (450, 1800, 1 / 7.0, 1 / 2.5),
    "hilo": (400, 1500, 0.5, 1.6), "twotone": (350, 980, 1.0, 3.0),
    "phaser": (700, 3000, 1 / 20.0, 1 / 8.0), "rumbler": (180, 400, 1 / 6.0, 5.0),
    "mechanical": (150, 1400, 4.0, 10.0),
}  # fmt: skip


@pytest.mark.parametrize("style", SIREN_STYLES)
def test_siren_patterns_stay_in_their_documented_ranges(style: str) -> None:
    lo, hi, p_min, p_max = SIREN_RANGES[style]
    rng = np.random.default_rng(1)
    for _ in range(40):
        pat = siren_pattern(rng, style)
        f = pat.freq(np.linspace(0, 1, 400, endpoint=False))
        assert lo - 1 <= f.min(), (style, f.min())
        assert f.max() <= hi + 1, (style, f.max())
        assert p_min - 1e-9 <= pat.period <= p_max + 1e-9
        assert f.max() - f.min() > (50 if style != "mechanical" else 300)  # it moves


def test_a_pure_sine_wail_sounds_its_pattern_and_repeats_with_its_period() -> None:
    pat = Pattern("sweep", 600.0, 1400.0, 3.0, 0.5)
    x = render(Tone(0.0, 9.0, pat, timbre("sine")), 0.0, 9.0)
    track = peak_track(x)[5:-5]
    assert 560 <= track.min() <= 680
    assert 1340 <= track.max() <= 1440
    lags = np.arange(50, 250)  # 1–5 s in 20 ms frames
    centred = track - track.mean()
    ac = [np.dot(centred[:-lag], centred[lag:]) / (len(centred) - lag) for lag in lags]
    assert abs(lags[int(np.argmax(ac))] * 0.02 - 3.0) < 0.1


def test_every_siren_style_and_timbre_renders_unit_level_sound() -> None:
    rng = np.random.default_rng(5)
    for style in SIREN_STYLES:
        for _ in range(6):
            x = render(draw_siren(rng, style, 0.0, 3.0), 1.0, 1.0)
            rms = float(np.sqrt(np.mean(x**2)))
            assert np.all(np.isfinite(x))
            assert 0.05 < rms < 2.0, (style, rms)


def test_a_doppler_pass_by_falls_in_pitch_by_the_expected_ratio() -> None:
    speed = 25.0
    tone = Tone(0.0, 10.0, Pattern("steps", 800, 800, 0.1, steps=(800.0,)), timbre("sine"),
                doppler=Doppler(5.0, speed, 5.0))  # fmt: skip
    track = peak_track(render(tone, 0.0, 10.0))
    before, after = np.median(track[25:100]), np.median(track[-100:-25])
    assert before == pytest.approx(800 * SPEED_OF_SOUND / (SPEED_OF_SOUND - speed), abs=12)
    assert after == pytest.approx(800 * SPEED_OF_SOUND / (SPEED_OF_SOUND + speed), abs=12)


# --- horns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", HORN_STYLES)
def test_horn_fundamentals_are_within_250_to_1000_hz(style: str) -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        tone = draw_horn(rng, style, 0.0, 2.0)
        f0 = tone.pattern.steps[0]
        assert 250 <= f0 <= 1000
        assert 1 <= len(tone.voices) <= 3
        assert all(250 <= f0 * v <= 1600 for v in tone.voices)
    held = Tone(0.0, 2.0, Pattern("steps", 400, 400, 0.1, steps=(400.0,)), timbre("sine"))
    assert np.median(peak_track(render(held, 0.5, 1.0))) == pytest.approx(400, abs=4)


# --- alarms --------------------------------------------------------------------------------------


def test_a_smoke_alarm_beeps_three_times_then_pauses_near_3_khz() -> None:
    rng = np.random.default_rng(3)
    tone = draw_alarm(rng, "smoke", 0.0, 20.0)
    x = render(tone, 0.0, 12.0)
    runs = envelope_runs(x)[1:-1]  # whole runs only
    offs = [d for on, d in runs if not on]
    ons = [d for on, d in runs if on]
    assert all(0.35 <= d <= 0.65 for d in ons)
    long_gaps = [i for i, d in enumerate(offs) if d > 1.2]
    assert len(long_gaps) >= 2
    assert all(b - a == 3 for a, b in itertools.pairwise(long_gaps))
    frames = x[: len(x) // 320 * 320].reshape(-1, 320)
    loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.5
    assert 2800 - 8 <= np.median(peak_track(x)[loud]) <= 3600 + 8


def test_a_co_alarm_beeps_four_times_then_pauses() -> None:
    x = render(draw_alarm(np.random.default_rng(4), "co", 0.0, 20.0), 0.0, 10.0)
    runs = envelope_runs(x, frame_s=0.005)[1:-1]
    offs = [d for on, d in runs if not on]
    long_gaps = [i for i, d in enumerate(offs) if d > 0.5]
    assert len(long_gaps) >= 2
    assert all(b - a == 4 for a, b in itertools.pairwise(long_gaps))


def test_a_fire_bell_strikes_10_to_25_times_a_second() -> None:
    rng = np.random.default_rng(6)
    for _ in range(5):
        x = render(draw_alarm(rng, "bell", 0.0, 3.0), 0.5, 2.0)
        env = np.abs(x).reshape(-1, 16).max(axis=1)  # 1 ms peaks
        env = env - env.mean()
        ac = np.array([np.dot(env[:-lag], env[lag:]) for lag in range(30, 110)])
        rate = 1000.0 / (30 + int(np.argmax(ac)))
        assert 9.5 <= rate <= 26


def test_buzzers_are_low_and_clock_beeps_come_in_groups() -> None:
    rng = np.random.default_rng(7)
    for _ in range(10):
        assert 50 <= draw_alarm(rng, "buzzer", 0.0, 2.0).pattern.steps[0] <= 400
    clock = draw_alarm(rng, "clock", 0.0, 10.0)
    beeps = [on for on, _ in envelope_runs(render(clock, 0.0, 6.0), frame_s=0.005)].count(True)
    group = (len(clock.gate)) // 2
    cycle = sum(clock.gate)
    assert abs(beeps - 6.0 / cycle * group) <= group + 1


# --- distractors and noise: no labels ----------------------------------------------------------


def test_distractors_and_noise_carry_no_label() -> None:
    rng = np.random.default_rng(8)
    segments = [("tonal", 0.5 + i, 1.5 + i, {"distractor": s}) for i, s in
                enumerate(DISTRACTOR_STYLES)]  # fmt: skip
    segments += [("noise", 0.5 + i, 1.5 + i, {"noise": k}) for i, k in enumerate(NOISE_KINDS)]
    scene = compose_scene(
        "d", 10.0, rng=rng, split="train", look=random_look(rng, "train"), ambience=None,
        segments=segments,
    )  # fmt: skip
    assert scene.truth == []
    x = scene.render_audio(0.0, 10 * SR, SR)
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 0.01  # they do sound


def test_every_distractor_style_and_noise_kind_renders() -> None:
    rng = np.random.default_rng(9)
    for style in DISTRACTOR_STYLES:
        x = render(draw_distractor(rng, style, 0.0, 4.0), 0.0, 4.0)
        assert np.all(np.isfinite(x))
        assert 0.05 < np.sqrt(np.mean(x**2)) < 3.0, style
    for kind in NOISE_KINDS:
        x = render(NoiseBurst(0.0, 2.0, kind, 3), 0.5, 1.0)
        assert 0.3 < np.sqrt(np.mean(x**2)) < 2.0, kind  # unit RMS over the loop


def test_training_windows_are_mixed_between_minus_35_and_minus_10_dbfs() -> None:
    spec = WindowSpec(1.0, 0.5, VideoSpec(8, 8.0, 64, 64), AudioSpec(16000, 16000))
    lo, hi = (10 ** (d / 20) for d in LEVEL_DBFS)
    levels = []
    for i in range(60):
        scene, _ = example_scene(i, spec, seed=11, split="train")
        mix = scene.mix
        level = max([mix.ambience_gain, *(g for _, g in mix.sources)])
        assert lo * 0.999 <= level <= hi * 1.001
        levels.append(20 * np.log10(level))
    assert max(levels) - min(levels) > 15  # the whole range is used


# --- real recordings -----------------------------------------------------------------------------


def _write_wav(path: Path, x: F64, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def test_recordings_come_from_the_train_split_with_their_own_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines.lab.realsounds.manifest import load_manifest
    from engines.lab.scenes.sounds import recordings

    entries = load_manifest()
    speech = next(e for e in entries if e.split == "train" and e.labels == ("speech",))
    excluded = next(e for e in entries if e.id in recordings.EXCLUDED)
    quiet = next(e for e in entries if e.split == "train" and not e.labels and not e.dontcare
                 and e.id not in recordings.EXCLUDED)  # fmt: skip
    unsure = next(e for e in entries if e.split == "train" and e.dontcare)
    held = next(e for e in entries if e.split == "eval")
    t = np.arange(3 * SR) / SR
    burst = np.where((t > 0.5) & (t < 1.5), 0.3 * np.sin(2 * np.pi * 300 * t), 0.0)
    for e in (speech, quiet, unsure, held, excluded):
        _write_wav(tmp_path / "real" / "clips" / e.clip_name.replace(e.suffix, ".wav"), burst)
        if e.suffix != ".wav":  # the decoder reads by content; keep the manifest's name
            (tmp_path / "real" / "clips" / e.clip_name.replace(e.suffix, ".wav")).rename(
                tmp_path / "real" / "clips" / e.clip_name
            )
    monkeypatch.setenv("SCENESTREAM_REAL_CACHE", str(tmp_path / "real"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(recordings, "REPO_ROOT", tmp_path / "none")
    monkeypatch.chdir(tmp_path)
    recordings.recording_bank.cache_clear()
    try:
        bank = {r.id: r for r in recordings.recording_bank()}
        assert set(bank) == {speech.id, quiet.id}  # no dontcare, never eval
        assert bank[speech.id].labels == ("speech",)
        assert bank[quiet.id].labels == ()
        (a, b), *rest = bank[speech.id].spans
        assert not rest
        assert abs(a - 0.5) < 0.03
        assert abs(b - 1.5) < 0.03
        recordings.recording_bank.cache_clear()
        again = recordings.recording_bank()  # from the decoded cache
        assert [r.id for r in again] == list(bank)
        assert np.array_equal(again[0].samples, bank[again[0].id].samples)
    finally:
        recordings.recording_bank.cache_clear()
