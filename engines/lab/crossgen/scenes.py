"""Scene families of the cross-generator: what happens, when, and which labels that makes.

A scene is a few seconds of audio and video drawn from one kind (below) with its own seed, plus
the label spans that follow from what was drawn. `compose.py` renders and mixes it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .ambience import distractor
from .compose import SceneDraft
from .sounds import DISTRACTOR_SOUNDS, Motion, alarm, horn, impact, siren
from .speech import talker
from .truth import intersect
from .visuals import EMERGENCY_COLOURS, FLASH_STYLES, Beacon, Track

HAZARD_COLOURS = (("amber", "amber"), ("white", "white"), ("amber", "white"))
APPROACH_ON = 0.25  # looming (1/s) at which an approach is called
APPROACH_UNSURE = 0.1  # below APPROACH_ON but above this: too slow to tell, not scored


def _span(d: SceneDraft, lo: float, hi: float, min_start: float = 0.0) -> tuple[float, float]:
    length = d.rng.uniform(lo, hi)
    start = d.rng.uniform(min_start, max(min_start, d.duration - length))
    return start, min(d.duration, start + length)


def _beacon(
    d: SceneDraft, colours: tuple[str, str], span: tuple[float, float], on_track: bool
) -> Beacon:
    size = d.stage.size
    return Beacon(
        colours=colours,
        style=FLASH_STYLES[int(d.rng.integers(len(FLASH_STYLES)))],
        hz=d.rng.uniform(1.0, 4.0),
        radius=d.rng.uniform(2.0, 9.0) * size / 128,
        span=span,
        pos=(d.rng.uniform(0.1, 0.9) * size, d.rng.uniform(0.1, 0.7) * size),
        on_track=on_track,
        phase=d.rng.uniform(),
    )


def _emergency_colours(d: SceneDraft) -> tuple[str, str]:
    a = EMERGENCY_COLOURS[int(d.rng.integers(2))]
    b = EMERGENCY_COLOURS[int(d.rng.integers(2))] if d.rng.uniform() < 0.4 else None
    return (a, b or ("blue" if a == "red" else "red"))


def _vehicle(d: SceneDraft, motion: str, t0: float = 0.0, t_stop: float | None = None) -> Track:
    """A vehicle that is parked, passes, recedes or approaches."""
    s, r = d.stage.size, d.rng
    stop = d.duration if t_stop is None else t_stop
    y0 = r.uniform(0.6, 0.8) * s
    if motion == "approach":
        rate = r.uniform(0.3, 0.75)
        stop = min(stop, t0 + 0.8 / rate)  # stop before it fills the picture
        return Track(
            r.uniform(0.3, 0.7) * s,
            y0,
            r.uniform(0.08, 0.2) * s,
            rate,
            t0,
            stop,
            r.uniform(-6, 6) * s / 128,
        )
    if motion == "recede":
        return Track(
            r.uniform(0.3, 0.7) * s,
            y0,
            r.uniform(0.3, 0.5) * s,
            -r.uniform(0.2, 0.6),
            t0,
            stop,
            r.uniform(-6, 6) * s / 128,
        )
    if motion == "pass":
        side = r.choice([-1.0, 1.0])
        return Track(
            (0.5 - 0.6 * side) * s,
            y0,
            r.uniform(0.15, 0.35) * s,
            0.0,
            t0,
            stop,
            side * r.uniform(15, 45) * s / 128,
        )
    return Track(r.uniform(0.2, 0.8) * s, y0, r.uniform(0.1, 0.35) * s, 0.0, t0, t0)


def _approach_truth(d: SceneDraft, track: Track) -> None:
    """approaching_object on where the object looms fast enough and is big enough to see."""
    times = np.arange(0.0, d.duration, 0.02)
    loom = np.array([track.looming(float(t)) for t in times])
    width = np.array([track.at(float(t))[2] for t in times]) * 64 / d.stage.size
    seen = width >= 3.0
    d.mark("approaching_object", times, (loom >= APPROACH_ON) & seen)
    d.unsure(
        "approaching_object", times, (loom >= APPROACH_UNSURE) & ~((loom >= APPROACH_ON) & seen)
    )


def siren_only(d: SceneDraft) -> None:
    """A siren with no emergency lights in view (a radio, a vehicle out of sight)."""
    span = _span(d, 2.0, 6.0)
    moving = d.rng.uniform() < 0.5
    motion = Motion(d.rng.uniform(10, 40), d.rng.uniform(5, 15), d.rng.uniform(*span))
    # a passing siren is loud when close (the SNR is at its closest point) and fades with distance
    snr = (8.0, 25.0) if moving else (0.0, 20.0)
    d.sound(siren(d.n, d.sr, span, d.rng, motion if moving else None), "siren", snr=snr)
    if d.rng.uniform() < 0.5:
        d.stage.track = _vehicle(d, str(d.rng.choice(["park", "pass"])))


def horn_scene(d: SceneDraft) -> None:
    """One to three horn bursts; sometimes a car in view."""
    t = d.rng.uniform(0.5, 2.0)
    for _ in range(int(d.rng.integers(1, 4))):
        src = horn(d.n, d.sr, t, d.rng)
        d.sound(src, "horn")
        t = src.spans[-1][1] + d.rng.uniform(0.8, 2.0)
        if t > d.duration - 1.0:
            break
    if d.rng.uniform() < 0.5:
        d.stage.track = _vehicle(d, str(d.rng.choice(["park", "pass"])))


def alarm_scene(d: SceneDraft) -> None:
    """A smoke/CO detector, bell, buzzer or beeper."""
    d.sound(alarm(d.n, d.sr, _span(d, 2.5, 6.0), d.rng), "alarm")


def speech_scene(d: SceneDraft) -> None:
    """One talker, sometimes two taking turns."""
    d.sound(talker(d.n, d.sr, _span(d, 2.5, 6.0), d.rng), "speech")
    if d.rng.uniform() < 0.3:
        d.sound(talker(d.n, d.sr, _span(d, 1.5, 3.0), d.rng), "speech")


def lights_scene(d: SceneDraft) -> None:
    """Red/blue emergency lights in silence (a parked or passing vehicle, or a lamp)."""
    span = _span(d, 2.5, 6.0)
    on_track = d.rng.uniform() < 0.5
    if on_track:
        d.stage.track = _vehicle(d, "park")
    d.light(_beacon(d, _emergency_colours(d), span, on_track), "flashing_lights")


def emergency_scene(d: SceneDraft) -> None:
    """An emergency vehicle: siren while its red/blue lights flash in view."""
    motion = str(d.rng.choice(["park", "approach", "pass"]))
    track = _vehicle(d, motion, t0=d.rng.uniform(0.0, 1.5))
    d.stage.track = track
    span = _span(d, 3.0, 6.0)
    light_span = (max(0.0, span[0] + d.rng.uniform(-0.8, 0.3)), span[1])
    d.light(_beacon(d, _emergency_colours(d), light_span, True), "flashing_lights")
    doppler = Motion(d.rng.uniform(8, 30), d.rng.uniform(5, 15), d.rng.uniform(*span))
    moving = motion != "park"
    snr = (8.0, 25.0) if moving else (0.0, 20.0)
    d.sound(siren(d.n, d.sr, span, d.rng, doppler if moving else None), "siren", snr=snr)
    d.on["emergency_vehicle"] = intersect(d.on["siren"], d.on.get("flashing_lights", []))
    d.dont_care["emergency_vehicle"] = intersect(
        d.dont_care.get("siren", []), d.on.get("flashing_lights", [])
    )
    if motion == "approach":
        _approach_truth(d, track)


def separated_scene(d: SceneDraft) -> None:
    """Siren and emergency lights, seconds apart: neither is an emergency vehicle alone."""
    first = d.rng.uniform(1.2, 2.6)
    gap = d.rng.uniform(1.2, 2.0)
    a, b = (0.0, first), (first + gap, d.duration)
    if d.rng.uniform() < 0.5:
        a, b = b, a
    d.light(_beacon(d, _emergency_colours(d), a, False), "flashing_lights")
    d.sound(siren(d.n, d.sr, b, d.rng), "siren")


def hazard_scene(d: SceneDraft) -> None:
    """Amber or white flashers (hazard lights, a white strobe), with a siren 40% of the time."""
    on_track = d.rng.uniform() < 0.6
    if on_track:
        d.stage.track = _vehicle(d, "park")
    colours = HAZARD_COLOURS[int(d.rng.integers(len(HAZARD_COLOURS)))]
    d.light(_beacon(d, colours, _span(d, 3.0, 6.0), on_track), None)
    if d.rng.uniform() < 0.4:
        d.sound(siren(d.n, d.sr, _span(d, 2.5, 5.0), d.rng), "siren")


def approach_scene(d: SceneDraft) -> None:
    """An object coming at the camera at varied speed, size, contrast and lateral drift."""
    track = _vehicle(d, "approach", t0=d.rng.uniform(0.0, 2.5))
    d.stage.track = track
    d.stage.shape = str(d.rng.choice(["car", "box", "ellipse"]))
    _approach_truth(d, track)


def collision_scene(d: SceneDraft) -> None:
    """A fast approach that ends in an impact: object stops, camera jolts, crash sound."""
    t_hit = d.rng.uniform(3.0, d.duration - 1.2)
    r = d.rng
    rate = r.uniform(0.35, 0.7)
    t0 = max(0.0, t_hit - min(0.8 / rate, r.uniform(1.2, 2.5)))
    s = d.stage.size
    track = Track(
        r.uniform(0.35, 0.65) * s,
        r.uniform(0.6, 0.8) * s,
        r.uniform(0.1, 0.2) * s,
        rate,
        t0,
        t_hit,
        r.uniform(-4, 4) * s / 128,
    )
    d.stage.track = track
    d.stage.shape = str(r.choice(["car", "box"]))
    _approach_truth(d, track)
    d.sound(impact(d.n, d.sr, t_hit, r), None, snr=(10.0, 25.0))
    d.jolt(t_hit)
    d.on["collision"] = [(t_hit, t_hit + 0.5)]
    d.dont_care["collision"] = [(t_hit + 0.5, t_hit + 1.2)]


def stop_silent_scene(d: SceneDraft) -> None:
    """An approach that halts without any sound: approaching, but no collision."""
    t_stop = d.rng.uniform(3.0, d.duration - 1.0)
    track = _vehicle(d, "approach", t0=max(0.0, t_stop - 2.0), t_stop=t_stop)
    d.stage.track = track
    _approach_truth(d, track)


def impact_static_scene(d: SceneDraft) -> None:
    """A crash sound with nothing moving in view."""
    if d.rng.uniform() < 0.6:
        d.stage.track = _vehicle(d, "park")
    d.sound(impact(d.n, d.sr, d.rng.uniform(1.5, d.duration - 1.0), d.rng), None, snr=(5, 25))


def moving_negative_scene(d: SceneDraft) -> None:
    """Receding, passing or parked vehicles: motion that is not an approach."""
    d.stage.track = _vehicle(d, str(d.rng.choice(["recede", "pass", "park"])))
    d.stage.shape = str(d.rng.choice(["car", "box", "ellipse"]))


def music_scene(d: SceneDraft) -> None:
    """Organ, piano, whistling or a ringtone: tonal sounds that carry no label."""
    kind = DISTRACTOR_SOUNDS[int(d.rng.integers(len(DISTRACTOR_SOUNDS)))]
    d.sound(distractor(kind, d.n, d.sr, _span(d, 2.5, 6.0), d.rng), None)
    d.params["distractor"] = kind


def noise_scene(d: SceneDraft) -> None:
    """Only the background bed (any family, any level)."""
    if d.rng.uniform() < 0.4:
        d.stage.track = _vehicle(d, "park")


def mixed_scene(d: SceneDraft) -> None:
    """A busy street: two or three of talker, horn, alarm, siren and lights at once or in turn
    (the siren and lights here are never an emergency vehicle unless they overlap)."""
    parts = list(d.rng.permutation(["speech", "horn", "alarm", "siren", "lights"]))
    for part in parts[: int(d.rng.integers(2, 4))]:
        if part == "speech":
            d.sound(talker(d.n, d.sr, _span(d, 2.0, 5.0), d.rng), "speech")
        elif part == "horn":
            d.sound(horn(d.n, d.sr, d.rng.uniform(0.5, d.duration - 2.0), d.rng), "horn")
        elif part == "alarm":
            d.sound(alarm(d.n, d.sr, _span(d, 2.0, 5.0), d.rng), "alarm")
        elif part == "siren":
            d.sound(siren(d.n, d.sr, _span(d, 2.0, 5.0), d.rng), "siren")
        else:
            d.light(_beacon(d, _emergency_colours(d), _span(d, 2.0, 5.0), False), "flashing_lights")
    both = intersect(d.on.get("siren", []), d.on.get("flashing_lights", []))
    if both:
        d.on["emergency_vehicle"] = both


def stream_edge(start: bool) -> Callable[[SceneDraft], None]:
    """A stream starting (black, grey or frozen picture and silence, then the scene) or
    stopping (the reverse). Nothing happens in the scene: every label is off."""

    def scene(d: SceneDraft) -> None:
        if d.rng.uniform() < 0.5:
            d.stage.track = _vehicle(d, "park")
        edge = d.rng.uniform(2.0, d.duration - 2.0)
        mode = str(d.rng.choice(["black", "grey", "frozen"]))
        d.blank((0.0, edge) if start else (edge, d.duration + 1.0), mode)
        d.params["edge_s"] = edge

    return scene


KINDS: dict[str, Callable[[SceneDraft], None]] = {
    "siren": siren_only,
    "horn": horn_scene,
    "alarm": alarm_scene,
    "speech": speech_scene,
    "lights": lights_scene,
    "emergency": emergency_scene,
    "separated": separated_scene,
    "hazard": hazard_scene,
    "approach": approach_scene,
    "collision": collision_scene,
    "stop_silent": stop_silent_scene,
    "impact_static": impact_static_scene,
    "moving_negative": moving_negative_scene,
    "music": music_scene,
    "noise": noise_scene,
    "mixed": mixed_scene,
    "stream_start": stream_edge(True),
    "stream_stop": stream_edge(False),
}
# Kinds built to tempt a false label (every label that fires there and is not in the truth is a
# false alarm), and the two stream edges.
DISTRACTOR_KINDS = frozenset(
    {
        "separated",
        "hazard",
        "stop_silent",
        "impact_static",
        "moving_negative",
        "music",
        "noise",
        "stream_start",
        "stream_stop",
    }
)
STREAM_EDGE_KINDS = ("stream_start", "stream_stop")
# Short events (horn bursts, the half second after an impact) get more scenes, so their labels
# have a few hundred scored windows in a set of ~400 scenes.
WEIGHTS = {"emergency": 2.0, "collision": 4.0, "approach": 2.0, "horn": 2.0}
