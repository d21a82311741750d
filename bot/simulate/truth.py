"""The demo pool's hidden truth as the simulation measures against it: each GIF's true 17
scores, held-out pairs per emotion and the true top 1 %. Only the measurement and the
virtual people's clicks read it; the ranker never does.

Part of `bot.simulate` (`moodgif simulate`); see the package's doc for the whole loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scorer.emotions import N_EMOTIONS


@dataclass
class Truth:
    """The evaluation pool's truth, aligned to a list of shas, and the held-out pairs."""

    shas: list[str]
    index: dict[str, int]
    values: np.ndarray  # (N, 17)
    pairs: list[tuple[np.ndarray, np.ndarray]]  # per emotion: (i, j) with truth[i] > truth[j]
    relevant: list[np.ndarray]  # per emotion: bool (N,) the true top 1 %

    @classmethod
    def load(cls, manifest: Path, n_pairs: int, seed: int) -> Truth:
        from scorer.demo_pool import read_truth

        return cls.from_mapping(read_truth(manifest), n_pairs, seed)

    @classmethod
    def from_mapping(cls, truth: dict[str, np.ndarray], n_pairs: int, seed: int) -> Truth:
        shas = sorted(truth)
        values = np.stack([truth[s] for s in shas])
        rng = np.random.default_rng(seed + 777)
        n = len(shas)
        pairs, relevant = [], []
        top = max(5, n // 100)
        for e in range(N_EMOTIONS):
            i = rng.integers(0, n, n_pairs * 3)
            j = rng.integers(0, n, n_pairs * 3)
            d = values[i, e] - values[j, e]
            ok = np.flatnonzero(np.abs(d) >= 0.05)[:n_pairs]
            a = np.where(d[ok] > 0, i[ok], j[ok])
            b = np.where(d[ok] > 0, j[ok], i[ok])
            pairs.append((a, b))
            rel = np.zeros(n, bool)
            rel[np.argsort(-values[:, e], kind="stable")[:top]] = True
            relevant.append(rel)
        return cls(shas, {s: k for k, s in enumerate(shas)}, values, pairs, relevant)
