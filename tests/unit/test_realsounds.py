"""The real-sound set: its manifest's rules, and the clip → window logic (no downloads: a tiny
synthetic wav written here stands in for a recording)."""

from __future__ import annotations

import math
import struct
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engines.lab.realsounds import clips
from engines.lab.realsounds.fetch import cat_member
from engines.lab.realsounds.manifest import (
    MANIFEST,
    Entry,
    eval_entries,
    load_manifest,
    load_sources,
    train_entries,
    validate,
)
from engines.labels import AUDIO_LABELS, LABELS
from engines.window import AudioSpec, VideoSpec, WindowSpec

RATE = 16000
AVFUSION = WindowSpec(
    1.0,
    0.5,
    video=VideoSpec(frames=8, fps=8.0, height=64, width=64),
    audio=AudioSpec(sample_rate=RATE, samples=RATE),
    labels_at="end",
)
VAD = WindowSpec(0.512, 0.512, audio=AudioSpec(sample_rate=RATE, samples=8192))


# --- the manifest -------------------------------------------------------------------------


def test_the_manifest_breaks_no_rule() -> None:
    assert validate(load_manifest(), load_sources()) == []


def test_no_file_is_in_both_splits() -> None:
    entries = load_manifest()
    keys = Counter(e.key for e in entries)
    assert [k for k, n in keys.items() if n > 1] == []
    assert {e.key for e in eval_entries(entries)}.isdisjoint(e.key for e in train_entries(entries))


def test_every_audio_label_has_evaluation_positives_and_negatives_are_there() -> None:
    ev = eval_entries(load_manifest())
    for label in AUDIO_LABELS:
        assert any(label in e.labels for e in ev), label
    assert sum(1 for e in ev if not e.labels) >= 50


def test_every_row_names_its_licence_and_every_package_is_pinned() -> None:
    entries, sources = load_manifest(), load_sources()
    assert all(e.licence.strip() for e in entries)
    assert all(len(s.sha256) == 64 and s.bytes > 0 for s in sources)
    used = {(e.package, e.version) for e in entries}
    assert used <= {(s.package, s.version) for s in sources}


def test_tuxpaint_readers_do_not_cross_splits() -> None:
    # One reader per language: languages, not files, are split.
    langs: dict[str, set[str]] = {}
    for e in load_manifest():
        if "_desc_" in e.path:
            lang = Path(e.path).stem.rsplit("_desc_", 1)[1]
            langs.setdefault(lang, set()).add(e.split)
    assert langs
    assert all(len(s) == 1 for s in langs.values())


def _entry(**kw: object) -> Entry:
    base: dict[str, object] = {
        "id": "0001",
        "source": "deb",
        "package": "p",
        "version": "1",
        "path": "a.wav",
        "member": "",
        "licence": "GPL-2+",
        "labels": ("siren",),
        "dontcare": (),
        "kind": "siren_wail",
        "origin": "recorded",
        "split": "eval",
        "how": "name",
        "note": "",
    }
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


def test_validate_names_each_broken_rule() -> None:
    from engines.lab.realsounds.manifest import Source

    src = [Source("deb", "p", "1", "p_1_all.deb", "0" * 64, 1)]
    bad = [
        _entry(),
        _entry(id="0002", split="train"),  # the same file in the other split
        _entry(id="0003", path="b.wav", labels=("flashing_lights",)),
        _entry(id="0004", path="c.wav", licence=""),
        _entry(id="0005", path="d.wav", licence="CC-BY-NC-4.0"),
        _entry(id="0006", path="e.wav", labels=("horn",), dontcare=("horn",)),
        _entry(id="0007", path="f.wav", version="2"),
    ]
    errors = "\n".join(validate(bad, src))
    assert "listed twice" in errors
    assert "'flashing_lights' is not an audio label" in errors
    assert "no licence" in errors
    assert "is not free" in errors
    assert "both present and not scored" in errors
    assert "not in sources.csv" in errors
    assert validate([_entry()], src) == []


def test_manifest_header_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("id,file\n1,a.wav\n")
    with pytest.raises(ValueError, match="header"):
        load_manifest(bad)
    assert MANIFEST.exists()


def test_cat_member_reads_an_openttd_sound_set() -> None:
    bodies = [b"RIFF" + bytes([i]) * 10 for i in range(3)]
    titles = [f"sound {i}".encode() for i in range(3)]
    table, blobs, offset = b"", b"", 8 * 3
    for title, body in zip(titles, bodies, strict=True):
        blob = bytes([len(title)]) + title + body
        table += struct.pack("<II", offset | 0x80000000, len(blob))
        blobs += blob
        offset += len(blob)
    data = table + blobs
    assert cat_member(data, 1) == bodies[1]
    with pytest.raises(RuntimeError, match="no #3"):
        cat_member(data, 3)


# --- clip → windows -----------------------------------------------------------------------


def _write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _tone(seconds: float, rate: int, freq: float = 700.0, amp: float = 0.1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def test_decode_resamples_a_wav_to_the_engine_rate(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    _write_wav(path, _tone(1.5, 8000), 8000)
    audio = clips.decode_audio(path, RATE)
    assert audio.dtype == np.float32
    assert abs(len(audio) - 1.5 * RATE) < 0.01 * RATE
    # The tone survives resampling: its spectrum peaks at 700 Hz.
    spectrum = np.abs(np.fft.rfft(audio[2000:18000]))
    assert abs(np.argmax(spectrum) * RATE / 16000 - 700) < 5


def test_active_spans_find_the_bursts_and_bridge_short_pauses() -> None:
    quiet = np.zeros(RATE // 2, np.float32)
    x = np.concatenate([quiet, _tone(1.0, RATE), quiet, _tone(0.5, RATE), quiet])
    spans = clips.active_spans(x, RATE, merge_gap_s=0.0)
    assert len(spans) == 2
    assert spans[0][0] == pytest.approx(0.5, abs=0.03)
    assert spans[0][1] == pytest.approx(1.5, abs=0.03)
    assert spans[1][0] == pytest.approx(2.0, abs=0.03)
    assert len(clips.active_spans(x, RATE, merge_gap_s=0.6)) == 1


def test_normalise_sets_the_active_level() -> None:
    x = np.concatenate([np.zeros(RATE, np.float32), _tone(1.0, RATE, amp=0.01)])
    y = clips.normalise(x, RATE, clips.active_spans(x, RATE))
    rms = clips.active_rms(y, RATE, clips.active_spans(y, RATE))
    assert 20 * math.log10(rms) == pytest.approx(clips.TARGET_DBFS, abs=0.2)


def test_scene_noise_is_at_the_stated_snr() -> None:
    scene = clips.build_scene(_tone(2.0, RATE), RATE, ["siren"], snr_db=10.0, seed=3)
    lead = scene.audio[: round(clips.LEAD_S * RATE) - 10]
    noise_db = 20 * math.log10(float(np.sqrt(np.mean(lead.astype(np.float64) ** 2))))
    assert noise_db == pytest.approx(clips.TARGET_DBFS - 10.0, abs=1.0)
    clean = clips.build_scene(_tone(2.0, RATE), RATE, ["siren"])
    assert not clean.audio[: round(clips.LEAD_S * RATE)].any()


def test_windows_of_a_tone_burst_follow_the_end_of_window_rule() -> None:
    # 0.5 s lead, 2.0 s tone, 0.5 s tail: windows start every 0.5 s up to 2.0 s.
    scene = clips.build_scene(_tone(2.0, RATE), RATE, ["siren"], ["horn"])
    win = clips.scene_windows(scene, AVFUSION)
    assert win.audio.shape == (5, RATE)
    assert list(win.starts) == [0.0, 0.5, 1.0, 1.5, 2.0]
    siren, horn = LABELS.index("siren"), LABELS.index("horn")
    # Ends 1.0 … 3.0 s; the siren sounds 0.5–2.5 s: on at ends 1.0, 1.5, 2.0, 2.5; off at 3.0.
    assert list(win.labels[:, siren]) == [1, 1, 1, 1, 0]
    assert win.care[:, siren].all()
    assert not win.care[:, horn].any()  # `dontcare`: never scored on this clip
    assert not win.labels[:, LABELS.index("speech")].any()
    # The window's audio is the scene's samples at its start.
    np.testing.assert_array_equal(win.audio[1], scene.audio[RATE // 2 : RATE // 2 + RATE])


def test_a_short_clip_still_gives_a_whole_window() -> None:
    scene = clips.build_scene(_tone(0.2, RATE), RATE, ["horn"], min_length_s=1.0)
    assert scene.duration_s >= 1.0
    assert len(clips.scene_windows(scene, AVFUSION).audio) >= 1


def test_whole_window_engines_are_labelled_by_coverage() -> None:
    scene = clips.build_scene(_tone(1.2, RATE), RATE, ["speech"])
    win = clips.scene_windows(scene, VAD)
    speech = LABELS.index("speech")
    # Windows of 0.512 s tile the 2.2 s scene; speech sounds 0.5–1.7 s.
    assert win.audio.shape == (4, 8192)
    assert list(win.labels[:, speech]) == [0, 1, 1, 0]
    # The first window holds 0.012 s of speech: neither on nor cleanly off, not scored.
    assert list(win.care[:, speech]) == [0, 1, 1, 0]


def test_neutral_video_is_still() -> None:
    assert AVFUSION.video is not None
    v = clips.neutral_video(AVFUSION.video)
    assert v.shape == (8, 64, 64, 3)
    assert v.dtype == np.uint8
    assert (v == v[0]).all()
    assert int(v[0, 0, 0, 0]) > int(v[0, -1, 0, 0])  # lighter sky over a darker road


def test_an_alarm_pattern_is_one_interval_across_its_pauses() -> None:
    # T3: three 0.5 s beeps with 0.5 s gaps, a 1.5 s pause, three again.
    beep, gap = _tone(0.5, RATE, freq=3100), np.zeros(RATE // 2, np.float32)
    group = np.concatenate([beep, gap, beep, gap, beep])
    x = np.concatenate([group, np.zeros(round(1.5 * RATE), np.float32), group])
    scene = clips.build_scene(x, RATE, ["alarm"])
    assert len(scene.truth) == 1
    speech = clips.build_scene(x, RATE, ["speech"])
    assert len(speech.truth) == 2  # a 1.5 s silence ends an utterance


# --- the signal check behind the labels ---------------------------------------------------


def test_probe_tells_a_sweep_a_two_tone_a_steady_tone_and_noise_apart() -> None:
    from engines.lab.realsounds.probe import probe

    t = np.arange(3 * RATE) / RATE
    # A wail: 600–1,300 Hz, 4 s period (phase = integral of the frequency).
    freq = 950 + 350 * np.sin(2 * math.pi * t / 4)
    wail = (0.3 * np.sin(2 * math.pi * np.cumsum(freq) / RATE)).astype(np.float32)
    hi_lo = np.where((t % 1.0) < 0.5, 420.0, 580.0)
    two_tone = (0.3 * np.sin(2 * math.pi * np.cumsum(hi_lo) / RATE)).astype(np.float32)
    steady = _tone(3.0, RATE, freq=440.0, amp=0.3)
    noise = np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32) * 0.1
    assert probe(wail).shape == "sweep"
    assert probe(two_tone).shape == "two-tone"
    assert probe(steady).shape == "steady"
    assert probe(noise).shape == "noise"


# --- the model card section and the missing-data error -----------------------------------


def test_card_section_quotes_the_table_only_for_the_model_it_measured(tmp_path: Path) -> None:
    import json

    from engines.lab.realsounds.card import file_sha256, section

    assert section(tmp_path, "e") == ""  # never evaluated on the set: no section
    (tmp_path / "model.onnx").write_bytes(b"model one")
    (tmp_path / "realsounds.md").write_text("| speech | clean | 0.5 |\n")
    measured = {"model_sha256": file_sha256(tmp_path / "model.onnx")}
    (tmp_path / "realsounds.json").write_text(json.dumps(measured))
    text = section(tmp_path, "e")
    assert "| speech | clean | 0.5 |" in text
    assert "tuxpaint-stamps-default" in text  # the sources and licences table
    (tmp_path / "model.onnx").write_bytes(b"model two")
    stale = section(tmp_path, "e")
    assert "Stale" in stale
    assert "| speech | clean | 0.5 |" not in stale


def test_evaluating_without_the_clips_says_how_to_fetch_them(tmp_path: Path) -> None:
    from engines.errors import UserError
    from engines.lab.realsounds.evaluate import _entries_with_clips

    with pytest.raises(UserError, match=r"engines\.lab\.realsounds\.fetch"):
        _entries_with_clips(tmp_path)


def test_confusions_name_the_negative_kinds_a_label_fires_on_most() -> None:
    from engines.lab.realsounds.card import confusions

    def r(rate: float | None, n: int) -> dict[str, object]:
        return {"rate": rate, "hits": 0, "windows": n}

    result = {
        "conditions": {
            "clean": {
                "labels": {"siren": {}},
                "fpr_by_kind": {
                    "music": {"siren": r(0.4, 50)},
                    "ui": {"siren": r(0.6, 20)},
                    "bell": {"siren": r(1.0, 2)},  # too few windows to rank
                    "traffic": {"siren": r(0.0, 30)},  # never fires: not a confusion
                    "all negatives": {"siren": r(0.3, 102)},
                },
            }
        }
    }
    assert confusions(result) == "- `siren` fires most on: ui 60% of 20, music 40% of 50 windows.\n"
