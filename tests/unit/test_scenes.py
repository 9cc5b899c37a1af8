"""The scene generator: determinism, continuity, and labels that match what is drawn and played."""

from __future__ import annotations

import itertools
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.lab.scenes.base import LABELS, LabelInterval, SceneRenderer
from engines.lab.scenes.registry import list_scenarios, load_scenario
from engines.lab.scenes.render import render_files
from engines.lab.scenes.scene import Scene
from engines.lab.scenes.script import ScriptError, build_script, load_script, parse_script
from engines.lab.scenes.truth import Impact, Stop, derive_truth, window_care, window_labels

pytestmark = pytest.mark.unit

QUIET_LOOK = {"backdrop": "street", "shake": 0.0, "noise": 0.0, "gain": 1.0}


def scripted(segments: list[dict[str, Any]], *, ambience: str = "street", seed: int = 0,
             duration: float = 12.0, reverb: float | bool = False) -> Scene:  # fmt: skip
    data = {"name": "t", "duration": duration, "look": QUIET_LOOK,
            "sound": {"ambience": ambience, "reverb": reverb}, "segment": segments}  # fmt: skip
    return build_script(parse_script(data), seed=seed)


def intervals(scene: SceneRenderer, label: str) -> list[tuple[float, float]]:
    return [(iv.start_s, iv.end_s) for iv in scene.truth if iv.label == label]


# --- determinism and the rendering contract ----------------------------------------------------


def test_same_seed_renders_identically_and_another_seed_differs() -> None:
    a, b, c = (load_scenario("emergency", seed=s) for s in (3, 3, 4))
    for t in (1.0, 6.3):
        assert np.array_equal(a.render_video(t, 48, 64), b.render_video(t, 48, 64))
    assert np.array_equal(a.render_audio(5.0, 4000, 16000), b.render_audio(5.0, 4000, 16000))
    assert not np.array_equal(a.render_video(6.3, 48, 64), c.render_video(6.3, 48, 64))
    assert a.truth == b.truth


def test_video_renders_at_the_requested_size() -> None:
    scene = load_scenario("emergency")
    for h, w in ((64, 64), (480, 640), (37, 91)):
        frame = scene.render_video(6.0, h, w)
        assert frame.shape == (h, w, 3)
        assert frame.dtype == np.uint8


@pytest.mark.parametrize("reverb", [False, 0.6])
def test_audio_chunks_join_exactly(reverb: float | bool) -> None:
    scene = scripted([{"kind": "emergency_vehicle", "start": 0.5, "end": 2.5},
                      {"kind": "speech", "start": 0.2, "end": 2.0},
                      {"kind": "impact", "start": 1.0, "end": 2.0, "at": 1.3}],
                     reverb=reverb, duration=3.0)  # fmt: skip
    sr, chunk = 48000, 960
    whole = scene.render_audio(0.9, 50 * chunk, sr)
    parts = [scene.render_audio(0.9 + i * chunk / sr, chunk, sr) for i in range(50)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
    assert whole.dtype == np.float32
    assert np.max(np.abs(whole)) <= 1.0


# --- labels match the pixels and the samples ---------------------------------------------------


def colour_scores(frame: np.ndarray) -> tuple[float, float]:
    """Mean saturated-red and saturated-blue excess of a frame."""
    f = frame.astype(np.float64) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return float(np.mean(np.clip(r - np.maximum(g, b), 0, None))), float(
        np.mean(np.clip(b - np.maximum(r, g), 0, None))
    )


def test_emergency_lights_alternate_red_and_blue_only_where_labelled() -> None:
    scene = load_scenario("emergency", seed=1)
    assert intervals(scene, "flashing_lights") == [(4.0, 9.0)]
    times = np.arange(0.0, 12.0, 1 / 8)
    diff = np.array([np.subtract(*colour_scores(scene.render_video(t, 96, 128))) for t in times])
    inside = (times >= 4.3) & (times < 9.0)
    outside = (times < 3.9) | (times >= 9.1)
    swing_in = np.std(np.diff(diff[inside]))
    swing_out = np.std(np.diff(diff[outside]))
    assert swing_in > 5 * swing_out + 1e-4, (swing_in, swing_out)
    # red and blue really alternate: the red-minus-blue score changes sign within the span
    centred = diff[inside] - np.median(diff[inside])
    assert np.sum(np.diff(np.sign(centred)) != 0) >= 6


def test_hazard_lights_are_not_flashing_lights_and_siren_with_them_is_not_emergency() -> None:
    scene = load_scenario("hazard-lights", seed=2)
    labels = {iv.label for iv in scene.truth}
    assert "siren" in labels
    assert "flashing_lights" not in labels
    assert "emergency_vehicle" not in labels
    grey = scripted([{"kind": "hazard_lights", "start": 1.0, "end": 11.0,
                      "colour": [0.5, 0.5, 0.5]}])  # fmt: skip
    frames = [grey.render_video(t, 64, 64) for t in np.arange(1.0, 11.0, 0.25)]
    red = np.array([colour_scores(f)[0] for f in frames])
    on = red > 0.5 * (red.min() + red.max())
    assert np.ptp(red) > 0.01  # the amber lamps blink (amber is red-dominant)...
    f = np.stack(frames).astype(np.float64) / 255
    blue = np.sum((f[..., 2] > 0.6) & (f[..., 2] - np.maximum(f[..., 0], f[..., 1]) > 0.3), (1, 2))
    assert blue[on].max() <= blue[~on].min()  # ...and they never add anything blue


def object_area(scene: Scene, t: float, empty: np.ndarray) -> int:
    frame = scene.render_video(t, 96, 128).astype(np.int16)
    return int(np.count_nonzero(np.abs(frame - empty).max(axis=-1) > 12))


def test_approaching_object_grows_then_stops_with_the_impact() -> None:
    stop = 6.5
    scene = scripted([{"kind": "collision", "start": 3.0, "end": 9.0, "stop_at": stop,
                       "snr_db": 15}], ambience="wind")  # fmt: skip
    assert intervals(scene, "approaching_object") == [(3.0, stop)]
    assert intervals(scene, "collision") == [(stop, stop + 0.5)]
    empty = scene.render_video(2.0, 96, 128).astype(np.int16)
    areas = [object_area(scene, t, empty) for t in np.arange(3.25, stop, 0.5)]
    assert all(b > a for a, b in itertools.pairwise(areas)), areas
    assert areas[-1] > 4 * areas[0]
    after = [object_area(scene, t, empty) for t in (stop + 0.2, stop + 1.0, stop + 2.0)]
    assert max(after) - min(after) <= 0.02 * max(after)
    # the impact sound starts at the stop: the first loud sample is within 10 ms of it
    sr = 16000
    audio = scene.render_audio(5.0, 3 * sr, sr)
    onset = 5.0 + np.argmax(np.abs(audio) > 0.5 * np.max(np.abs(audio))) / sr
    assert abs(onset - stop) < 0.01


def band_power(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum())


@pytest.mark.parametrize("ambience", ["street", "crowd", "hum"])
def test_siren_energy_only_in_its_labelled_span(ambience: str) -> None:
    scene = scripted([{"kind": "siren", "start": 4.0, "end": 8.0, "siren": "wail",
                       "snr_db": 6}], ambience=ambience)  # fmt: skip
    assert intervals(scene, "siren") == [(4.0, 8.0)]
    sr = 16000
    power = [band_power(scene.render_audio(t, sr // 2, sr), sr, 450, 1750)
             for t in np.arange(0.0, 12.0, 0.5)]  # fmt: skip
    inside = [p for t, p in zip(np.arange(0, 12, 0.5), power, strict=True) if 4 <= t < 7.5]
    outside = [p for t, p in zip(np.arange(0, 12, 0.5), power, strict=True) if t < 3.5 or t >= 8]
    assert min(inside) > 3 * max(outside)


def test_radio_siren_has_no_emergency_vehicle() -> None:
    labels = {iv.label for iv in load_scenario("radio-siren").truth}
    assert "siren" in labels
    assert labels.isdisjoint({"flashing_lights", "emergency_vehicle"})


def test_separated_lights_and_siren_give_no_fused_label() -> None:
    labels = {iv.label for iv in load_scenario("separated").truth}
    assert {"siren", "flashing_lights"} <= labels
    assert "emergency_vehicle" not in labels


def test_impact_with_nothing_moving_is_not_a_collision() -> None:
    scene = load_scenario("collision")
    assert len(intervals(scene, "collision")) == 1  # the stop at 6.5 s, not the lone impact
    assert intervals(scene, "collision")[0][0] == pytest.approx(6.5)


def test_speech_is_labelled_where_utterances_play() -> None:
    scene = load_scenario("conversation")
    spans = intervals(scene, "speech")
    assert len(spans) == 1  # pauses between utterances are bridged: one conversation
    assert spans[0][0] == pytest.approx(1.0)
    assert 10.0 < spans[0][1] <= 11.0
    sr = 16000
    loud = scene.render_audio(spans[0][0] + 0.1, sr // 2, sr)
    assert np.sqrt(np.mean(loud**2)) > 0.05


# --- truth derivation and the window rule ------------------------------------------------------


def test_fused_labels_are_derived_from_overlap_and_coincidence() -> None:
    prims = [LabelInterval("siren", 1.0, 5.0), LabelInterval("flashing_lights", 3.0, 8.0)]
    truth = derive_truth(prims, [Stop(10.0)], [Impact(10.05), Impact(12.0)])
    fused = [(iv.label, iv.start_s, iv.end_s) for iv in truth if iv.label in LABELS[6:]]
    assert fused == [("emergency_vehicle", 3.0, 5.0), ("collision", 10.05, 10.55)]
    phrases = [LabelInterval("speech", 0.0, 1.0), LabelInterval("speech", 1.4, 2.0),
               LabelInterval("speech", 3.0, 4.0)]  # fmt: skip
    assert [(iv.start_s, iv.end_s) for iv in derive_truth(phrases, [], [])] == [
        (0.0, 2.0), (3.0, 4.0)]  # fmt: skip
    apart = derive_truth([LabelInterval("siren", 0, 2), LabelInterval("flashing_lights", 4, 6)],
                         [], [])  # fmt: skip
    assert all(iv.label != "emergency_vehicle" for iv in apart)


def test_window_rule_judges_the_tail_and_the_collision_zone() -> None:
    truth = [LabelInterval("siren", 1.0, 1.5), LabelInterval("collision", 2.7, 3.2)]
    siren, collision = LABELS.index("siren"), LABELS.index("collision")
    # The siren starts at 1.0 s: a window is positive once it has 0.15 s of it in its last
    # 0.3 s, wherever the rest of the window is.
    assert window_labels(truth, 0.2, 1.2)[siren] == 1.0  # 2/3 of the tail
    assert window_care(truth, 0.2, 1.2)[siren] == 0.0  # borderline: not scored
    assert window_labels(truth, 0.1, 1.1)[siren] == 0.0  # 1/3 of the tail
    assert window_labels(truth, 0.3, 1.3)[siren] == 1.0
    assert window_care(truth, 0.3, 1.3)[siren] == 1.0  # tail fully covered
    assert window_labels(truth, 0.05, 1.05)[siren] == 0.0  # 0.05 s of siren so far
    assert window_care(truth, 0.05, 1.05)[siren] == 1.0
    # It ends at 1.5 s: 0.5 s of siren in a window whose tail is silent is negative...
    assert window_labels(truth, 0.8, 1.8)[siren] == 0.0
    assert window_care(truth, 0.8, 1.8)[siren] == 1.0
    # ...and a window shorter than the tail is judged whole.
    assert window_labels(truth, 1.2, 1.4)[siren] == 1.0
    assert window_labels(truth, 2.0, 3.0)[collision] == 1.0  # impact at 0.7 L
    assert window_labels(truth, 2.5, 3.5)[collision] == 0.0  # impact at 0.2 L
    assert window_care(truth, 2.5, 3.5)[collision] == 0.0
    assert window_care(truth, 5.0, 6.0).tolist() == [1.0] * len(LABELS)


# --- scripts, registry, files ------------------------------------------------------------------


def test_shipped_scenarios_all_load() -> None:
    names = list_scenarios()
    for required in ("sync", "street", "emergency", "radio-siren", "conversation"):
        assert required in names
    for name in names:
        scene = load_scenario(name, seed=1, split="heldout")
        assert scene.name == name
    assert load_scenario("street").truth == []


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ({"kind": "sirene", "start": 1, "end": 2}, "segment 1: unknown kind 'sirene'"),
        ({"kind": "siren", "start": 1}, "segment 1: missing 'end'"),
        ({"kind": "siren", "start": 3, "end": 2}, "needs 0 <= start < end"),
        ({"kind": "siren", "start": 1, "end": 2, "pitch": 3}, "unknown key 'pitch'"),
        ({"kind": "siren", "start": "a", "end": 2}, "start must be a number"),
    ],
)
def test_script_errors_name_the_segment_and_the_key(segment: dict[str, Any], message: str) -> None:
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_script({"duration": 5, "segment": [segment]}, source="s.toml")


def test_script_errors_from_values_and_files(tmp_path: Path) -> None:
    bad = parse_script({"duration": 5, "segment": [
        {"kind": "siren", "start": 1, "end": 2, "siren": "woop"}]})  # fmt: skip
    with pytest.raises(ScriptError, match="siren must be one of wail, yelp, hilo"):
        build_script(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("duration = [\n")
    with pytest.raises(ScriptError, match=r"broken\.toml: invalid TOML"):
        load_script(broken)
    with pytest.raises(ScriptError, match="unknown scenario 'nope'"):
        load_scenario("nope")
    with pytest.raises(ScriptError, match="missing 'duration'"):
        parse_script({})
    with pytest.raises(ScriptError, match=r"\[look\] shake must be in \[0.0, 0.04\], not 0.5"):
        parse_script({"duration": 5, "look": {"shake": 0.5}})


def test_render_files_writes_y4m_wav_and_truth(tmp_path: Path) -> None:
    scene = load_scenario("emergency")
    files = render_files(scene, tmp_path, seconds=1.0, fps=10, height=48, width=64,
                         sample_rate=16000)  # fmt: skip
    data = files.video.read_bytes()
    header, _, body = data.partition(b"\n")
    assert header == b"YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg"
    frame_bytes = len(b"FRAME\n") + 64 * 48 * 3 // 2
    assert len(body) == 10 * frame_bytes
    with wave.open(str(files.audio)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() == 16000
    doc = json.loads(files.truth.read_text())
    assert doc["scenario"] == "emergency"
    assert doc["labels"] == list(LABELS)
    assert doc["truth"] == []  # nothing happens in the first second
    with pytest.raises(ValueError, match="endless"):
        render_files(load_scenario("sync"), tmp_path)


def test_speech_bank_falls_back_to_formant_speech_without_espeak(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import shutil

    from engines.lab.scenes import speech

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(speech, "VOICES", {"train": ("a", "b"), "heldout": ("c",)})
    speech.speech_bank.cache_clear()
    try:
        bank = speech.speech_bank("heldout")
        assert len(bank) == speech.CLIPS_PER_VOICE
        assert list(tmp_path.glob("scenestream/speech-v*-formant-heldout.npz"))
        for clip in bank:
            assert len(clip) > 0.5 * speech.SR
            assert np.sqrt(np.mean(clip**2)) == pytest.approx(1.0, rel=1e-3)
            # syllables: the 10 ms energy envelope rises and falls several times a second
            env = np.sqrt(np.mean(clip[: len(clip) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
            crossings = np.sum(np.diff(np.sign(env - np.median(env))) != 0)
            assert crossings >= 2 * len(clip) / speech.SR
        assert speech.speech_bank("heldout") is bank  # built once per process
    finally:
        speech.speech_bank.cache_clear()


def test_a_script_file_path_loads_like_a_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'duration = 6.0\n[sound]\nambience = "rain"\n'
        '[[segment]]\nkind = "horn"\nstart = 1.0\nend = 3.0\n'
    )
    scene = load_scenario(str(path), seed=2)
    assert scene.name == "mine"
    assert scene.duration_s == 6.0
    assert [(iv.label, iv.start_s, iv.end_s) for iv in scene.truth] == [("horn", 1.0, 3.0)]
    with pytest.raises(ScriptError, match="no such script file"):
        load_scenario(str(tmp_path / "missing.toml"))


def test_render_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engines.lab.scenes.render import main

    out = tmp_path / "out"
    args = ["radio-siren", "--out", str(out), "--seconds", "0.5", "--size", "32x24", "--fps", "4"]
    assert main(args) == 0
    assert (out / "radio-siren.y4m").exists()
    assert main(["nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("render: unknown scenario 'nope'")


def test_a_creeping_vehicle_grows_below_the_label_rate_and_is_not_approaching() -> None:
    """Traffic rolling forward (`creep`) grows, slower than 1.25x/s: a negative that teaches
    the label's rate, not "anything growing"."""
    from engines.lab.scenes.compose import compose_scene
    from engines.lab.scenes.pools import random_look
    from engines.lab.scenes.segments import CREEP_GROWTH
    from engines.lab.scenes.sprites import MIN_APPROACH_GROWTH

    rng = np.random.default_rng(4)
    for i in range(6):
        scene = compose_scene(
            "creep", 6.0, rng=rng, split="train", look=random_look(rng, "train"),
            ambience="silence", segments=[("vehicle", 0.5, 5.5, {"motion": "creep"})],
        )  # fmt: skip
        (v,) = scene.vehicles
        assert v.motion.kind == "creep", i
        assert CREEP_GROWTH[0] - 1e-9 <= v.motion.growth_per_s <= CREEP_GROWTH[1] + 1e-9
        assert v.motion.growth_per_s < MIN_APPROACH_GROWTH
        _, _, s = v.motion.at(np.array([1.0, 5.0]))
        assert s[1] > s[0]  # it does grow
        assert not [iv for iv in scene.truth if iv.label == "approaching_object"]
