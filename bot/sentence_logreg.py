"""The sentence model's classifier: a multinomial logistic regression on the MiniLM vectors
of the situation bank, fitted once per bank and kept on disk beside the bank's vectors.

Why a regression and not only the kNN vote: on sentences of four words or more it read every
set we could not tune on better (issue 15's fresh set, written after the choice rule was
fixed: top-1 0.873 against 0.810 on its 126 lines; the three held-out sets too), while on one to
three words the kNN vote over near-duplicate bank lines stays better on the tune split
(0.976 against 0.956). So `bot.intent` uses both, by length. Measured with
`benchmarks/bench_intent_cv.py`; the choice is written up in docs/bench/intent.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from scorer.emotions import N_EMOTIONS

log = logging.getLogger(__name__)

# Chosen by the bank's own 5-fold cross-validation over 1e-5..1e-3 (accuracy 0.650, 0.656,
# 0.665, 0.660, 0.635): benchmarks/bench_intent_cv.py prints the sweep.
L2 = 1e-4
MAX_ITER = 400


def fit_softmax_regression(x: np.ndarray, y: np.ndarray, l2: float = L2,
                           sample_weight: np.ndarray | None = None,
                           start: tuple[np.ndarray, np.ndarray] | None = None,
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Weights (D, C) and bias (C,) of a multinomial logistic regression with soft targets
    `y` (rows sum to one) and an L2 penalty on the weights, by L-BFGS. `sample_weight`
    (mean one for the loss to keep its scale) counts some rows more; `start` warm-starts
    the search from an earlier fit (benchmarks/bench_intent_cv.py refits per fold)."""
    from scipy.optimize import minimize  # only when the fit is not cached

    n, d = x.shape
    c = y.shape[1]
    if sample_weight is not None:
        y = y * (np.asarray(sample_weight, dtype=float) * n / float(np.sum(sample_weight)))[:, None]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = w[: d * c].reshape(d, c), w[d * c:]
        z = x @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        value = -(y * np.log(p + 1e-12)).sum() / n + 0.5 * l2 * float((weights ** 2).sum())
        g = (p * y.sum(axis=1, keepdims=True) - y) / n
        return value, np.concatenate([(x.T @ g + l2 * weights).ravel(), g.sum(axis=0)])

    x0 = np.zeros(d * c + c) if start is None else np.concatenate([start[0].ravel(), start[1]])
    res = minimize(loss, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": MAX_ITER})
    return res.x[: d * c].reshape(d, c), res.x[d * c:]


def one_hot(owner: np.ndarray) -> np.ndarray:
    y = np.zeros((len(owner), N_EMOTIONS))
    y[np.arange(len(owner)), owner] = 1.0
    return y


def cached_regression(vectors: np.ndarray, owner: np.ndarray, cache_dir: Path
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The bank's regression, fitted once per (bank vectors, owners, L2) and kept on disk: a
    few seconds of fitting at the first start after the bank changes, none after. A cache
    that cannot be read or written only costs the fit."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(owner, dtype=np.int64).tobytes())
    h.update(f"{L2}:{MAX_ITER}".encode())
    path = cache_dir / f"logreg-{h.hexdigest()[:24]}.npz"
    try:
        with np.load(path) as kept:
            weights, bias = kept["weights"], kept["bias"]
        if weights.shape == (vectors.shape[1], N_EMOTIONS) and bias.shape == (N_EMOTIONS,):
            return weights.astype(np.float32), bias.astype(np.float32)
    except Exception:  # missing or corrupt: fit again
        pass
    weights, bias = fit_softmax_regression(vectors.astype(np.float64), one_hot(owner))
    weights, bias = weights.astype(np.float32), bias.astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, weights=weights, bias=bias)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("intent: the sentence regression is not cached on disk (%s)", exc)
    return weights, bias
