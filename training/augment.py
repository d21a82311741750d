"""The paper's data augmentation: flipped, scaled, translated and salt-and-pepper copies.

Each copy is a transform of a training GIF's sampled frames, applied the same way to every
frame (so the motion stays intact), then encoded like any GIF. Its features are cached
under the scheme `"<sampling>+aug-<kind>"` (e.g. "sparse+aug-flip") next to the
unaugmented ones, so a second training run never re-encodes. The random parameters come
from a hash of (seed, GIF, kind): the same seed gives the same copies everywhere.

Only training GIFs are augmented; dev and test never are (see training.dataset).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from scorer.settings import Settings

log = logging.getLogger("moodgif.training.augment")

KINDS = ("flip", "scale", "translate", "noise")
SCALE_RANGE = (1.15, 1.35)  # zoom-in factor: crop the centre 1/s and resize back
SHIFT_MAX = 0.12  # largest translation, as a share of width/height
NOISE_SHARE = 0.03  # share of pixels turned black or white


def scheme_name(sampling: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown augmentation {kind!r}; expected one of {KINDS}")
    return f"{sampling}+aug-{kind}"


def _rng(seed: int, sha: str, kind: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{sha}:{kind}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def flip(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames[:, :, ::-1])


def scale(frames: np.ndarray, factor: float) -> np.ndarray:
    """Zoom in by `factor` (>1) about the centre, keeping the frame size."""
    t, h, w, _ = frames.shape
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    out = np.empty_like(frames)
    for i in range(t):
        crop = Image.fromarray(frames[i, y0:y0 + ch, x0:x0 + cw])
        out[i] = np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR))
    return out


def translate(frames: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift by (dy, dx) pixels; the uncovered border repeats the edge pixels."""
    _, h, w, _ = frames.shape
    py, px = abs(dy), abs(dx)
    padded = np.pad(frames, ((0, 0), (py, py), (px, px), (0, 0)), mode="edge")
    y0, x0 = py - dy, px - dx
    return np.ascontiguousarray(padded[:, y0:y0 + h, x0:x0 + w])


def salt_and_pepper(frames: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    out = frames.copy()
    hit = rng.random(frames.shape[:3]) < share
    white = rng.random(frames.shape[:3]) < 0.5
    out[hit & white] = 255
    out[hit & ~white] = 0
    return out


def augment_frames(frames: np.ndarray, kind: str, *, seed: int = 0, sha: str = "") -> np.ndarray:
    """One augmented copy of (T, H, W, 3) uint8 frames."""
    rng = _rng(seed, sha, kind)
    frames = np.asarray(frames, np.uint8)
    if kind == "flip":
        return flip(frames)
    if kind == "scale":
        return scale(frames, float(rng.uniform(*SCALE_RANGE)))
    if kind == "translate":
        h, w = frames.shape[1:3]
        dy = round(float(rng.uniform(-SHIFT_MAX, SHIFT_MAX)) * h)
        dx = round(float(rng.uniform(-SHIFT_MAX, SHIFT_MAX)) * w)
        if dy == 0 and dx == 0:
            dx = 1 if w > 1 else 0
        return translate(frames, dy, dx)
    if kind == "noise":
        return salt_and_pepper(frames, NOISE_SHARE, rng)
    raise ValueError(f"unknown augmentation {kind!r}; expected one of {KINDS}")


class Augmenter:
    """Features of a GIF's augmented copies, encoding (and caching) the missing ones.

    Callable as `augmenter(sha) -> [(scheme, (T, D) features), ...]`, the shape
    `training.dataset.assemble` takes. A GIF whose file cannot be read or decoded is logged
    and gets no copies (training goes on without them). The encoder is built on first need.
    """

    def __init__(self, settings: Settings, *, encoder_id: str, sampling: str = "sparse",
                 kinds: Sequence[str] = KINDS, device: str = "auto",
                 progress: Callable[[int], None] | None = None) -> None:
        self.settings, self.encoder_id, self.sampling = settings, encoder_id, sampling
        self.kinds, self.device, self.progress = tuple(kinds), device, progress
        self._encoder = None
        self.encoded = 0
        self.cached = 0
        self.failed: list[tuple[str, str]] = []

    def __call__(self, sha: str) -> list[tuple[str, np.ndarray]]:
        from scorer.features import load_features, save_features
        from scorer.frames import GifDecodeError, decode_gif, sample_indices
        from scorer.pool import gif_path

        copies: list[tuple[str, np.ndarray]] = []
        missing = []
        for kind in self.kinds:
            scheme = scheme_name(self.sampling, kind)
            cached = load_features(self.settings, sha, self.encoder_id, scheme)
            if cached is None:
                missing.append(kind)
            else:
                copies.append((scheme, cached))
                self.cached += 1
        if missing:
            try:
                full = decode_gif(gif_path(self.settings, sha), max_frames=self.settings.fetch.max_gif_frames,
                                  max_pixels=self.settings.fetch.max_gif_pixels)
                idx = sample_indices(full.n_frames, self.sampling)
                frames, durations = full.frames[idx], full.durations_ms[idx]
            except (GifDecodeError, OSError) as exc:
                log.warning("augment: cannot decode %s: %s", sha[:12], exc)
                self.failed.append((sha, str(exc)))
                frames = None
            if frames is not None:
                if self._encoder is None:
                    from scorer.encoders import get_encoder

                    self._encoder = get_encoder(self.encoder_id, self.settings, device=self.device)
                for kind in missing:
                    scheme = scheme_name(self.sampling, kind)
                    aug = augment_frames(frames, kind, seed=self.settings.training.seed, sha=sha)
                    feats = np.asarray(self._encoder.encode(aug, durations), np.float32)
                    save_features(self.settings, sha, self.encoder_id, scheme, feats)
                    copies.append((scheme, feats))
                    self.encoded += 1
        if self.progress is not None:
            self.progress(1)
        return copies
