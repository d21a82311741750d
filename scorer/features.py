"""The on-disk feature cache: one .npy file per (GIF hash, encoder id, sampling scheme).

Layout: `<home>/features/<encoder id>/<scheme>/<sha[:2]>/<sha>.npy`, a (T, D) float32 array.
Files are written to a temporary name in the same folder and renamed into place, so a run
killed at any moment leaves either the whole file or none, and a re-run picks up where
it stopped. Retraining a head reads these files and never re-encodes.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from scorer.settings import Settings

_SAFE = re.compile(r"[^A-Za-z0-9._+@-]")


def _safe(part: str) -> str:
    # Encoder ids are ours, but a CLIP tag is free text: keep path parts boring.
    return _SAFE.sub("_", part)


def feature_path(settings: Settings, sha256: str, encoder_id: str, scheme: str) -> Path:
    return settings.features_dir / _safe(encoder_id) / _safe(scheme) / sha256[:2] / f"{sha256}.npy"


def has_features(settings: Settings, sha256: str, encoder_id: str, scheme: str) -> bool:
    return feature_path(settings, sha256, encoder_id, scheme).is_file()


def load_features(settings: Settings, sha256: str, encoder_id: str, scheme: str) -> np.ndarray | None:
    """(T, D) float32, or None when this GIF has not been encoded with this encoder/scheme."""
    path = feature_path(settings, sha256, encoder_id, scheme)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        # Cannot happen through save_features (atomic); a hand-damaged file counts as absent.
        return None
    return arr.astype(np.float32, copy=False)


def save_features(settings: Settings, sha256: str, encoder_id: str, scheme: str, feats: np.ndarray) -> Path:
    arr = np.asarray(feats, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"features must be (T, D), got {arr.shape}")
    path = feature_path(settings, sha256, encoder_id, scheme)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{sha256[:12]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
