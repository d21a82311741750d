"""A synthetic GIF pool with ground truth: animated cartoon faces from 17 emotion prototypes.

Each emotion is a prototype: a vector of visual parameters (mouth curve and openness,
brows, eyes, gaze, head tilt, tears, blush, sweat, a green face, shaking, bouncing, speed,
background warmth and brightness, floating hearts, sparkles, steam, "!" marks). A GIF mixes
1 to 3 prototypes with Dirichlet weights and adds noise, then draws its parameters frame by
frame. Its true score on emotion e is the similarity of its parameters to prototype e
(a Gaussian of their weighted distance), min-max scaled to [0, 1] per emotion across the
pool, like the paper scales Bradley-Terry scores. So everything the score depends on is
visible, and what it does not depend on varies as nuisance: skin tone, face size and
place, background pattern, frame count, eye style, which way the eyes look.

The truth is written to the manifest (`truth_<emotion>` columns) only; ingest ignores those
columns, so it never reaches the database. `read_truth` is how simulations and benchmarks
get it back.

Deterministic: GIF i depends only on (seed, i), so the files for a seed are byte-identical
whatever the count or the number of worker processes (only the min-max scaling of the
truth depends on the whole pool).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from scorer.emotions import N_EMOTIONS, NAMES

SIZE = 128

# name, low, high, neutral value
PARAMS: tuple[tuple[str, float, float, float], ...] = (
    ("mouth_curve", -1.0, 1.0, 0.0),  # frown .. smile
    ("mouth_open", 0.0, 1.0, 0.1),
    ("mouth_asym", 0.0, 1.0, 0.0),  # one corner up: a smirk
    ("tongue", 0.0, 1.0, 0.0),
    ("brow_angle", -1.0, 1.0, 0.0),  # inner ends down (angry) .. up (worried)
    ("brow_raise", 0.0, 1.0, 0.5),
    ("eye_open", 0.0, 1.0, 0.6),  # closed .. wide
    ("gaze", 0.0, 1.0, 0.0),  # looking aside
    ("head_tilt", -1.0, 1.0, 0.0),  # chin up .. head down
    ("tears", 0.0, 1.0, 0.0),
    ("blush", 0.0, 1.0, 0.0),
    ("sweat", 0.0, 1.0, 0.0),
    ("green", 0.0, 1.0, 0.0),  # sick green face
    ("shake", 0.0, 1.0, 0.0),  # fast horizontal trembling
    ("bounce", 0.0, 1.0, 0.0),  # vertical hops
    ("speed", 0.0, 1.0, 0.4),  # frame rate and motion cycles
    ("warmth", -1.0, 1.0, 0.0),  # blue .. red/orange background
    ("brightness", 0.0, 1.0, 0.6),
    ("hearts", 0.0, 1.0, 0.0),
    ("sparkles", 0.0, 1.0, 0.0),
    ("steam", 0.0, 1.0, 0.0),
    ("exclaim", 0.0, 1.0, 0.0),
)
PARAM_NAMES: tuple[str, ...] = tuple(p[0] for p in PARAMS)
_P = {name: i for i, name in enumerate(PARAM_NAMES)}
_LOW = np.asarray([p[1] for p in PARAMS])
_HIGH = np.asarray([p[2] for p in PARAMS])

_PROTO_SPEC: dict[str, dict[str, float]] = {
    "amusement": dict(mouth_curve=0.9, mouth_open=0.8, eye_open=0.1, brow_raise=0.6, tears=0.35,
                      blush=0.2, shake=0.25, bounce=0.6, speed=0.75, warmth=0.5, brightness=0.85),
    "anger": dict(mouth_curve=-0.7, mouth_open=0.35, brow_angle=-1.0, brow_raise=0.15, eye_open=0.5,
                  blush=0.6, shake=0.8, speed=0.9, warmth=1.0, brightness=0.4, steam=1.0),
    "contempt": dict(mouth_curve=0.1, mouth_open=0.0, mouth_asym=1.0, brow_angle=-0.3,
                     brow_raise=0.55, eye_open=0.3, gaze=0.9, head_tilt=-0.5, speed=0.2,
                     warmth=-0.2, brightness=0.5),
    "contentment": dict(mouth_curve=0.5, mouth_open=0.0, brow_angle=0.1, eye_open=0.08, blush=0.45,
                        bounce=0.0, speed=0.0, warmth=0.6, brightness=0.6, hearts=0.4),
    "disgust": dict(mouth_curve=-0.6, mouth_open=0.45, tongue=1.0, brow_angle=-0.5, brow_raise=0.3,
                    eye_open=0.3, gaze=0.3, green=1.0, shake=0.3, speed=0.4, warmth=-0.3,
                    brightness=0.5),
    "embarrassment": dict(mouth_curve=0.2, mouth_open=0.1, brow_angle=0.6, brow_raise=0.6,
                          eye_open=0.6, gaze=0.6, head_tilt=0.3, blush=1.0, sweat=0.8, shake=0.2,
                          speed=0.4, warmth=0.5, brightness=0.6),
    "excitement": dict(mouth_curve=1.0, mouth_open=1.0, brow_angle=0.3, brow_raise=1.0, eye_open=1.0,
                       bounce=1.0, speed=1.0, warmth=0.8, brightness=1.0, sparkles=1.0, exclaim=0.5),
    "fear": dict(mouth_curve=-0.5, mouth_open=0.8, brow_angle=0.9, brow_raise=0.9, eye_open=1.0,
                 sweat=1.0, shake=1.0, speed=0.9, warmth=-0.9, brightness=0.2, green=0.3),
    "guilt": dict(mouth_curve=-0.3, mouth_open=0.0, brow_angle=0.7, brow_raise=0.4, eye_open=0.5,
                  gaze=0.7, head_tilt=0.7, sweat=0.5, speed=0.2, warmth=-0.3, brightness=0.35),
    "happiness": dict(mouth_curve=1.0, mouth_open=0.5, brow_angle=0.2, brow_raise=0.6, eye_open=0.6,
                      bounce=0.6, speed=0.5, warmth=0.8, brightness=0.9, sparkles=0.3, hearts=0.2),
    "pleasure": dict(mouth_curve=0.7, mouth_open=0.2, tongue=0.6, eye_open=0.1, blush=0.6,
                     hearts=1.0, bounce=0.3, speed=0.3, warmth=0.7, brightness=0.8),
    "pride": dict(mouth_curve=0.6, mouth_open=0.0, mouth_asym=0.3, brow_angle=-0.1, brow_raise=0.7,
                  eye_open=0.4, head_tilt=-1.0, sparkles=0.8, bounce=0.2, speed=0.3, warmth=0.5,
                  brightness=0.8),
    "relief": dict(mouth_curve=0.35, mouth_open=0.5, brow_angle=0.6, brow_raise=0.45, eye_open=0.05,
                   sweat=0.9, speed=0.15, warmth=-0.1, brightness=0.8),
    "sadness": dict(mouth_curve=-1.0, mouth_open=0.1, brow_angle=0.9, brow_raise=0.3, eye_open=0.4,
                    tears=1.0, head_tilt=0.6, speed=0.1, warmth=-1.0, brightness=0.25),
    "satisfaction": dict(mouth_curve=0.6, mouth_open=0.0, mouth_asym=0.5, brow_angle=-0.2,
                         brow_raise=0.3, eye_open=0.2, bounce=0.8, speed=0.2, sparkles=0.2,
                         warmth=0.0, brightness=0.7),
    "shame": dict(mouth_curve=-0.6, mouth_open=0.0, brow_angle=0.8, brow_raise=0.3, eye_open=0.15,
                  gaze=0.5, blush=0.8, head_tilt=1.0, tears=0.3, speed=0.1, warmth=-0.5,
                  brightness=0.2),
    "surprise": dict(mouth_curve=0.0, mouth_open=1.0, brow_angle=0.3, brow_raise=1.0, eye_open=1.0,
                     exclaim=1.0, shake=0.1, bounce=0.4, speed=0.6, warmth=0.2, brightness=0.9),
}
assert tuple(_PROTO_SPEC) == NAMES, "prototypes must follow the GIFGIF order"


def _proto_vector(spec: dict[str, float]) -> np.ndarray:
    v = np.asarray([p[3] for p in PARAMS], dtype=np.float64)
    for key, value in spec.items():
        v[_P[key]] = value
    return v


# (17, P) in parameter units
PROTOTYPES: np.ndarray = np.stack([_proto_vector(_PROTO_SPEC[name]) for name in NAMES])

# Similarity kernel width in normalised parameter units: a pure prototype scores ~1, an even
# mix of two ~0.5-0.7, an unrelated prototype ~0.1-0.3.
_SIGMA = 0.2
_NOISE = 0.06
_MIX_SIZES = (1, 2, 3)
_MIX_PROBS = (0.4, 0.4, 0.2)
_RATINGS = ("g", "pg", "pg-13")
_RATING_PROBS = (0.70, 0.25, 0.05)


def _normalise(params: np.ndarray) -> np.ndarray:
    return (params - _LOW) / (_HIGH - _LOW)


def raw_similarity(params: np.ndarray) -> np.ndarray:
    """Unscaled truth: similarity of parameter vectors (..., P) to each prototype (..., 17)."""
    x = _normalise(np.asarray(params, dtype=np.float64))[..., None, :]
    p = _normalise(PROTOTYPES)
    d2 = ((x - p) ** 2).mean(axis=-1)
    return np.exp(-d2 / (2 * _SIGMA**2))


def minmax(raw: np.ndarray) -> np.ndarray:
    """Scale each column to [0, 1] across rows (a constant column becomes 0.5)."""
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (raw - lo) / span
    out[:, hi <= lo] = 0.5
    return out


# ---------------------------------------------------------------------------------------
# sampling one GIF's parameters


@dataclass
class DemoSpec:
    index: int
    params: np.ndarray  # (P,) visual parameters
    mixture: dict[str, float]  # prototype name -> weight
    rating: str
    nuisance: dict[str, float]
    n_frames: int


def sample_spec(seed: int, index: int) -> DemoSpec:
    rng = np.random.default_rng([seed, index])
    k = int(rng.choice(_MIX_SIZES, p=_MIX_PROBS))
    chosen = rng.choice(N_EMOTIONS, size=k, replace=False)
    weights = rng.dirichlet(np.ones(k)) if k > 1 else np.ones(1)
    params = weights @ PROTOTYPES[chosen]
    params = params + rng.normal(0.0, _NOISE, size=params.shape) * (_HIGH - _LOW)
    params = np.clip(params, _LOW, _HIGH)
    rating = str(rng.choice(_RATINGS, p=_RATING_PROBS))
    nuisance = {
        "skin": float(rng.integers(0, len(_SKINS))),
        "radius": float(rng.uniform(36, 46)),
        "dx": float(rng.uniform(-8, 8)),
        "dy": float(rng.uniform(-5, 8)),
        "pattern": float(rng.integers(0, 3)),
        "pattern_shift": float(rng.uniform(-1, 1)),
        "eye_size": float(rng.uniform(0.85, 1.2)),
        "mouth_width": float(rng.uniform(0.85, 1.15)),
        "gaze_dir": float(rng.choice([-1.0, 1.0])),
        "delay_jitter": float(rng.uniform(-1.5, 1.5)),
        "layout": float(rng.integers(0, 1 << 30)),
    }
    n_frames = int(rng.integers(8, 41))
    mixture = {NAMES[int(c)]: float(w) for c, w in zip(chosen, weights, strict=True)}
    return DemoSpec(index, params, mixture, rating, nuisance, n_frames)


# ---------------------------------------------------------------------------------------
# drawing

_SKINS = ((255, 214, 80), (250, 206, 170), (226, 172, 128), (170, 118, 80), (124, 88, 62))
_GREEN = np.asarray((130, 196, 92))
_COOL = np.asarray((60, 110, 225))
_WARM = np.asarray((240, 105, 50))


def _mix(a: np.ndarray | tuple, b: np.ndarray | tuple, t: float) -> tuple[int, int, int]:
    c = (1 - t) * np.asarray(a, dtype=float) + t * np.asarray(b, dtype=float)
    return tuple(round(float(x)) for x in np.clip(c, 0, 255))  # type: ignore[return-value]


class _Palette:
    """Named colours -> palette indices, so frames are drawn straight in mode P."""

    def __init__(self) -> None:
        self.colours: list[tuple[int, int, int]] = []
        self.index: dict[str, int] = {}

    def add(self, name: str, rgb: tuple[int, int, int]) -> int:
        self.index[name] = len(self.colours)
        self.colours.append(rgb)
        return self.index[name]

    def __getitem__(self, name: str) -> int:
        return self.index[name]

    def flat(self) -> list[int]:
        out = [c for rgb in self.colours for c in rgb]
        return out + [0] * (768 - len(out))


def _heart(draw: ImageDraw.ImageDraw, x: float, y: float, s: float, fill: int) -> None:
    r = s / 2
    draw.ellipse((x - s, y - r, x, y + r), fill=fill)
    draw.ellipse((x, y - r, x + s, y + r), fill=fill)
    draw.polygon([(x - s, y + 0.1 * s), (x + s, y + 0.1 * s), (x, y + 1.3 * s)], fill=fill)


def _sparkle(draw: ImageDraw.ImageDraw, x: float, y: float, s: float, fill: int) -> None:
    w = s * 0.28
    draw.polygon([(x, y - s), (x + w, y - w), (x + s, y), (x + w, y + w), (x, y + s),
                  (x - w, y + w), (x - s, y), (x - w, y - w)], fill=fill)


def _demo_palette(v: dict[str, float], nz: dict[str, float]) -> _Palette:
    # Insertion order fixes the palette indices, and so the GIF bytes: append, never reorder.
    pal = _Palette()
    warm_t = (v["warmth"] + 1) / 2
    bg = np.asarray(_mix(_COOL, _WARM, warm_t), dtype=float) * (0.3 + 0.8 * v["brightness"])
    bg_rgb = _mix(np.clip(bg, 0, 255), (128, 128, 128), 0.15)
    pal.add("bg", bg_rgb)
    shade = 1.0 + 0.18 * nz["pattern_shift"]
    pal.add("pattern", _mix(np.clip(np.asarray(bg_rgb) * shade, 0, 255), bg_rgb, 0.0))
    skin = _mix(_SKINS[int(nz["skin"])], _GREEN, v["green"])
    pal.add("skin", skin)
    pal.add("outline", (40, 28, 28))
    pal.add("white", (250, 250, 250))
    pal.add("pupil", (20, 20, 30))
    pal.add("mouth", (110, 25, 40))
    pal.add("tongue", (240, 110, 140))
    pal.add("blush", _mix(skin, (240, 90, 120), 0.35 + 0.5 * v["blush"]))
    pal.add("tear", (90, 170, 255))
    pal.add("steam", (215, 215, 220))
    pal.add("heart", (230, 40, 90))
    pal.add("sparkle", (255, 232, 70))
    pal.add("mark", (255, 255, 255))
    return pal


@dataclass
class _Frame:
    """One frame's canvas and head geometry, shared by the drawing helpers below.

    The helpers take it whole so each keeps the original arithmetic verbatim: any change
    in float evaluation order would change the pixels, and the demo pool must stay
    byte-identical per seed."""

    d: ImageDraw.ImageDraw
    pal: _Palette
    v: dict[str, float]
    nz: dict[str, float]
    size: int
    u: float
    t: int
    T: int
    cycles: int
    phase: float
    cx: float
    cy: float
    r: float
    tilt: float
    feat: float


def _draw_background(d: ImageDraw.ImageDraw, pal: _Palette, pattern: int, size: int, u: float) -> None:
    if pattern == 1:
        for x in range(-size, size, int(16 * u)):
            d.line((x, size, x + size, 0), fill=pal["pattern"], width=max(1, int(4 * u)))
    elif pattern == 2:
        step = int(18 * u)
        for yy in range(step // 2, size, step):
            for xx in range(step // 2, size, step):
                d.ellipse((xx - 2 * u, yy - 2 * u, xx + 2 * u, yy + 2 * u), fill=pal["pattern"])


def _draw_steam(fc: _Frame) -> None:
    # Drawn before the head so the puffs sit behind it.
    d, pal, v, u, t, T, cycles = fc.d, fc.pal, fc.v, fc.u, fc.t, fc.T, fc.cycles
    cx, cy, r = fc.cx, fc.cy, fc.r
    if v["steam"] > 0.12:
        for side in (-1, 1):
            for k in range(1 + int(v["steam"] * 2)):
                f = ((t / T) * cycles + k / 3) % 1.0
                sx = cx + side * r * 0.75 + side * 4 * u * f
                sy = cy - r * 0.8 - 18 * u * f
                sr = (3 + 5 * v["steam"] * (1 - 0.5 * f)) * u
                d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=pal["steam"])


def _draw_head(fc: _Frame) -> None:
    d, pal, v, u, cx, cy, r, feat = fc.d, fc.pal, fc.v, fc.u, fc.cx, fc.cy, fc.r, fc.feat
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=pal["skin"], outline=pal["outline"],
              width=max(1, int(2 * u)))
    if v["blush"] > 0.08:
        br = r * (0.1 + 0.14 * v["blush"])
        for side in (-1, 1):
            bx, by = cx + side * r * 0.52, cy + r * 0.2 + feat
            d.ellipse((bx - br, by - br * 0.6, bx + br, by + br * 0.6), fill=pal["blush"])


def _draw_eyes(fc: _Frame) -> tuple[float, float, float]:
    """Eyes and brows; returns (half width, half height, centre y) of the eyes for the tears."""
    d, pal, v, nz, u = fc.d, fc.pal, fc.v, fc.nz, fc.u
    cx, cy, r, tilt, feat = fc.cx, fc.cy, fc.r, fc.tilt, fc.feat
    ew = r * 0.2 * nz["eye_size"]
    eh = ew * (0.1 + 1.25 * v["eye_open"])
    ey = cy - r * 0.15 + feat
    for side in (-1, 1):
        ex = cx + side * r * 0.38
        if v["eye_open"] < 0.18:
            # closed: a happy arc when smiling, a flat lid otherwise
            lift = ew * 0.6 * max(0.0, v["mouth_curve"])
            d.line([(ex - ew, ey), (ex, ey - lift), (ex + ew, ey)], fill=pal["outline"],
                   width=max(1, int(2 * u)), joint="curve")
        else:
            d.ellipse((ex - ew, ey - eh, ex + ew, ey + eh), fill=pal["white"],
                      outline=pal["outline"], width=max(1, int(1.5 * u)))
            pr = min(ew, eh) * 0.55
            px = ex + nz["gaze_dir"] * v["gaze"] * (ew - pr)
            py = ey + tilt * 0.4 * max(eh - pr, 0)
            d.ellipse((px - pr, py - pr, px + pr, py + pr), fill=pal["pupil"])
        # brows: inner end up (worry) or down (anger)
        by = ey - max(eh, ew * 0.4) - (3 + 9 * v["brow_raise"]) * u
        inner = (ex - side * ew * 1.1, by - v["brow_angle"] * 5 * u)
        outer = (ex + side * ew * 1.1, by + v["brow_angle"] * 2 * u)
        d.line([inner, outer], fill=pal["outline"], width=max(2, int(3 * u)))
    return ew, eh, ey


def _draw_tears(fc: _Frame, ew: float, eh: float, ey: float) -> None:
    d, pal, v, u, t, T, cycles = fc.d, fc.pal, fc.v, fc.u, fc.t, fc.T, fc.cycles
    cx, r = fc.cx, fc.r
    if v["tears"] > 0.12:
        n = 1 + int(v["tears"] * 2.5)
        for side in (-1, 1):
            ex = cx + side * r * 0.38
            for k in range(n):
                f = ((t / T) * cycles + k / n) % 1.0
                tx, ty = ex + side * ew * 0.5, ey + eh + f * r * 0.9
                tr = (2 + 2 * v["tears"]) * u
                d.ellipse((tx - tr, ty - tr * 1.3, tx + tr, ty + tr * 1.3), fill=pal["tear"])


def _draw_mouth(fc: _Frame) -> None:
    # A curve whose corners rise for a smile, opened into a dark shape.
    d, pal, v, nz, u, phase = fc.d, fc.pal, fc.v, fc.nz, fc.u, fc.phase
    cx, cy, r, feat = fc.cx, fc.cy, fc.r, fc.feat
    mw = r * 0.34 * nz["mouth_width"] * (1 - 0.35 * v["mouth_open"] * (1 - abs(v["mouth_curve"])))
    my = cy + r * 0.45 + feat * 0.6
    curve = v["mouth_curve"] * r * 0.22
    asym = v["mouth_asym"] * r * 0.14
    opening = v["mouth_open"] * r * 0.38 * (1 + 0.15 * math.sin(2 * phase))
    xs = np.linspace(-1, 1, 9)
    upper = [(cx + x * mw, my - curve * x * x - asym * max(x, 0)) for x in xs]
    if opening > r * 0.05:
        lower = [(cx + x * mw, my - curve * x * x - asym * max(x, 0) + opening * (1 - x * x))
                 for x in xs[::-1]]
        d.polygon(upper + lower, fill=pal["mouth"], outline=pal["outline"])
    else:
        d.line(upper, fill=pal["outline"], width=max(2, int(2.5 * u)), joint="curve")
    if v["tongue"] > 0.2:
        tr = r * (0.08 + 0.12 * v["tongue"])
        ty = my + max(opening, 2 * u) * 0.8
        d.ellipse((cx - tr, ty - tr * 0.5, cx + tr, ty + tr * 1.3), fill=pal["tongue"],
                  outline=pal["outline"])


def _draw_sweat(fc: _Frame) -> None:
    d, pal, v, u, t, T, cycles = fc.d, fc.pal, fc.v, fc.u, fc.t, fc.T, fc.cycles
    cx, cy, r = fc.cx, fc.cy, fc.r
    if v["sweat"] > 0.12:
        sx = cx + r * 0.62
        sy = cy - r * 0.55 + (t / T * cycles % 1.0) * r * 0.25
        sr = (2 + 4 * v["sweat"]) * u
        d.polygon([(sx, sy - 2.2 * sr), (sx - sr, sy), (sx + sr, sy)], fill=pal["tear"])
        d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=pal["tear"])


def _draw_symbols(fc: _Frame, heart_spots: np.ndarray, sparkle_spots: np.ndarray) -> None:
    # The spots are drawn once per GIF (not per frame) so symbols stay put while they bob.
    d, pal, v, u, size, phase = fc.d, fc.pal, fc.v, fc.u, fc.size, fc.phase
    cx, cy, r = fc.cx, fc.cy, fc.r
    for k in range(round(v["hearts"] * 4)):
        a = heart_spots[k]
        hx = cx + math.cos(a) * r * 1.15
        hy = cy + math.sin(a) * r * 1.05 - 5 * u * math.sin(phase + k)
        _heart(d, hx, hy, (4 + 3 * v["hearts"]) * u, pal["heart"])
    for k in range(round(v["sparkles"] * 5)):
        a = sparkle_spots[k]
        sx = cx + math.cos(a) * r * 1.2
        sy = cy + math.sin(a) * r * 1.2
        s = (3 + 4 * v["sparkles"]) * u * (0.6 + 0.4 * abs(math.sin(phase * 2 + k)))
        _sparkle(d, sx, sy, s, pal["sparkle"])
    if v["exclaim"] > 0.15:
        h = (8 + 10 * v["exclaim"]) * u
        for k, ox in enumerate((0.0, 9 * u)[: 1 + int(v["exclaim"] > 0.6)]):
            mx = min(cx + r * 0.95 + ox, size - 4 * u)
            my0 = max(cy - r * 1.05 - h + 2 * u * math.sin(phase * 2 + k), 1)
            d.rectangle((mx - 1.5 * u, my0, mx + 1.5 * u, my0 + h * 0.7), fill=pal["mark"])
            d.ellipse((mx - 1.7 * u, my0 + h * 0.8, mx + 1.7 * u, my0 + h * 0.8 + 3.4 * u),
                      fill=pal["mark"])


def render(spec: DemoSpec, size: int = SIZE) -> tuple[list[Image.Image], list[int]]:
    """The frames (mode P, one shared palette) and per-frame delays in ms of one demo GIF."""
    v = {name: float(spec.params[i]) for i, name in enumerate(PARAM_NAMES)}
    nz = spec.nuisance
    u = size / 128.0
    rng = np.random.default_rng(int(nz["layout"]))
    T = spec.n_frames
    cycles = 1 + round(v["speed"] * 2)
    pal = _demo_palette(v, nz)

    radius = nz["radius"] * u
    base_cx = size / 2 + nz["dx"] * u
    base_cy = size / 2 + nz["dy"] * u
    tilt = v["head_tilt"]
    # The layout rng is drawn in a fixed order (spots, then one shake sample per frame);
    # keep it so every seed renders the same bytes.
    heart_spots = rng.uniform(0, 2 * math.pi, size=4)
    sparkle_spots = rng.uniform(0, 2 * math.pi, size=5)
    pattern = int(nz["pattern"])

    frames: list[Image.Image] = []
    for t in range(T):
        phase = 2 * math.pi * cycles * t / T
        im = Image.new("P", (size, size), pal["bg"])
        im.putpalette(pal.flat())
        d = ImageDraw.Draw(im)
        _draw_background(d, pal, pattern, size, u)

        dx = v["shake"] * 6 * u * math.sin(3 * phase) + v["shake"] * 1.5 * u * rng.normal()
        dy = -v["bounce"] * 11 * u * abs(math.sin(phase)) + tilt * 5 * u
        cx, cy = base_cx + dx, base_cy + dy
        r = radius
        feat = tilt * r * 0.18  # features slide down when the head bows
        fc = _Frame(d, pal, v, nz, size, u, t, T, cycles, phase, cx, cy, r, tilt, feat)

        _draw_steam(fc)
        _draw_head(fc)
        ew, eh, ey = _draw_eyes(fc)
        _draw_tears(fc, ew, eh, ey)
        _draw_mouth(fc)
        _draw_sweat(fc)
        _draw_symbols(fc, heart_spots, sparkle_spots)
        frames.append(im)

    base_cs = 12 - 8 * v["speed"] + nz["delay_jitter"]
    delays = [int(10 * max(3, round(base_cs + (0.5 if t % 2 else 0)))) for t in range(T)]
    return frames, delays


def encode_gif(frames: list[Image.Image], delays: list[int]) -> bytes:
    import io

    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=delays,
                   loop=0, optimize=False, disposal=1)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------
# the pool


def _make_one(args: tuple[int, int, str]) -> tuple[int, str, str, str, list[float]]:
    seed, index, out_dir = args
    spec = sample_spec(seed, index)
    frames, delays = render(spec)
    data = encode_gif(frames, delays)
    rel = f"gifs/demo_{index:05d}.gif"
    path = Path(out_dir) / rel
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    sha = hashlib.sha256(data).hexdigest()
    return index, rel, sha, spec.rating, raw_similarity(spec.params).tolist()


def make_demo_pool(
    out_dir: Path,
    count: int,
    seed: int,
    *,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Write `count` demo GIFs under out_dir/gifs/ and out_dir/manifest.csv; return its path.

    Columns: path, title, tags, rating, sha256, truth_<emotion> x 17 (GIFGIF order).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    out_dir = Path(out_dir)
    (out_dir / "gifs").mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, str(out_dir)) for i in range(count)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    results: list[tuple[int, str, str, str, list[float]]] = []
    if workers <= 1 or count < 16:
        for job in jobs:
            results.append(_make_one(job))
            if on_progress:
                on_progress(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for res in pool.map(_make_one, jobs, chunksize=max(1, min(32, count // (workers * 4)))):
                results.append(res)
                if on_progress:
                    on_progress(1)
    results.sort(key=lambda r: r[0])
    truth = minmax(np.asarray([r[4] for r in results]))
    manifest = out_dir / "manifest.csv"
    tmp = manifest.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "title", "tags", "rating", "sha256", *(f"truth_{n}" for n in NAMES)])
        for (index, rel, sha, rating, _raw), row in zip(results, truth, strict=True):
            writer.writerow([rel, f"demo face {index:05d}", "demo;cartoon", rating, sha,
                             *(f"{x:.4f}" for x in row)])
    os.replace(tmp, manifest)
    return manifest


def read_truth(manifest: Path) -> dict[str, np.ndarray]:
    """sha256 -> the true 17 scores in [0, 1] (GIFGIF order), from a demo manifest."""
    out: dict[str, np.ndarray] = {}
    with Path(manifest).open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [f"truth_{n}" for n in NAMES]
        missing = [c for c in ["sha256", *cols] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest} has no ground truth columns ({', '.join(missing[:3])} ...)")
        for row in reader:
            out[row["sha256"]] = np.asarray([float(row[c]) for c in cols], dtype=np.float64)
    return out
