"""Tiny synthetic training data for the training tests: learnable, CPU-cheap."""

from __future__ import annotations

import hashlib

import numpy as np

from scorer.emotions import N_EMOTIONS


def sha(n: int) -> str:
    return hashlib.sha256(f"gif{n}".encode()).hexdigest()


def synthetic(n: int = 60, dim: int = 8, seed: int = 0, short: int = 0
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    """({sha: (T, D) features}, {sha: (17,) targets}, {sha: n_frames}).

    Targets are a sigmoid of a fixed linear map of the max-pooled features, so a max-pool
    head can learn them and the mean cannot. The first `short` GIFs have 2 frames.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(dim, N_EMOTIONS))
    feats, targets, frames = {}, {}, {}
    for i in range(n):
        t = 2 if i < short else int(rng.integers(4, 10))
        f = rng.normal(size=(t, dim)).astype(np.float32)
        s = sha(i)
        feats[s] = f
        targets[s] = (1 / (1 + np.exp(-(f.max(axis=0) @ w) / 3))).astype(np.float32)
        frames[s] = t
    return feats, targets, frames
