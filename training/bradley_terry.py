"""Per-emotion Bradley-Terry fits: the scores that the heads learn and the ranker shows.

Model (Bradley & Terry 1952; Zermelo 1929). Each GIF ``i`` has a log-strength ``theta_i`` on
an emotion, and ``P(i beats j) = e^theta_i / (e^theta_i + e^theta_j) = expit(theta_i - theta_j)``.

Every fit here maximises one log-posterior, in the style of choix (one function per
algorithm over plain numpy arrays)::

    L(theta) = sum_pairs loglik(theta_u - theta_v)            # the comparisons
             + alpha * sum_i (theta_i - exp(theta_i))          # Gamma(alpha) prior on e^theta
                                                               #   (theta - m with a prior mean)
             - prior_strength / 2 * sum_i (theta_i - m_i)^2    # Gaussian prior N(m_i, 1/s)

* The Gamma prior is the one of ``choix.mm_pairwise(alpha)`` (Caron & Doucet 2012): its MAP
  is exactly choix's MM fixed point. It keeps GIFs that never lost (or never won) finite.
  When a prior mean is given, the Gamma term is centred on it too
  (``alpha * (theta - m - exp(theta - m))``), so the two priors never pull apart (an
  uncentred ``exp(theta)`` would drag a GIF predicted at logit 4 down by ~5).
* The Gaussian prior is the scorer's prediction in logit units (``prediction_to_prior``):
  a GIF with few votes stays near it, many votes override it. With ``alpha=0``,
  ``prior_mean=0`` and ``prior_strength=2a`` it is the objective of
  ``choix.opt_pairwise(alpha=a)``.

"Neither" answers (ties) are handled by ``ties``:

* ``"drop"``: ignored (the paper's way).
* ``"half"``: half a win each way (cheap; slightly better than dropping in
  ``../shared/notes/bradley-terry.md``).
* ``"davidson"``: the Davidson (1970) tie model,
  ``P(i>j) : P(j>i) : P(tie) = pi_i : pi_j : nu*sqrt(pi_i*pi_j)``, with ``nu`` fitted.
  Decisive outcomes are then exactly Bradley-Terry.

Algorithms: ``newton`` (inexact Newton; the Hessian is the weighted graph Laplacian of the
comparison graph plus the prior, kept in CSR with a fixed sparsity pattern, steps from
Jacobi-preconditioned CG with an Armijo line search) and ``mm`` (Hunter 2004 /
Zermelo's iteration, the same update and normalisation as ``choix.mm_pairwise``, vectorised
with ``np.bincount``). Newman's (2023) iteration is not offered: with the Gamma prior it is
only marginally stable for GIFs that never lost (see the notes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from scorer.emotions import N_EMOTIONS
from training.bt_csv import GifgifData, read_gifgif_csv

__all__ = [
    "BTResult",
    "GifgifData",
    "PairData",
    "aggregate",
    "aggregate_by_emotion",
    "expit",
    "fit",
    "fit_all",
    "logit",
    "minmax_scale",
    "prediction_to_prior",
    "read_gifgif_csv",
    "robust_scale",
    "robust_scale_params",
    "shrink",
]

TIES = ("drop", "half", "davidson")
METHODS = ("newton", "mm")


# --- data ---------------------------------------------------------------------------------


@dataclass
class PairData:
    """Comparisons of one emotion aggregated per unordered pair ``left < right``.

    ``wins_left[k]`` is the (weighted) number of times ``left[k]`` beat ``right[k]``;
    ``ties[k]`` the number of "neither" answers for that pair.
    """

    n_items: int
    left: np.ndarray
    right: np.ndarray
    wins_left: np.ndarray
    wins_right: np.ndarray
    ties: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.left)

    @property
    def decisive(self) -> float:
        return float(self.wins_left.sum() + self.wins_right.sum())

    def comparisons_per_item(self, *, with_ties: bool = True) -> np.ndarray:
        """How many comparisons (weighted) each item took part in."""
        total = self.wins_left + self.wins_right + (self.ties if with_ties else 0.0)
        n = self.n_items
        return np.bincount(self.left, total, n) + np.bincount(self.right, total, n)


def aggregate(
    n_items: int,
    winners: np.ndarray,
    losers: np.ndarray,
    ties_mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> PairData:
    """Sum comparisons ``winners[k]`` beat ``losers[k]`` into per-pair counts.

    Where ``ties_mask[k]`` is true the comparison is a tie ("neither") between the two items,
    whichever is called the winner. ``weights`` scale each comparison (default 1).
    Self-comparisons (winner == loser) carry no information and are dropped.
    """
    return aggregate_by_emotion(
        n_items, np.zeros(len(np.asarray(winners)), np.int64), winners, losers,
        ties_mask, weights, n_emotions=1,
    )[0]


def aggregate_by_emotion(
    n_items: int,
    emotion: np.ndarray,
    winners: np.ndarray,
    losers: np.ndarray,
    ties_mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    n_emotions: int = N_EMOTIONS,
) -> list[PairData]:
    """``aggregate`` for every emotion at once (one grouping pass over all comparisons)."""
    return [one() for one in _emotion_aggregators(
        n_items, emotion, winners, losers, ties_mask, weights, n_emotions)]


def _emotion_aggregators(n_items: int, emotion, winners, losers, ties_mask, weights,  # type: ignore[no-untyped-def]
                         n_emotions: int) -> list:
    """Checks the comparisons and groups them by emotion; returns one callable per emotion
    that aggregates its pairs (so ``fit_all`` can run them in its worker threads)."""
    emotion, w, lo, tie, wt = _checked_comparisons(n_items, emotion, winners, losers, ties_mask,
                                                   weights, n_emotions)
    # Group by emotion with a stable sort of a 16-bit key (numpy radix-sorts those), then one
    # small sort per emotion: 17 cache-sized sorts beat one sort of everything by ~5x. The
    # inputs keep their dtype (int32 from the reader) to spare memory at 27M rows.
    order = np.argsort(emotion.astype(np.int16), kind="stable")
    bounds = np.searchsorted(emotion[order], np.arange(n_emotions + 1))
    return [lambda e=e: _aggregate_rows(order[bounds[e]: bounds[e + 1]], w, lo, tie, wt, n_items)
            for e in range(n_emotions)]


def _checked_comparisons(n_items: int, emotion, winners, losers, ties_mask, weights,  # type: ignore[no-untyped-def]
                         n_emotions: int) -> tuple:
    """The comparisons as arrays (emotion, winners, losers, ties, weights or None), or a
    ValueError that says which input is wrong."""
    emotion = np.asarray(emotion)
    w = np.asarray(winners)
    lo = np.asarray(losers)
    m = len(w)
    if not (len(lo) == len(emotion) == m):
        raise ValueError("emotion, winners and losers must have the same length")
    if m and not all(np.issubdtype(x.dtype, np.integer) for x in (emotion, w, lo)):
        raise ValueError("emotion, winners and losers must be integer arrays")
    tie = np.zeros(m, bool) if ties_mask is None else np.asarray(ties_mask, bool)
    wt = None if weights is None else np.asarray(weights, np.float64)
    if len(tie) != m or (wt is not None and len(wt) != m):
        raise ValueError("ties_mask and weights must have one entry per comparison")
    if m and (min(w.min(), lo.min()) < 0 or max(w.max(), lo.max()) >= n_items):
        raise ValueError(f"item indices must lie in 0..{n_items - 1}")
    if m and (emotion.min() < 0 or emotion.max() >= n_emotions):
        raise ValueError(f"emotion indices must lie in 0..{n_emotions - 1}")
    if wt is not None and m and (not np.all(np.isfinite(wt)) or wt.min() < 0):
        raise ValueError("weights must be finite and non-negative")
    return emotion, w, lo, tie, wt


def _aggregate_rows(rows: np.ndarray, w: np.ndarray, lo: np.ndarray, tie: np.ndarray,
                    wt: np.ndarray | None, n_items: int) -> PairData:
    """One emotion's comparisons (`rows`) as wins and ties per unordered pair."""
    we, le = w[rows].astype(np.int64), lo[rows].astype(np.int64)
    keep = we != le  # a GIF against itself says nothing
    rows, we, le = rows[keep], we[keep], le[keep]
    te = tie[rows]
    wte = np.ones(len(rows)) if wt is None else wt[rows]
    u = np.minimum(we, le)
    uniq, inv = _group_pairs(u, np.maximum(we, le), n_items)
    npairs = len(uniq)
    left_won = (we == u) & ~te
    wins_left = np.bincount(inv, wte * left_won, npairs).astype(np.float64)
    wins_right = np.bincount(inv, wte * (~te & ~left_won), npairs).astype(np.float64)
    ties = np.bincount(inv, wte * te, npairs).astype(np.float64)
    return PairData(
        int(n_items), (uniq // n_items).astype(np.int32), (uniq % n_items).astype(np.int32),
        wins_left, wins_right, ties,
    )


def _group_pairs(u: np.ndarray, v: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(u * n + v, return_inverse=True)``, faster for pools under 65,536 GIFs.

    There the ids fit in 16 bits, and numpy's stable sort of 16-bit keys is a radix sort:
    two of them (by v, then by u) order the pairs in O(m), where ``np.unique`` runs a
    comparison argsort of 64-bit keys (~3x slower at GIFGIF size).
    """
    key = u * np.int64(n_items) + v
    if n_items > 1 << 16 or len(key) == 0:
        return np.unique(key, return_inverse=True)
    order = np.argsort(v.astype(np.uint16), kind="stable")
    order = order[np.argsort(u[order].astype(np.uint16), kind="stable")]
    sorted_key = key[order]
    first = np.empty(len(key), bool)
    first[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=first[1:])
    group = np.cumsum(first) - 1
    inv = np.empty(len(key), np.int64)
    inv[order] = group
    return sorted_key[first], inv


# --- results ------------------------------------------------------------------------------


@dataclass
class BTResult:
    """A fit of one emotion.

    ``theta``: log-strengths; centred (mean 0 over all items) unless a prior mean was given,
    in which case they are on the prior's scale. ``se``: posterior standard deviation of
    each ``theta`` from the curvature of the log-posterior at the optimum (see ``_posterior_se``).
    ``nu``: the fitted Davidson tie parameter (``ties="davidson"`` only).
    """

    theta: np.ndarray
    se: np.ndarray
    iterations: int
    converged: bool
    nu: float | None = None
    n_compared: np.ndarray | None = None  # comparisons per item (ties included)


# --- the per-pair likelihood -------------------------------------------------------------


_PairArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _counted_pairs(data: PairData, ties: str) -> _PairArrays:
    """``(left, right, wins_left, wins_right, ties)`` as the tie model counts them: ``"half"``
    makes a tie half a win each way, ``"drop"`` forgets it.

    Pairs with nothing left to count (e.g. only ties, dropped) are removed: they would only
    add zeros to every pass.
    """
    u, v = data.left.astype(np.intp), data.right.astype(np.intp)
    a, b, t = data.wins_left, data.wins_right, data.ties
    if ties == "half":
        a, b, t = a + 0.5 * t, b + 0.5 * t, np.zeros_like(t)
    elif ties == "drop":
        t = np.zeros_like(t)
    live = (a + b + t) > 0
    if live.all():
        return u, v, a, b, t
    return u[live], v[live], a[live], b[live], t[live]


def _in_csr_order(n: int, u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray,
                  t: np.ndarray) -> _PairArrays:
    """The pairs sorted by (left, right), checked distinct with left < right.

    The Hessian keeps the pairs in that order as an upper-triangular CSR whose data *is* the
    per-pair curvature (no permutation per iteration). ``aggregate`` already returns them in
    that order; anything else is sorted once here.
    """
    key = u.astype(np.int64) * np.int64(max(n, 1)) + v
    if len(key) > 1 and not bool(np.all(key[1:] > key[:-1])):
        order = np.argsort(key, kind="stable")
        key = key[order]
        if np.any(key[1:] == key[:-1]) or np.any(u >= v):
            raise ValueError(
                "PairData pairs must be distinct with left < right (use aggregate)")
        return u[order], v[order], a[order], b[order], t[order]
    if len(key) and np.any(u >= v):
        raise ValueError("PairData pairs must be distinct with left < right (use aggregate)")
    return u, v, a, b, t


def _gaussian_prior(n: int, prior_mean: np.ndarray | None,
                    prior_strength: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-item mean and strength of the Gaussian prior (fresh arrays, the caller's untouched)."""
    strength = np.broadcast_to(np.asarray(prior_strength, np.float64), (n,)).copy()
    if prior_mean is None:
        return np.zeros(n), strength  # prior_strength alone is an L2 penalty (choix.opt's)
    mean = np.asarray(prior_mean, np.float64).copy()
    if mean.shape != (n,):
        raise ValueError(f"prior_mean must have shape ({n},), not {mean.shape}")
    missing = ~np.isfinite(mean)  # a GIF with no prediction has no Gaussian prior
    mean[missing] = 0.0
    strength[missing] = 0.0
    return mean, strength


class _Model:
    """Objective, gradient and Hessian pieces of the log-posterior (negated: we minimise)."""

    def __init__(
        self,
        data: PairData,
        ties: str,
        alpha: float,
        prior_mean: np.ndarray | None,
        prior_strength: float | np.ndarray,
    ) -> None:
        self.n = data.n_items
        self.ties = ties
        pairs = _counted_pairs(data, ties)
        self.u, self.v, self.a, self.b, self.t = _in_csr_order(self.n, *pairs)
        self.total = self.a + self.b + self.t
        self.n_ties = float(self.t.sum())
        self.alpha = float(alpha)
        self.mean, self.strength = _gaussian_prior(self.n, prior_mean, prior_strength)
        self.sums = _PairSums(self.n, self.u, self.v)
        self.per_left = np.bincount(self.u, minlength=self.n)  # pairs per left item
        # Scratch arrays (row 0 unused) and the curvature; value_grad's grad and curv live
        # here until its next call (the Newton loop is done with them by then).
        self._work = np.empty((4, len(self.u))) if ties != "davidson" else None
        self.has_mean = prior_mean is not None
        self.nu = self._moment_nu() if ties == "davidson" else 1.0

    def _moment_nu(self) -> float:
        """Davidson's nu from the share of ties: P(tie) = nu / (2 + nu) between equal items."""
        decisive = float(self.a.sum() + self.b.sum())
        return float(np.clip(2 * self.n_ties / max(decisive, 1e-12), 1e-6, 1e6))

    # Per-pair terms as functions of d = theta_u - theta_v: (loglik sum, dloglik/dd, -d2/dd2).
    def pair_terms(self, d: np.ndarray, with_value: bool = True):
        """``with_value=False`` skips the log-likelihood (returned as None): the Newton loop
        needs it only when its gradient test cannot accept a step (``_fit_newton``)."""
        a, b = self.a, self.b
        if self.ties != "davidson":
            # Only SIMD-vectorised numpy ufuncs (exp, log1p, copysign, arithmetic): this runs
            # ~10 times per emotion, and scipy's expit/log_expit or np.where cost 10-60x an
            # exp per element. With q = expit(|d|) = 1 / (1 + e^-|d|):
            #   log P(u beats v) = -(max(-d, 0) + log1p(e^-|d|))
            #   P(u beats v) = 1/2 + copysign(q - 1/2, d), and p (1 - p) = e^-|d| q^2.
            # Work arrays are reused across calls: a fresh 1 MB temporary costs page faults
            # that took longer than the arithmetic (measured 10x on an op like 1 / (1 + x)).
            tot = self.total
            ex, buf, curv = self._work[1], self._work[2], self._work[3]
            np.abs(d, out=ex)
            np.negative(ex, out=ex)
            np.exp(ex, out=ex)
            ll = None
            if with_value:
                np.negative(d, out=buf)
                np.maximum(buf, 0.0, out=buf)
                np.log1p(ex, out=curv)
                buf += curv
                ll = -_dot(tot, buf, curv) - _dot(b, d, curv)
            q = np.add(ex, 1.0, out=buf)
            np.reciprocal(q, out=q)
            np.multiply(ex, q, out=curv)
            curv *= q
            curv *= tot
            q -= 0.5
            p = np.copysign(q, d, out=q)
            p += 0.5
            p *= tot
            grad = np.subtract(a, p, out=p)
            return ll, grad, curv
        x = np.clip(0.5 * d, -300.0, 300.0)
        nu = self.nu
        ch = np.cosh(x)
        den = 2.0 * ch + nu
        tot = self.total
        ll = 0.5 * _dot(a - b, d) + self.n_ties * np.log(nu) - _dot(tot, np.log(den))
        grad = 0.5 * (a - b) - tot * np.sinh(x) / den
        curv = tot * (1.0 + 0.5 * nu * ch) / (den * den)
        return ll, grad, curv

    def value_grad(self, theta: np.ndarray, with_value: bool = True):
        """Negated log-posterior (None if not ``with_value``), its gradient, per-pair
        curvature and prior diagonal."""
        if self.ties == "davidson":
            d = theta[self.u] - theta[self.v]
        else:
            # The pairs are sorted by u, so theta[u] is a repeat (4x cheaper than a gather).
            tmp = self._work[1]
            d = np.repeat(theta, self.per_left)
            np.take(theta, self.v, out=tmp)
            d -= tmp
        ll, gd, curv = self.pair_terms(d, with_value or self.ties == "davidson")
        dev = theta - self.mean
        e = np.exp(np.minimum(dev, 700.0))
        f = None
        if ll is not None:
            f = -ll + self.alpha * (e - dev).sum() + 0.5 * (self.strength * dev * dev).sum()
        g = self.sums.col(gd) - self.sums.row(gd)
        g += self.alpha * (e - 1.0) + self.strength * dev
        prior_diag = self.alpha * e + self.strength
        return f, g, curv, prior_diag

    def update_nu(self, theta: np.ndarray) -> float:
        """Maximise the Davidson likelihood over nu for fixed theta (1-D Newton in log nu)."""
        if self.n_ties == 0:
            self.nu = 1e-12
            return self.nu
        x = np.clip(0.5 * (theta[self.u] - theta[self.v]), -300.0, 300.0)
        c = 2.0 * np.cosh(x)
        s = np.log(self.nu)
        for _ in range(50):
            nu = np.exp(s)
            r = self.total * nu / (c + nu)
            g = self.n_ties - r.sum()  # d/ds of the likelihood
            h = (r * c / (c + nu)).sum()  # minus the second derivative
            step = g / max(h, 1e-300)
            s = float(np.clip(s + step, -30.0, 30.0))
            if abs(step) < 1e-12:
                break
        self.nu = float(np.exp(s))
        return self.nu


class _Laplacian:
    """The Hessian ``L(w) + diag(prior)`` in CSR with a sparsity pattern built once."""

    def __init__(self, n: int, u: np.ndarray, v: np.ndarray) -> None:
        self.n, self.u, self.v = n, u, v
        m = len(u)
        ar = np.arange(n)
        rows = np.concatenate([u, v, ar])
        cols = np.concatenate([v, u, ar])
        # scipy's COO->CSR conversion is a counting sort in C; carrying each entry's position
        # as its value gives the permutation into CSR order (exact in float64).
        csr = sp.coo_matrix(
            (np.arange(2 * m + n, dtype=np.float64), (rows, cols)), shape=(n, n)
        ).tocsr()
        if csr.nnz != 2 * m + n:
            raise ValueError("PairData pairs must be distinct with left < right (use aggregate)")
        self.order = csr.data.astype(np.intp)
        self.matrix = csr
        self._vals = np.empty(2 * m + n)
        self.m = m

    def assemble(self, curv: np.ndarray, prior_diag: np.ndarray) -> np.ndarray:
        """Fill in the weights; returns the diagonal (for the Jacobi preconditioner)."""
        m, n = self.m, self.n
        diag = np.bincount(self.u, curv, n) + np.bincount(self.v, curv, n) + prior_diag
        self._vals[:m] = -curv
        self._vals[m : 2 * m] = -curv
        self._vals[2 * m :] = diag
        self.matrix.data[:] = self._vals[self.order]
        return diag


class _PairSums:
    """Per-item sums of a per-pair quantity over the pairs where the item is left (``row``)
    or right (``col``): ``np.bincount(u, w, n)`` and ``np.bincount(v, w, n)``, computed as
    sparse products with a vector of ones (about 5x faster than bincount, which casts and
    range-checks its inputs on every call). Pairs must be sorted by (u, v)."""

    def __init__(self, n: int, u: np.ndarray, v: np.ndarray) -> None:
        indptr = np.searchsorted(u, np.arange(n + 1)).astype(np.int64)
        self.upper = sp.csr_matrix((np.zeros(len(u)), v.astype(np.int64), indptr), shape=(n, n))
        self.lower = self.upper.T  # CSC view over the same arrays
        self.ones = np.ones(n)

    def row(self, w: np.ndarray) -> np.ndarray:
        self.upper.data = w
        return self.upper @ self.ones

    def col(self, w: np.ndarray) -> np.ndarray:
        self.lower.data = w
        return self.lower @ self.ones


class _UpperHessian:
    """The Hessian ``diag(D) - (A + A')`` with ``A`` the upper-triangular pair curvatures.

    ``A`` is a CSR matrix over the pairs in (left, right) order, whose ``data`` array is
    replaced by the new curvatures each iteration: no scatter, no permutation (the full
    symmetric CSR cost a 2m-entry gather per Newton iteration). ``A'`` is its CSC view
    sharing the same arrays, so a product costs the same m + m multiply-adds.
    """

    def __init__(self, n: int, u: np.ndarray, v: np.ndarray) -> None:
        sums = _PairSums(n, u, v)
        self.sums = sums
        self.upper, self.lower = sums.upper, sums.lower
        self.diag = np.zeros(n)

    def assemble(self, curv: np.ndarray, prior_diag: np.ndarray) -> np.ndarray:
        """Takes the curvatures; returns the diagonal (for the Jacobi preconditioner)."""
        self.diag = self.sums.row(curv) + self.sums.col(curv) + prior_diag
        self.upper.data = curv
        self.lower.data = curv
        return self.diag

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        out = self.diag * x
        out -= self.upper @ x
        out -= self.lower @ x
        return out


def _expit(x) -> np.ndarray:  # type: ignore[no-untyped-def]
    """1 / (1 + e^-x) without overflow, in numpy (scipy.special costs `bt-fit` 0.2 s to
    import). Equal to scipy's expit to the last bit or two."""
    x = np.asarray(x, np.float64)
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out[()]


def _logit(p) -> np.ndarray:  # type: ignore[no-untyped-def]
    """log(p / (1 - p)): -inf at 0, inf at 1, NaN outside [0, 1] (as scipy's logit)."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(p / (1.0 - p))[()]


def _dot(x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> float:
    """x . y without BLAS: OpenBLAS threads its ddot on long vectors, and on a busy 2-core
    machine those threads wait on each other - the fit measured 6x slower with BLAS dots.
    ``out``: a scratch array of x's shape (spares a temporary)."""
    return float(np.multiply(x, y, out=out).sum())


def _pcg(mat, b: np.ndarray, dinv: np.ndarray, rtol: float, maxiter: int):
    """Jacobi-preconditioned conjugate gradients for ``mat @ x = b`` (mat SPD)."""
    x = np.zeros_like(b)
    r = b.copy()
    z = dinv * r
    p = z.copy()
    rz = _dot(r, z)
    target = rtol * np.sqrt(_dot(b, b))
    if target == 0.0:
        return x
    for _ in range(maxiter):
        ap = mat @ p
        step = rz / _dot(p, ap)
        x += step * p
        r -= step * ap
        if np.sqrt(_dot(r, r)) <= target:
            break
        z = dinv * r
        rz_new = _dot(r, z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def _check_args(data: PairData, ties: str, alpha: float, prior_strength, method: str) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if alpha < 0 or np.any(np.asarray(prior_strength) < 0):
        raise ValueError("alpha and prior_strength must be >= 0")
    if alpha == 0 and np.all(np.asarray(prior_strength) == 0):
        raise ValueError(
            "a prior is required (alpha > 0 or prior_strength > 0): without one, GIFs that "
            "never lost or never won have infinite scores"
        )
    if data.n_items < 1:
        raise ValueError("n_items must be >= 1")


# --- the fits -----------------------------------------------------------------------------


def fit(
    data: PairData,
    *,
    ties: str = "half",
    alpha: float = 0.1,
    prior_mean: np.ndarray | None = None,
    prior_strength: float | np.ndarray = 0.0,
    method: str = "newton",
    theta0: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iter: int = 200,
    se_method: str = "neumann",
) -> BTResult:
    """MAP Bradley-Terry log-strengths of one emotion (the module docstring gives the model).

    ``method="newton"`` stops when the mean absolute Newton step is below ``tol``;
    ``method="mm"`` uses choix's rule (mean absolute change of the centred parameters
    below ``tol``) and needs no prior mean or strength and ``ties`` "drop" or "half"; it takes
    ~150 iterations at GIFGIF scale, so pass a larger ``max_iter``. ``theta0`` warm-starts
    either. ``se_method``: "neumann" (default, fast) or "exact" (dense inverse, small n only).
    """
    _check_args(data, ties, alpha, prior_strength, method)
    if se_method not in ("neumann", "exact"):
        raise ValueError(f"se_method must be 'neumann' or 'exact', not {se_method!r}")
    model = _Model(data, ties, alpha, prior_mean, prior_strength)
    curvature = None
    if method == "mm":
        theta, iters, ok = _fit_mm(model, theta0, tol, max_iter)
    else:
        theta, iters, ok, curvature = _fit_newton(model, theta0, tol, max_iter)
    se = _posterior_se(model, theta, se_method, curvature)
    if not model.has_mean:
        theta = theta - theta.mean()
    counts = data.comparisons_per_item(with_ties=True)
    return BTResult(
        theta, se, iters, ok, nu=model.nu if ties == "davidson" else None, n_compared=counts
    )


def _start(model: _Model, theta0: np.ndarray | None) -> np.ndarray:
    if theta0 is not None:
        theta = np.asarray(theta0, np.float64).copy()
        if theta.shape != (model.n,):
            raise ValueError(f"theta0 must have shape ({model.n},), not {theta.shape}")
        return np.nan_to_num(theta, nan=0.0, posinf=0.0, neginf=0.0)
    return model.mean.copy() if model.has_mean else np.zeros(model.n)


def _newton_start(model: _Model, theta0: np.ndarray | None) -> np.ndarray:
    """``_start``, except that a cold fit without a prior mean starts from each GIF's own
    log-odds of winning, log((wins + 1) / (losses + 1)), centred: about one Newton
    iteration closer to the optimum than zeros (the optimum itself does not move)."""
    if theta0 is not None or model.has_mean or model.ties == "davidson":
        return _start(model, theta0)
    sums = model.sums
    wins = sums.row(model.a) + sums.col(model.b)
    losses = sums.row(model.b) + sums.col(model.a)
    theta = np.log((wins + 1.0) / (losses + 1.0))
    return theta - theta.mean()


# The CG solve of each Newton step stops at a residual of min(FORCING_CAP, sqrt(max |g|))
# times the gradient's. 0.5 made the first iterations near-gradient steps (one CG
# iteration each) and a cold fit took 8-9 of them; 0.003 takes 4-6, each a few CG
# iterations dearer - a net saving, since one gradient pass costs several Hessian products.
FORCING_CAP = 0.003
ARMIJO = 1e-4


def _fit_newton(model: _Model, theta0, tol: float, max_iter: int):
    """Inexact Newton: CSR Laplacian Hessian, Jacobi-PCG steps, Armijo backtracking.

    Returns (theta, iterations, converged, (curv, prior_diag) at theta) - the curvature the
    standard errors need, so they cost no extra pass.
    """
    theta = _newton_start(model, theta0)
    convex = model.ties != "davidson"
    if not convex:
        model.update_nu(theta)
    hess = _UpperHessian(model.n, model.u, model.v)  # shares nothing with model.sums
    f, g, curv, pdiag = model.value_grad(theta, with_value=not convex)
    for it in range(1, max_iter + 1):
        diag = hess.assemble(curv, pdiag)
        gmax = float(np.abs(g).max())
        if gmax == 0.0:  # already at the optimum (e.g. no comparisons: theta is the prior's)
            return theta, it - 1, True, (curv, pdiag)
        # Forcing term: loose solves far away, tight near the optimum (superlinear).
        rtol = max(min(FORCING_CAP, np.sqrt(gmax)), 1e-12)
        step = _pcg(hess, -g, 1.0 / diag, rtol, maxiter=500)
        slope = _dot(g, step)
        cand = theta + step
        t = 1.0
        if convex and _full_step_decreases(step, slope, _dot(step, hess @ step)):
            f = None  # f(cand) stays unknown: computed only if a later step needs Armijo
            f_new, g_new, curv_new, pdiag_new = model.value_grad(cand, with_value=False)
        else:
            if f is None:
                f = model.value_grad(theta)[0]
            while True:
                f_new, g_new, curv_new, pdiag_new = model.value_grad(cand)
                if f_new <= f + ARMIJO * t * slope or t < 1e-10:
                    break
                t *= 0.5
                cand = theta + t * step
        move = t * step
        theta = cand
        f, g, curv, pdiag = f_new, g_new, curv_new, pdiag_new
        nu_moved = 0.0
        if not convex:
            old = model.nu
            model.update_nu(theta)
            nu_moved = abs(np.log(model.nu) - np.log(old))
            f, g, curv, pdiag = model.value_grad(theta)
        if np.mean(np.abs(move)) <= tol and nu_moved <= tol:
            return theta, it, True, (curv, pdiag)
    return theta, max_iter, False, (curv, pdiag)


def _full_step_decreases(step: np.ndarray, slope: float, curvature: float) -> bool:
    """Whether f(theta + step) <= f(theta) + ARMIJO * slope is certain without evaluating f.

    Along the step, phi(t) = f(theta + t step) has phi'(0) = slope and phi''(0) = curvature.
    Each pair's term is a log-logistic of d = theta_u - theta_v, whose second derivative
    changes by at most a factor e^|dd| when d moves by dd (|l'''| <= l''), and |dd| is at
    most the range of the step; the Gamma prior's grows by at most a factor e^max(step); the
    Gaussian's is constant. So phi''(t) <= phi''(0) e^(R t), and integrating twice,
    phi(1) - phi(0) <= slope + curvature * (e^R - 1 - R) / R^2. Near the optimum (R small)
    this certifies the full Newton step, and the log-likelihood pass is skipped.
    """
    r = max(float(step.max() - step.min()), float(step.max()), 0.0)
    if r > 2.0:
        return False
    h = 0.5 if r < 1e-6 else (np.expm1(r) - r) / (r * r)
    return slope + curvature * h <= ARMIJO * slope


def _fit_mm(model: _Model, theta0, tol: float, max_iter: int):
    """Hunter's MM with choix's Gamma prior, update and stopping rule, vectorised."""
    if model.ties == "davidson" or model.has_mean or np.any(model.strength > 0):
        raise ValueError('method="mm" supports ties "drop"/"half" and no prior_mean')
    if model.alpha <= 0:
        raise ValueError('method="mm" needs alpha > 0')
    n, u, v = model.n, model.u, model.v
    wins = np.bincount(u, model.a, n) + np.bincount(v, model.b, n) + model.alpha
    tot = model.a + model.b
    params = _start(model, theta0)
    prev = None
    for iteration in range(1, max_iter + 1):
        w = np.exp(params - params.mean())
        w *= n / w.sum()
        s = tot / (w[u] + w[v])
        denoms = np.bincount(u, s, n) + np.bincount(v, s, n) + model.alpha
        params = np.log(wins / denoms)
        params -= params.mean()
        if prev is not None and np.abs(params - prev).sum() <= tol * n:
            return _mm_uncentred(params), iteration, True
        prev = params
    return _mm_uncentred(params), max_iter, False


def _mm_uncentred(params: np.ndarray) -> np.ndarray:
    # At the Gamma-prior MAP, sum(e^theta) = n; choix's normalisation gives that point back.
    w = np.exp(params - params.mean())
    return np.log(w * (len(w) / w.sum()))


def _posterior_se(model: _Model, theta: np.ndarray, method: str,
                  curvature: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Standard deviations from the Hessian H of the negated log-posterior at the optimum.

    Without a prior mean the scores are centred, so the variance wanted is that of
    ``theta_i - mean(theta)``: the diagonal of ``P H^-1 P`` with ``P = I - 11'/n``. (The
    uncentred ``H^-1`` adds the variance of a global shift, 1/(alpha * n) for the Gamma prior,
    which says nothing about a GIF.) With a prior mean the location is meaningful and the
    plain ``diag(H^-1)`` is used.

    ``"exact"``: by a dense inverse (O(n^3); tests and small pools).
    ``"neumann"``: the first two terms of the Neumann series of H^-1 around its diagonal D,
    ``var_i ~ 1/D_i * (1 + sum_j H_ij^2 / (D_i D_j))`` - the Jacobi estimate plus the
    uncertainty a GIF inherits from its opponents. The series' later terms are dominated by
    the global shift mode, so truncating it approximates the centred variance;
    docs/bradley-terry.md says how close it is.
    """
    curv, pdiag = curvature or model.value_grad(theta, with_value=False)[2:]
    n, u, v = model.n, model.u, model.v
    sums = model.sums  # per-item sums as sparse products: ~5x cheaper than np.bincount
    diag = sums.row(curv) + sums.col(curv) + pdiag
    if method == "exact":
        hess = _Laplacian(n, u, v)
        hess.assemble(curv, pdiag)
        cov = np.linalg.inv(hess.matrix.toarray())
        if not model.has_mean:
            row = cov.mean(axis=1)
            cov_diag = np.diag(cov) - 2 * row + row.mean()
        else:
            cov_diag = np.diag(cov)
        return np.sqrt(np.maximum(cov_diag, 0.0))
    if method != "neumann":
        raise ValueError(f"se_method must be 'neumann' or 'exact', not {method!r}")
    c2 = curv * curv
    extra = sums.row(c2 / diag[v]) + sums.col(c2 / diag[u])
    return np.sqrt((1.0 + extra / diag) / diag)


def fit_all(
    n_items: int,
    emotion: np.ndarray,
    winners: np.ndarray,
    losers: np.ndarray,
    ties_mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    prior_mean: np.ndarray | None = None,
    theta0: np.ndarray | None = None,
    progress=None,
    **kw,
) -> list[BTResult]:
    """``fit`` every one of the 17 emotions; ``emotion[k]`` is comparison k's axis index.

    ``prior_mean`` and ``theta0`` may be ``(n_items, 17)`` arrays (column e for emotion e).
    ``progress``: an optional callable called with the emotion index after each fit.
    """
    aggregators = _emotion_aggregators(n_items, emotion, winners, losers, ties_mask, weights,
                                       N_EMOTIONS)

    def one(e: int) -> BTResult:
        pm = None if prior_mean is None else np.asarray(prior_mean)[:, e]
        t0 = None if theta0 is None else np.asarray(theta0)[:, e]
        res = fit(aggregators[e](), prior_mean=pm, theta0=t0, **kw)
        if progress is not None:
            progress(e)
        return res

    # Emotions are independent and numpy/scipy release the GIL in the per-pair passes (and
    # in the sorts that group each emotion's pairs), so two threads use both cores; small
    # fits stay on one (thread start-up would dominate).
    workers = min(2, os.cpu_count() or 1) if len(np.asarray(emotion)) > 200_000 else 1
    if workers == 1:
        return [one(e) for e in range(N_EMOTIONS)]
    from concurrent.futures import ThreadPoolExecutor

    # Largest emotions first, so the two threads finish together instead of one waiting
    # on the last big emotion.
    sizes = np.bincount(np.asarray(emotion), minlength=N_EMOTIONS)
    order = [int(e) for e in np.argsort(-sizes, kind="stable")]
    with ThreadPoolExecutor(workers, thread_name_prefix="bt-fit") as pool:
        done = dict(zip(order, pool.map(one, order), strict=True))
    return [done[e] for e in range(N_EMOTIONS)]


# --- scales -------------------------------------------------------------------------------


def minmax_scale(theta: np.ndarray) -> np.ndarray:
    """The paper's per-emotion scale: (theta - min) / (max - min); all 0.5 if constant.

    NaNs are ignored for the range and stay NaN.
    """
    theta = np.asarray(theta, np.float64)
    if not np.any(np.isfinite(theta)):
        return np.full_like(theta, np.nan)
    lo, hi = np.nanmin(theta), np.nanmax(theta)
    if hi - lo <= 0:
        return np.where(np.isfinite(theta), 0.5, np.nan)
    return (theta - lo) / (hi - lo)


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs) -> np.ndarray:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    total = cw[-1]
    return np.interp(qs, (cw - 0.5 * w[order]) / total, x[order])


ROBUST_QUANTILE = 0.02  # anchors: the 2nd and 98th percentiles ...
ROBUST_TARGET = 0.05  # ... map to 0.05 and 0.95


def shrink(theta: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Empirical-Bayes shrinkage of each theta toward the median by its own uncertainty.

    ``c + (theta - c) * tau2 / (tau2 + se^2)`` with ``c`` the median and ``tau2`` the spread
    of the true scores (variance of theta minus the mean se^2): a GIF with few votes sits
    near the middle until it has earned an extreme score.
    """
    theta = np.asarray(theta, np.float64)
    se = np.asarray(se, np.float64)
    ok = np.isfinite(theta) & np.isfinite(se)
    if not ok.any():
        return theta.copy()
    c = float(np.median(theta[ok]))
    tau2 = max(float(np.var(theta[ok]) - np.mean(se[ok] ** 2)), 1e-6)
    return c + (theta - c) * tau2 / (tau2 + se * se)


def robust_scale_params(theta: np.ndarray, se: np.ndarray | None = None) -> tuple[float, float]:
    """(centre, spread) of ``robust_scale``, from the 2nd and 98th percentiles of theta.

    With ``se``: the percentiles of ``shrink(theta, se)``, each GIF weighted by its precision
    1/se^2, so the anchors rest on the GIFs the votes know best.
    """
    theta = np.asarray(theta, np.float64)
    qs = [ROBUST_QUANTILE, 1.0 - ROBUST_QUANTILE]
    if se is None:
        x = theta[np.isfinite(theta)]
        if len(x) == 0:
            return 0.0, 1.0
        lo, hi = np.quantile(x, qs)
    else:
        se = np.asarray(se, np.float64)
        t = shrink(theta, se)
        ok = np.isfinite(t) & np.isfinite(se)
        if not ok.any():
            return 0.0, 1.0
        lo, hi = _weighted_quantiles(t[ok], 1.0 / np.maximum(se[ok], 1e-12) ** 2, qs)
    spread = (hi - lo) / (2.0 * float(_logit(1.0 - ROBUST_TARGET)))
    return float(0.5 * (lo + hi)), float(spread) if spread > 1e-12 else 1.0


def robust_scale(
    theta: np.ndarray, se: np.ndarray | None = None, params: tuple[float, float] | None = None
) -> np.ndarray:
    """The product's stable [0, 1] scale: a logistic anchored on stable percentiles.

    ``expit((t - centre) / spread)`` where ``t = shrink(theta, se)`` (or theta without
    ``se``) and the 2nd and 98th percentiles of ``t`` map to 0.05 and 0.95. Min-max is set
    by the two least certain GIFs of a fit, so every score shifts when they move; these
    anchors barely move, the logistic keeps the order without clipping anyone, and the
    shrinkage keeps GIFs with a handful of votes from jumping to the ends.
    docs/bradley-terry.md has the measured stability. Pass ``params`` (from
    ``robust_scale_params``) to reuse the anchors of another fit.
    """
    theta = np.asarray(theta, np.float64)
    t = theta if se is None else shrink(theta, se)
    centre, spread = params if params is not None else robust_scale_params(theta, se)
    return _expit((t - centre) / spread)


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)), the inverse of ``expit``."""
    return _logit(np.asarray(p, np.float64))


def expit(x: np.ndarray | float) -> np.ndarray:
    """1 / (1 + e^-x)."""
    return _expit(np.asarray(x, np.float64))


def prediction_to_prior(
    p: np.ndarray,
    centre: float | np.ndarray = 0.0,
    spread: float | np.ndarray = 1.0,
    eps: float = 1e-3,
) -> np.ndarray:
    """Scorer predictions in [0, 1], shape (N, 17), to prior means in theta units.

    ``centre + spread * logit(clip(p, eps, 1 - eps))`` - the inverse of ``robust_scale``
    when ``centre``/``spread`` (scalars or one per emotion, shape (17,)) are the
    ``robust_scale_params`` of the fit the head was trained on (with ``se``, it gives back
    the shrunk theta: a conservative prior). With the defaults, p is read
    as "the probability of beating a typical GIF": p = 0.5 is theta 0, p = 0.73 is theta 1.
    NaN predictions (GIF not scored) stay NaN, which ``fit`` reads as "no prior".
    """
    p = np.asarray(p, np.float64)
    return np.asarray(centre) + np.asarray(spread) * _logit(np.clip(p, eps, 1.0 - eps))
