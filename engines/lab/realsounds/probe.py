"""Signal checks behind the manifest's labels (listen-free), and a report over the fetched clips.

    python -m engines.lab.realsounds.probe [--cache DIR] [--split eval|train|all]

Per clip: duration, the fraction of tonal frames (spectral flatness in 250–4,000 Hz under
0.05), the 10th–90th percentile of the dominant frequency over tonal frames, `glide`: the
fraction of tonal frames whose pitch 128 ms later has moved by 20–400 Hz (a sweep keeps moving;
notes, beeps and horns hold still between jumps), and a `shape`:

* `sweep`: mostly tonal, the pitch spans more than 250 Hz and glides in at least 40 % of the
  frames (wail, yelp, mechanical siren);
* `two-tone`: mostly tonal, the pitch sits on two levels at least 80 Hz apart, switching
  between them (hi-lo sirens, two-tone horns);
* `steady`: mostly tonal within 60 Hz (a horn, a beep, a whistle);
* `noise`: hardly tonal (traffic, crowds, impacts);
* `mixed`: anything else.

`--track` also prints the dominant frequency every 100 ms (`.` where the frame is quiet), the
view the labels marked `signal` were read from (e.g. the hospital sound alternating 406/578 Hz
every ~0.6 s: a hi-lo siren; the fire station sound rising 620→2,360 Hz over 3 s: a motor
siren winding up). The shape is evidence for the label written in the manifest (`how` says
`signal` where it was used), not the label: a steady tone is a horn, a beep or a whistle by its
name and credits.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engines.lab.realsounds.clips import decode_audio
from engines.lab.realsounds.fetch import DEFAULT_CACHE
from engines.lab.realsounds.manifest import load_manifest

RATE = 16000
N_FFT = 512
HOP = 256
BAND = (250.0, 4000.0)
FLATNESS_TONAL = 0.05
GLIDE_LAG = 8  # frames: 128 ms
GLIDE_RANGE_HZ = (20.0, 400.0)


@dataclass(frozen=True, slots=True)
class Probe:
    """What the signal check found in one clip."""

    duration_s: float
    tonal: float
    f_low: float
    f_high: float
    glide: float
    shape: str


def dominant(
    audio: npt.NDArray[np.float32], rate: int = RATE
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Dominant in-band frequency per frame and whether the frame is loud and tonal."""
    if len(audio) < N_FFT:
        return np.zeros(0), np.zeros(0, bool)
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2
    freqs = np.fft.rfftfreq(N_FFT, 1 / rate)
    band = (freqs > BAND[0]) & (freqs < BAND[1])
    p = power[:, band]
    peak = freqs[band][p.argmax(axis=1)]
    flatness = np.exp(np.log(p + 1e-12).mean(axis=1)) / (p.mean(axis=1) + 1e-12)
    energy = power.sum(axis=1)
    loud = energy > energy.max() * 1e-2
    return peak, loud & (flatness < FLATNESS_TONAL)


def probe(audio: npt.NDArray[np.float32], rate: int = RATE) -> Probe:
    """The signal check of one clip at `rate`."""
    peak, tonal = dominant(audio, rate)
    duration = len(audio) / rate
    if not tonal.any():
        return Probe(duration, 0.0, 0.0, 0.0, 0.0, "noise")
    f = peak[tonal]
    lo, hi = float(np.percentile(f, 10)), float(np.percentile(f, 90))
    glide = 0.0
    if len(peak) > GLIDE_LAG:
        moved = np.abs(peak[GLIDE_LAG:] - peak[:-GLIDE_LAG])
        both = tonal[GLIDE_LAG:] & tonal[:-GLIDE_LAG]
        gliding = both & (moved >= GLIDE_RANGE_HZ[0]) & (moved <= GLIDE_RANGE_HZ[1])
        glide = float(gliding.sum() / max(1, both.sum()))
    frac = float(tonal.mean())
    shape = "mixed"
    if frac < 0.1:
        shape = "noise"
    elif frac >= 0.5 and hi - lo < 60:
        shape = "steady"
    elif frac >= 0.5 and _two_levels(f):
        shape = "two-tone"
    elif frac >= 0.5 and hi - lo > 250 and glide >= 0.4:
        shape = "sweep"
    return Probe(duration, frac, lo, hi, glide, shape)


def _two_levels(f: npt.NDArray[np.float64]) -> bool:
    """Pitches on two levels ≥ 80 Hz apart (each ≥ 20 % of frames, ≥ 80 % of frames within
    30 Hz of one of them) with at least two switches."""
    lo, hi = np.percentile(f, 20), np.percentile(f, 80)
    if hi - lo < 80:
        return False
    near_lo, near_hi = np.abs(f - lo) < 30, np.abs(f - hi) < 30
    if (near_lo | near_hi).mean() < 0.8 or near_lo.mean() < 0.2 or near_hi.mean() < 0.2:
        return False
    level = near_hi[near_lo | near_hi]
    return int(np.sum(level[1:] != level[:-1])) >= 2


def track(audio: npt.NDArray[np.float32], rate: int = RATE, step_s: float = 0.1) -> str:
    """The dominant in-band frequency every `step_s` (Hz; `.` where 30 dB below the loudest)."""
    n, hop = 1024, max(1, round(step_s * rate))
    if len(audio) < n:
        return ""
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), n)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = (freqs > 200) & (freqs < BAND[1])
    peak = freqs[band][spec[:, band].argmax(axis=1)]
    level = 20 * np.log10(spec.max(axis=1) + 1e-9)
    return " ".join(
        f"{f:.0f}" if lv > level.max() - 30 else "." for f, lv in zip(peak, level, strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m engines.lab.realsounds.probe")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--split", choices=("eval", "train", "all"), default="eval")
    p.add_argument("--track", action="store_true", help="print the pitch track per clip")
    args = p.parse_args(argv)
    print("id | kind | labels | dur s | tonal | f10–f90 Hz | glide | shape")
    for e in load_manifest():
        if args.split != "all" and e.split != args.split:
            continue
        path = args.cache / "clips" / e.clip_name
        if not path.exists():
            print(f"{e.id} | {e.kind} | missing (run the fetch)")
            continue
        audio = decode_audio(path, RATE)
        r = probe(audio)
        print(
            f"{e.id} | {e.kind} | {';'.join(e.labels) or '-'} | {r.duration_s:.2f} | "
            f"{r.tonal:.2f} | {r.f_low:.0f}–{r.f_high:.0f} | {r.glide:.2f} | {r.shape}"
        )
        if args.track:
            print(f"    {track(audio)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
