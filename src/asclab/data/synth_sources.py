"""Sound sources and scene recipes of the SYNTHETIC demo data set (not from any paper).

A scene is layered from shared building blocks: a coloured-noise bed
(spectral slope in dB/octave) plus band-limited noises (rumble, hiss,
fountain), modulated noises (babble, wind, traffic pass-bys, a train
arriving), tonal sources (engine hum, motor whine, music) and short events
(footsteps, clicks, bird sweeps, chimes, bells, horns, brake squeal, door
hiss). Every class uses several blocks with its own probabilities and level
ranges, and most blocks appear in several classes, so classes overlap the
way real scenes do (airport vs shopping mall, bus vs tram vs metro).
Per-location parameters (levels, slope, hum pitch) are drawn once per
recording place and jittered per clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

BED_DB = -8.0  # the noise bed sits below the sources that characterise a scene
Level = tuple[float, float, float]  # (probability or events per second, low dB, high dB)


@dataclass(frozen=True)
class SceneRecipe:
    slope: tuple[float, float]  # dB/octave range of the noise bed
    loudness: tuple[float, float]  # clip RMS range, dBFS
    layers: Mapping[str, Level]  # continuous sources: (probability present, dB range)
    events: Mapping[str, Level] = field(default_factory=dict)  # (rate per second, dB range)
    hum_hz: tuple[float, float] = (40.0, 120.0)
    whine_hz: tuple[float, float] = (300.0, 1200.0)


def _r(slope, loudness, layers, events, **kw) -> SceneRecipe:
    return SceneRecipe(slope, loudness, MappingProxyType(layers), MappingProxyType(events), **kw)


RECIPES: Mapping[str, SceneRecipe] = MappingProxyType({
    "airport": _r((-4.5, -3.0), (-30, -22),
                  {"rumble": (0.4, -12, -6), "hiss": (0.8, -8, -2), "babble": (0.9, -6, 0),
                   "traffic": (0.1, -16, -8), "hum": (0.3, -18, -10), "music": (0.1, -16, -8)},
                  {"footsteps": (0.8, -12, -4), "chime": (0.12, -8, -2), "clicks": (0.3, -16, -8),
                   "door": (0.05, -14, -8)}, hum_hz=(50, 120)),
    "shopping_mall": _r((-4.0, -2.5), (-30, -22),
                        {"rumble": (0.2, -14, -8), "hiss": (0.6, -10, -4), "babble": (0.95, -4, 2),
                         "hum": (0.2, -18, -10), "music": (0.5, -12, -4)},
                        {"footsteps": (1.0, -12, -4), "clicks": (0.5, -14, -6), "chime": (0.05, -10, -4)},
                        hum_hz=(50, 120)),
    "metro_station": _r((-5.0, -3.5), (-30, -22),
                        {"rumble": (0.7, -8, 0), "hiss": (0.5, -10, -4), "babble": (0.6, -8, -2),
                         "train": (0.4, -4, 4), "whine": (0.3, -12, -4), "music": (0.05, -16, -8)},
                        {"footsteps": (0.7, -12, -4), "chime": (0.15, -8, -2), "squeal": (0.1, -10, -2),
                         "clicks": (0.2, -16, -8)}, whine_hz=(300, 900)),
    "metro": _r((-6.0, -4.5), (-28, -20),
                {"rumble": (0.95, -2, 6), "whine": (0.8, -10, -2), "hum": (0.5, -12, -4),
                 "babble": (0.3, -14, -6)},
                {"squeal": (0.2, -10, -2), "clicks": (0.4, -14, -6), "chime": (0.05, -10, -4)},
                hum_hz=(80, 200), whine_hz=(300, 900)),
    "tram": _r((-5.5, -4.0), (-28, -20),
               {"rumble": (0.8, -6, 2), "whine": (0.6, -12, -4), "hum": (0.4, -14, -6),
                "babble": (0.4, -12, -4), "traffic": (0.3, -12, -6)},
               {"bell": (0.1, -8, -2), "squeal": (0.15, -10, -2), "clicks": (0.3, -14, -6)},
               hum_hz=(60, 160), whine_hz=(500, 1400)),
    "bus": _r((-6.5, -5.0), (-28, -20),
              {"hum": (0.95, -4, 4), "rumble": (0.8, -6, 0), "babble": (0.4, -12, -4),
               "whine": (0.1, -16, -8), "traffic": (0.3, -12, -6)},
              {"door": (0.1, -8, -2), "clicks": (0.3, -14, -6)}, hum_hz=(25, 70)),
    "park": _r((-7.0, -5.0), (-36, -27),
               {"wind": (0.6, -6, 0), "traffic": (0.5, -16, -8), "babble": (0.2, -16, -8),
                "hiss": (0.1, -14, -8)},
               {"birds": (0.8, -10, -2), "footsteps": (0.15, -14, -6), "clicks": (0.1, -16, -8)}),
    "public_square": _r((-5.5, -4.0), (-32, -24),
                        {"babble": (0.7, -8, -2), "traffic": (0.5, -12, -4), "fountain": (0.3, -10, -4),
                         "wind": (0.3, -10, -4), "music": (0.1, -14, -6)},
                        {"birds": (0.3, -12, -4), "footsteps": (0.6, -12, -4), "clicks": (0.2, -14, -6),
                         "horn": (0.05, -10, -4)}),
    "street_pedestrian": _r((-5.0, -3.5), (-30, -23),
                            {"babble": (0.8, -6, 0), "traffic": (0.5, -12, -4), "wind": (0.2, -12, -6),
                             "music": (0.15, -14, -6)},
                            {"footsteps": (1.2, -10, -2), "birds": (0.15, -14, -6), "clicks": (0.4, -14, -6)}),
    "street_traffic": _r((-6.0, -4.0), (-26, -18),
                         {"traffic": (0.95, -2, 6), "hum": (0.6, -10, -2), "rumble": (0.6, -8, -2),
                          "babble": (0.2, -14, -6), "wind": (0.3, -12, -6)},
                         {"horn": (0.1, -8, -2), "footsteps": (0.2, -14, -6), "squeal": (0.03, -12, -6)},
                         hum_hz=(30, 90)),
})


@dataclass(frozen=True)
class Location:
    """What stays fixed at one recording place: slope, source levels and pitches."""

    slope: float
    loudness: float
    levels: Mapping[str, float]
    hum_hz: float
    whine_hz: float


def draw_location(recipe: SceneRecipe, rng: np.random.Generator) -> Location:
    levels = {k: rng.uniform(lo, hi) for k, (_, lo, hi) in {**recipe.layers, **recipe.events}.items()}
    return Location(
        slope=rng.uniform(*recipe.slope), loudness=rng.uniform(*recipe.loudness), levels=levels,
        hum_hz=float(np.exp(rng.uniform(*np.log(recipe.hum_hz)))),
        whine_hz=float(np.exp(rng.uniform(*np.log(recipe.whine_hz)))),
    )


def render_scene(recipe: SceneRecipe, loc: Location, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clean mono clip (float64, RMS at the location's loudness +- 2 dB)."""
    f = np.fft.rfftfreq(n, 1.0 / sr)
    t = np.arange(n) / sr
    level = {k: v + rng.normal(0.0, 2.0) for k, v in loc.levels.items()}
    present = {k for k, (p, _, _) in recipe.layers.items() if rng.random() < p}
    slope = loc.slope + rng.normal(0.0, 0.3)

    bed = [(BED_DB, 20.0, None, slope)]
    bands = {"rumble": (20.0, 200.0, slope - 3), "hiss": (2000.0, 8000.0, 0.0), "fountain": (800.0, 5000.0, -1.0)}
    bed += [(level[k], *bands[k]) for k in bands if k in present]
    x = _shaped_noise(rng, n, f, bed)
    if "babble" in present:
        env = sum(_smooth(rng, n, sr, rng.uniform(3.0, 6.0)) ** 2 for _ in range(3))
        x += _db(level["babble"]) * env / _rms(env) * _shaped_noise(rng, n, f, [(0.0, 250.0, 3500.0, -4.0)])
    if "wind" in present:
        env = np.exp(1.2 * _smooth(rng, n, sr, rng.uniform(0.3, 1.0)))
        x += _db(level["wind"]) * env / _rms(env) * _shaped_noise(rng, n, f, [(0.0, 20.0, 600.0, -9.0)])
    if "traffic" in present:
        env = 0.15 + _bumps(rng, t, rate=0.4, width=(0.6, 2.0))
        x += _db(level["traffic"]) * env / _rms(env) * _shaped_noise(rng, n, f, [(0.0, 30.0, 4000.0, -6.0)])
    if "train" in present:
        env = 0.05 + _bumps(rng, t, rate=None, width=(2.0, 5.0))
        x += _db(level["train"]) * env / _rms(env) * _shaped_noise(rng, n, f, [(0.0, 20.0, 2000.0, -5.0)])
    if "hum" in present:
        x += _db(level["hum"]) * _harmonic(rng, t, loc.hum_hz * rng.uniform(0.97, 1.03), 6, drift=0.01)
    if "whine" in present:
        x += _db(level["whine"]) * _harmonic(rng, t, loc.whine_hz * rng.uniform(0.9, 1.1), 3,
                                             drift=0.02, glide=rng.uniform(-0.3, 0.3))
    if "music" in present:
        x += _db(level["music"]) * _music(rng, t, sr)
    for name, (rate, _, _) in recipe.events.items():
        for _ in range(rng.poisson(rate * n / sr)):
            ev = EVENTS[name](rng, sr)
            _add(x, _db(level[name]) * ev / max(_rms(ev), 1e-9), int(rng.integers(-len(ev) // 2, n)))
    return x * _db(loc.loudness + rng.normal(0.0, 2.0)) / max(_rms(x), 1e-12)


# ---- building blocks -------------------------------------------------------------------------


def _db(v: float) -> float:
    return float(10.0 ** (v / 20.0))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _band(f: np.ndarray, lo: float | None, hi: float | None, slope: float, order: int = 2) -> np.ndarray:
    """Magnitude response: ``slope`` dB/octave around 1 kHz, smooth high-/low-pass edges."""
    g = (np.maximum(f, 20.0) / 1000.0) ** (slope / 6.0206)
    if lo:
        g = g / np.sqrt(1.0 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
    if hi:
        g = g / np.sqrt(1.0 + (f / hi) ** (2 * order))
    return g


def _shaped_noise(rng: np.random.Generator, n: int, f: np.ndarray, parts: list) -> np.ndarray:
    """Gaussian noise whose power spectrum is the sum of unit-power bands ``(dB, lo, hi, slope)``."""
    power = np.zeros_like(f)
    for lvl, lo, hi, slope in parts:
        g2 = _band(f, lo, hi, slope) ** 2
        power += 10.0 ** (lvl / 10.0) * g2 / max(g2.mean(), 1e-20)
    spec = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * np.sqrt(power)
    y = np.fft.irfft(spec, n)
    return y * np.sqrt(sum(10.0 ** (p[0] / 10.0) for p in parts)) / max(_rms(y), 1e-20)


def _smooth(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """A random curve with knots ``rate`` times a second, linearly interpolated."""
    knots = int(np.ceil(n / sr * rate)) + 2
    return np.interp(np.arange(n) * rate / sr, np.arange(knots), rng.standard_normal(knots))


def _bumps(rng: np.random.Generator, t: np.ndarray, rate: float | None, width: tuple[float, float]) -> np.ndarray:
    """Gaussian swells (vehicles passing); ``rate=None``: exactly one."""
    span = t[-1] + 2 * width[1]
    count = 1 if rate is None else max(1, rng.poisson(rate * span))
    centres = rng.uniform(-width[1], t[-1] + width[1], count)
    widths = rng.uniform(*width, count)
    heights = rng.uniform(0.4, 1.0, count)
    return (heights[:, None] * np.exp(-0.5 * ((t[None, :] - centres[:, None]) / widths[:, None]) ** 2)).sum(0)


def _harmonic(rng: np.random.Generator, t: np.ndarray, f0: float, count: int, drift: float, glide: float = 0.0):
    sr = 1.0 / (t[1] - t[0]) if len(t) > 1 else 1.0
    wobble = np.interp(t, np.linspace(0, t[-1] + 1e-9, 8), rng.standard_normal(8))
    freq = f0 * (1.0 + drift * wobble + glide * t / max(t[-1], 1e-9))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    h = np.arange(1, count + 1)
    amp = rng.uniform(0.5, 1.0, count) / h
    amp[h * f0 * (1 + abs(glide) + drift * 3) >= 0.45 * sr] = 0.0
    y = (amp[:, None] * np.sin(h[:, None] * phase[None, :] + rng.uniform(0, 2 * np.pi, count)[:, None])).sum(0)
    return y / max(_rms(y), 1e-12)


def _music(rng: np.random.Generator, t: np.ndarray, sr: int) -> np.ndarray:
    """Background music: pentatonic notes with three decaying harmonics."""
    y = np.zeros_like(t)
    base = rng.uniform(180.0, 330.0)
    start = -rng.uniform(0.0, 0.4)
    while start < t[-1]:
        dur = rng.choice([0.2, 0.3, 0.4, 0.6])
        f0 = base * 2 ** (rng.choice([0, 2, 4, 7, 9, 12]) / 12)
        i0, i1 = max(0, int(start * sr)), min(len(t), int((start + dur) * sr))
        if i1 > i0:
            tt = t[i0:i1] - start
            env = np.exp(-tt * rng.uniform(3.0, 8.0))
            y[i0:i1] += env * sum(np.sin(2 * np.pi * k * f0 * tt) / k for k in (1, 2, 3) if k * f0 < 0.45 * sr)
        start += dur
    return y / max(_rms(y), 1e-12)


def _add(x: np.ndarray, ev: np.ndarray, at: int) -> None:
    lo, hi = max(at, 0), min(at + len(ev), len(x))
    if hi > lo:
        x[lo:hi] += ev[lo - at:hi - at]


def _tone_sweep(rng, sr, f_start, f_end, dur, warble=0.0):
    n = max(2, int(dur * sr))
    t = np.arange(n) / sr
    freq = np.clip(np.linspace(f_start, f_end, n) * (1 + warble * np.sin(2 * np.pi * rng.uniform(15, 40) * t)),
                   20.0, 0.45 * sr)
    return np.hanning(n) * np.sin(2 * np.pi * np.cumsum(freq) / sr)


def _footstep(rng, sr):
    n = int(rng.uniform(0.04, 0.08) * sr)
    k = max(1, sr // 1500)
    burst = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.015 * sr))
    return np.convolve(burst, np.ones(k) / k, mode="same")


def _click(rng, sr):
    n = max(4, int(rng.uniform(0.002, 0.008) * sr))
    return np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / (0.002 * sr))


def _birds(rng, sr):
    parts = []
    for _ in range(int(rng.integers(2, 6))):
        f1 = rng.uniform(2500.0, 7000.0)
        parts.append(_tone_sweep(rng, sr, f1, f1 + rng.uniform(-1500, 1500), rng.uniform(0.04, 0.15), warble=0.05))
        parts.append(np.zeros(int(rng.uniform(0.02, 0.1) * sr)))
    return np.concatenate(parts)


def _partials(rng, sr, freqs, decay, dur):
    n = int(dur * sr)
    t = np.arange(n) / sr
    y = sum(np.sin(2 * np.pi * fr * t) / (i + 1) for i, fr in enumerate(freqs) if fr < 0.45 * sr)
    return (y if isinstance(y, np.ndarray) else np.zeros(n)) * np.exp(-t / decay) * np.minimum(1.0, t / 0.005)


def _chime(rng, sr):
    f = rng.uniform(500.0, 900.0)
    return _partials(rng, sr, [f, 2 * f, 3 * f], rng.uniform(0.3, 0.8), 1.0)


def _bell(rng, sr):
    f = rng.uniform(800.0, 1500.0)
    return _partials(rng, sr, [f, 2.76 * f, 5.4 * f], rng.uniform(0.4, 0.9), 1.2)


def _horn(rng, sr):
    n = int(rng.uniform(0.3, 0.8) * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(350.0, 500.0)
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 9) if k * f0 < 0.45 * sr)
    return y * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)


def _squeal(rng, sr):
    n = int(rng.uniform(0.3, 1.5) * sr)
    t = np.arange(n) / sr
    freq = min(rng.uniform(2500.0, 5000.0), 0.4 * sr) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(5, 8) * t))
    return np.hanning(n) * np.sin(2 * np.pi * np.cumsum(freq) / sr)


def _door(rng, sr):
    n = int(rng.uniform(0.3, 0.8) * sr)
    return np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / (0.25 * n))


EVENTS = MappingProxyType({
    "footsteps": _footstep, "clicks": _click, "birds": _birds, "chime": _chime, "bell": _bell,
    "horn": _horn, "squeal": _squeal, "door": _door,
})
