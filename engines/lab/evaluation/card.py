"""`MODEL_CARD.md` for a trained avfusion engine, written from its measured numbers only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engines.lab.training.calibrate import ACTION_MIN_BY_LABEL
from engines.lab.training.trainer import TrainConfig
from engines.runtime.nets.avfusion import AVFusionConfig

CARD = """\
# Model card: `avfusion` (reference audio-visual fusion engine)

Written by `scenestream train` from `training.json` and `metrics.json` in this directory;
every number below was measured by that run (reproduce with `make model`, re-measure with
`scenestream evaluate --engine avfusion --set heldout`).

## What it does
Multi-label scene understanding over 1 s windows (hop 0.5 s) of a camera and a microphone:
8 sigmoid scores in this order: {labels}. `emergency_vehicle` and `collision` are *fused*
labels: decidable only from both modalities together (a siren while emergency lights flash in
view; an impact sound at the instant an approaching object stops).

## Inputs and network
- `video` uint8 `[B, {frames}, {height}, {width}, 3]` at {fps} fps, `audio` float32
  `[B, {samples}]` at {sample_rate} Hz; output `scores` (logits; the runtime applies the sigmoid).
- Preprocessing is in the graph: uint8→float and normalisation; log-mel (frames from
  hop-sized chunks, Hann window, a two-stage 16 x 32 Cooley-Tukey DFT as two matmuls, power,
  64-band mel matmul, log; n_fft 512, hop 160; fp32).
- Video branch: each frame stacked with its difference to the previous frame{long_diff}, a
  4x4 patchify stem and a depthwise-separable 2-D CNN per frame, its 4x4 feature map flattened
  (position and size survive), a temporal conv over frame embeddings and their differences.
  Audio branch: 2-D CNN over the log-mel, pooled to the same {frames} time steps.
- Fusion: the two `[B, C, {frames}]` sequences are concatenated per time step and mixed by
  temporal convs (time-aligned fusion: "at the same instant" is visible to the model); mean and
  max over time plus the last time step (labels describe the window's end), MLP head.
- {params:,} parameters, {gflops:.3f} GFLOPs per window (`torch.utils.flop_counter`), ONNX
  opset 18, {onnx_mb:.1f} MB.

## Data
Generated scenes only (`engines/lab/scenes`): backgrounds, textures, lighting, object shapes and
speeds, camera shake, sensor noise, SNR −5…20 dB, background noise types, reverberation,
espeak-ng voices. Distractors that must not fire the fused labels: sirens with no lights
(radio), flashing lights in silence, impacts with nothing moving, lights and siren seconds
apart. Video variety (`engines/lab/scenes/variety.py`, `camera.py`): red, blue or red/blue
lamps flashing at 1–4 Hz in alternating, together, quad, strobe and rotating rhythms, as roof
pairs, light bars, single beacons or grille lamps, on vehicles or free-standing, from a few
pixels up, some blooming (a wide glow, a core clipped to white), with amber and white lamps in
the same rhythms as negatives; approaches from slow (1.3–1.6x/s) to fast, drifting sideways, in
low contrast, far away (still 6–16 px tall at the window's end), vehicles or plain blocks, with
receding, passing, parked and creeping objects (growing slower than the label's 1.25x/s) as
negatives; wider exposure, noise and shake, a real VP8/H.264 round trip at low bitrate on 15 %
of windows, and stream starts and stops (black, frozen or grey frames) as negatives.
Training: {train_windows} windows (`split="train"`), validation {val_windows}
(`split="val"`); the evaluation below uses `split="heldout"` (unseen backgrounds and voices,
other seeds). Generator fingerprint (hash of `engines/lab/scenes` sources) at evaluation:
`{generator}`; a changed generator invalidates these numbers. Window labels follow the
generator's rule (a label is on when it covers at least half of the window's last
0.3 s, so a window says what is happening at its end; entries marked undecidable are not scored).

## Training
CPU, {threads} threads, seed {seed}: AdamW (lr {lr}, weight decay {wd}), warm-up + cosine
schedule on progress (steps or wall time, whichever is further), batch {batch}, kind-balanced
sampling (exponent {balance}){shortcuts}, masked BCE, modality dropout {mdrop} (silence /
{lost} with the labels that needed them cleared), validation each epoch, early
stopping (patience {patience}), best epoch kept. {augment}{init}Ran {epochs_run} epochs in
{minutes:.1f} min ({stopped}); best validation macro-F1 {best_f1:.4f} at epoch {best_epoch}.

Decision thresholds per label, calibrated on the validation split (best window-level F1 in
0.3–0.8, ties to 0.5; the fused labels from 0.5 up, `emergency_vehicle` from {ev_floor:g}: see
`engines/lab/training/calibrate.py`; `engine.toml` `[thresholds.<label>]` `on`, with `off`
0.2 below):
{thresholds}. The tables below score windows at these thresholds.

## Measured (held-out)
{table}
## Where it falls short
{shortfalls}

<!-- crossgen:begin -->
## Measured on an independent generator
Not measured for this model yet: `scenestream evaluate --engine avfusion --set all --card`
writes the in-generator vs cross-generator table here.
<!-- crossgen:end -->

## Limits
- It knows generated scenes. Real cameras and microphones look and sound different; expect it
  to fail on real footage until trained on real clips.
- Fixed input geometry ({height}x{width}, {fps} fps, {sample_rate} Hz mono, 1 s windows);
  events shorter than about 0.15 s are easily missed, and an object that approaches slowly is
  only called once its growth shows.
- Thresholds are calibrated on generated validation windows; the service's configuration
  (`engines.overrides.avfusion.thresholds`) overrides `[thresholds]` in `engine.toml` for
  other footage.

## Train on your own clips
Put media files (any container/codec FFmpeg decodes, with a video and an audio stream) in a
directory with a `labels.csv`:

```
file,start_s,end_s,label
street1.mp4,4.0,9.5,siren
street1.mp4,4.0,9.5,flashing_lights
street1.mp4,4.0,9.5,emergency_vehicle
quiet.mp4,,,
```

then `scenestream train --data DIR --out my-engines/avfusion` and point
`engines.user_dir` at `my-engines` (a user engine named `avfusion` replaces the bundled one).
Evaluate with `scenestream evaluate --engine avfusion --set DIR`.
"""


def shortfalls(result: dict[str, Any]) -> str:
    """Plain statements of every target missed and every weak event-level figure."""
    lines = [
        f"- Window level: {name} = {t['value']:.3f}, wanted {t['target']}."
        for name, t in result.get("targets", {}).items()
        if not t["pass"]
    ]
    ev = result.get("events")
    if ev:
        target = ev["latency_target_s"]
        for label, s in ev["labels"].items():
            if s["fp"] or s["fn"]:
                lines.append(
                    f"- Events, `{label}`: {s['tp']} found, {s['fn']} missed, {s['fp']} false "
                    f"({s['false_alarms_per_hour']:.1f} false alarms/h) on the scripted scenes."
                )
        p95 = ev["onset_latency_p95_s"]
        verdict = "within" if p95 <= target else "above"
        lines.append(
            f"- Event onset latency p95 {p95:.2f} s (capture clock, before the live budget) is "
            f"{verdict} one hop plus the budget ({target:.2f} s). A window is labelled by its "
            "last 0.3 s, so the first window that can call a label ends about 0.15 s after the "
            "onset plus up to one hop, depending on where the onset falls in the window grid."
        )
    return "\n".join(lines) if lines else "- Every window-level target is met."


def write_card(engine_dir: Path, result: dict[str, Any], table: str) -> Path:
    """Fill the card from `training.json` and the evaluation `result`."""
    training = json.loads((engine_dir / "training.json").read_text())
    cfg, tr, res = training["config"], training["train"], training["result"]
    lags = AVFusionConfig.from_dict(cfg).frame_lags
    text = CARD.format(
        labels=", ".join(f"`{x}`" for x in cfg["labels"]),
        frames=cfg["frames"],
        ev_floor=ACTION_MIN_BY_LABEL["emergency_vehicle"],
        long_diff=(
            f" and to the\n  frame {lags[-1]} back (9 channels; slow growth shows over"
            f" {lags[-1] / cfg['fps']:g} s)"
            if len(lags) > 1
            else " (6 channels)"
        ),
        height=cfg["height"],
        width=cfg["width"],
        fps=cfg["fps"],
        samples=cfg["samples"],
        sample_rate=cfg["sample_rate"],
        params=training["parameters"],
        gflops=training["gflops_per_window"],
        onnx_mb=(engine_dir / "model.onnx").stat().st_size / 1e6,
        train_windows=tr["windows"],
        val_windows=tr["val_windows"],
        threads=training["torch_threads"],
        seed=tr["seed"],
        lr=tr["lr"],
        wd=tr["weight_decay"],
        batch=tr["batch"],
        mdrop=tr["modality_dropout"],
        lost=(
            "a lost picture: black, a flat colour or one frame frozen"
            if tr.get("lost_picture")
            else "black frames"
        ),
        balance=tr.get("kind_balance", 0.0),
        shortcuts=(
            " with windows of flashing lights, no approach and no emergency vehicle drawn up to "
            f"{tr['shortcut_max_weight']:g}x as often (`training/sampling.py`)"
            if tr.get("shortcuts")
            else ""
        ),
        patience=tr["patience"],
        epochs_run=res["epochs_run"],
        minutes=res["minutes"],
        stopped=res["stopped"],
        best_f1=res["best_val_macro_f1"],
        best_epoch=res["best_epoch"],
        table=table,
        shortfalls=shortfalls(result),
        augment=(
            "Augmentation: random audio gain (−12…+6 dB on the log-mel), SpecAugment-style "
            "masks (up to 8 mel bins and 60 ms), mirrored video, a moving camera on 40 % of "
            "rows (vibration, shake or a slow pan; whole-pixel shifts). "
            if tr.get("augment")
            else ""
        ),
        init=(
            f"Fine-tuned from `{Path(tr['init']).name}` ("
            + (
                "lr peak a third of the from-scratch one"
                if math.isclose(tr["lr"], TrainConfig().lr / 3)
                else f"lr peak {tr['lr']:g}, {tr['lr'] / TrainConfig().lr:.2g}x the from-scratch"
            )
            + ")"
            + (
                f", with the {' and '.join(tr['freeze'])} branch kept as it was (weights and "
                "normalisation statistics)"
                if tr.get("freeze")
                else ""
            )
            + ', not trained from scratch; README.md ("Engines") says how the release was made. '
            if tr.get("init")
            else ""
        ),
        thresholds=", ".join(
            f"`{k}` {v:g}" for k, v in training.get("thresholds_val_best_f1", {}).items()
        )
        or "none (0.5 for every label)",
        generator=result.get("generator", "unknown"),
    )
    from engines.lab.realsounds.card import section as real_sound_section

    text += real_sound_section(engine_dir, engine_dir.name)
    path = engine_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path
