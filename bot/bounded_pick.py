"""The "bounded" exploration's pick (bot.ranking) without passes over the whole pool.

A bounded pick only looks at two small parts of the allowed GIFs: the head of the order by
posterior mean (the best-known GIF, the best remaining mean, the fill-up) and the GIFs
whose upper bound (mean + BOUND_Z * width) reaches the best remaining mean (the Thompson
candidates). Both depend only on the snapshot, the emotion, the channel's allowed set and
the width, so `Heads` keeps them per snapshot (ScoreMatrix.heads): a request's work is a
walk past its own exclusions and the draws of its candidates, with no N-long array touched.
The mean head holds the best `size` GIFs (grown 4x by one `np.partition` when a request
excludes more); the upper-bound set holds every GIF reaching the head's last mean, so any
best remaining mean found in the head is covered by it.

Whether the ranker is "truly unsure" (no candidate's mean TIED_SPREAD below the best)
is, for a kept `Heads`, one binary search: its upper-bound set ordered by mean keeps the
suffix maxima of the upper bound, so a new request's one-GIF preview (the common action)
touches no candidate array at all; only draws (shuffles, previews of several GIFs) do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

BOUND_Z = 1.5
TIED_SPREAD = 1e-3
_FIRST_HEAD = 64


class _Head(NamedTuple):
    order: np.ndarray  # rows, best mean first, ties by row (what np.argmax gives)
    complete: bool  # every allowed row is in `order`
    reach_rows: np.ndarray  # rows (ascending) whose upper bound >= the last mean of `order`
    reach_upper: np.ndarray  # their upper bounds
    reach_mean: np.ndarray  # their means
    reach_width: np.ndarray  # their widths


class _Far(NamedTuple):
    """A head's reach set by mean, best first (positions into reach_*), its means, and the
    suffix maxima of the upper bound along it: "is any candidate far below the best?" in
    log time instead of a pass over the candidates."""

    head: _Head
    by_mean: np.ndarray
    means: np.ndarray
    upper_max: np.ndarray


class Heads:
    """The allowed GIFs of one (snapshot, emotion, allowed set, width), as far down the
    order by mean as requests have needed. `kept`: cached across requests (ScoreMatrix.heads),
    so sorting its candidates once pays; a one-off (a topic's rows) answers by passes."""

    def __init__(self, mean: np.ndarray, sd: np.ndarray, factor: float, pen: np.ndarray,
                 n_allowed: int, *, kept: bool = False) -> None:
        self.mean, self.sd, self.pen, self.n_allowed = mean, sd, pen, n_allowed
        self.factor = np.float32(factor)
        self.kept = kept
        self._lock = threading.Lock()
        self._head: _Head | None = None
        self._far: _Far | None = None

    @property
    def nbytes(self) -> int:
        h, f = self._head, self._far
        return sum(a.nbytes for part in (h, f) if part is not None
                   for a in part if isinstance(a, np.ndarray))

    def head(self, need: int) -> _Head:
        h = self._head
        if h is not None and (h.complete or h.order.size >= need):
            return h
        with self._lock:
            size = max(need, _FIRST_HEAD, 0 if h is None else 4 * h.order.size)
            self._head = h = self._build(size)
            return h

    def _build(self, size: int) -> _Head:
        base = self.mean + self.pen  # -inf where not allowed: the full-array pick's sums
        n = base.shape[0]
        if size >= self.n_allowed:
            rows = np.flatnonzero(np.isfinite(base))
        else:
            threshold = np.partition(base, n - size)[n - size]
            rows = np.flatnonzero(base >= threshold)  # every tie with the last one too
        order = rows[np.argsort(-base[rows], kind="stable")]
        width = self.sd * self.factor
        upper = base + np.float32(BOUND_Z) * width
        floor = base[order[-1]] if order.size else np.inf
        reach = np.flatnonzero(upper >= floor)
        return _Head(order, rows.size >= self.n_allowed, reach, upper[reach], self.mean[reach],
                     width[reach])

    def _far_of(self, h: _Head) -> _Far:
        f = self._far
        if f is not None and f.head is h:
            return f
        by_mean = np.argsort(-h.reach_mean, kind="stable")
        upper_max = np.maximum.accumulate(h.reach_upper[by_mean][::-1])[::-1]
        self._far = f = _Far(h, by_mean, -h.reach_mean[by_mean], -upper_max)  # negated:
        return f  # ascending, for searchsorted

    def by_mean(self, skip: set[int]) -> Iterator[int]:
        """Allowed rows not in `skip`, best mean first."""
        need, seen = len(skip) + 8, 0
        while True:
            h = self.head(need)
            for i in h.order[seen:].tolist():
                seen += 1
                if i not in skip:
                    yield i
            if h.complete:
                return
            need = 4 * h.order.size

    def reaching(self, best: float, skip: set[int], need: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows not in `skip` whose upper bound is >= `best` (ascending), their means and
        widths. `best` is a mean from the first `need` rows of the order by mean."""
        h = self.head(need)
        keep = h.reach_upper >= best
        rows, mean, width = h.reach_rows[keep], h.reach_mean[keep], h.reach_width[keep]
        if skip and rows.size:
            at = _hits(rows, np.fromiter(skip, np.int64, len(skip)))
            if at.size:
                ok = np.ones(rows.size, bool)
                ok[at] = False
                rows, mean, width = rows[ok], mean[ok], width[ok]
        return rows, mean, width

    def unsure(self, best: float, skip: set[int], need: int) -> bool:
        """Truly unsure: several candidates for `best` (rows not in `skip`, upper bound >=
        best) and none with a mean TIED_SPREAD or more below it (e.g. an emotion nobody
        voted on in a pool scored by votes alone: every mean is the same 0.5)."""
        if self.kept and self._any_far(best, skip, need):
            return False  # the common case, without a pass over the candidates
        rows, mean, _ = self.reaching(best, skip, need)
        return rows.size > 1 and best - float(mean.min()) < TIED_SPREAD

    def _any_far(self, best: float, skip: set[int], need: int) -> bool:
        """Some row not in `skip` with upper bound >= best and best - mean >= TIED_SPREAD?
        False may also mean "not found cheaply" (a skipped row in the way)."""
        h = self.head(need)
        f = self._far_of(h)
        neg_means = f.means
        # the rows with best - mean >= TIED_SPREAD are a suffix of the order by mean
        p = int(np.searchsorted(neg_means, -(best - TIED_SPREAD), side="left"))
        # float32 vs float64 at the boundary: the exact test decides, a block of equal
        # means at a time (at most a value or two away)
        while p > 0 and best + float(neg_means[p - 1]) >= TIED_SPREAD:
            p = int(np.searchsorted(neg_means, neg_means[p - 1], side="left"))
        while p < neg_means.size and not best + float(neg_means[p]) >= TIED_SPREAD:
            p = int(np.searchsorted(neg_means, neg_means[p], side="right"))
        # the last position whose suffix still reaches `best` holds a row that does
        q = int(np.searchsorted(f.upper_max, -best, side="right")) - 1
        return q >= p and int(h.reach_rows[f.by_mean[q]]) not in skip


def _hits(rows: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Positions in `rows` (ascending) of the values of `drop` that are in it."""
    at = np.searchsorted(rows, drop)
    inside = at < rows.size
    at, drop = at[inside], drop[inside]
    return at[rows[at] == drop]


def bounded_pick(heads: Heads, k: int, rng: np.random.Generator, normal: np.ndarray, *,
                 skip: set[int], fresh: bool) -> tuple[list[int], list[float]]:
    """`k` rows and the score each was picked by: the best mean first when `fresh`, then
    Thompson draws among the rows whose upper bound beats the best remaining mean, then the
    best remaining means if the candidates run out. `normal` is the quantile table of
    bot.ranking.standard_normal_f32."""
    mean = heads.mean
    free = heads.by_mean(skip)
    first = next(free, None)
    if first is None:
        return [], []
    depth = len(skip) + 1  # the best remaining mean is among this many rows of the head
    best = float(mean[first])
    tied = fresh and heads.unsure(best, skip, depth)  # a shuffle draws either way
    picked: list[int] = []
    scores: list[float] = []
    if fresh and not tied:
        picked, scores = [first], [best]
        second = next(free, None)
        if second is None or k <= 1:
            return picked, scores
        skip, best, depth = skip | {first}, float(mean[second]), depth + 1
    rows, c_mean, c_width = heads.reaching(best, skip, depth)
    draw = np.take(normal, rng.integers(0, 65536, rows.size, dtype=np.uint16))
    draw *= c_width
    draw += c_mean
    top = _top_positions(draw, k - len(picked))
    picked += rows[top].tolist()
    scores += draw[top].tolist()
    if len(picked) < k:  # fewer candidates than slots: the best remaining means fill up
        for i in heads.by_mean(skip | set(picked)):
            picked.append(i)
            scores.append(float(mean[i]))
            if len(picked) >= k:
                break
    return picked, scores


def _top_positions(score: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest scores, best first, ties by position (one partition)."""
    n = score.shape[0]
    if k <= 0 or n == 0:
        return np.empty(0, np.int64)
    cand = (np.flatnonzero(score >= np.partition(score, n - k)[n - k]) if k < n
            else np.arange(n))
    return cand[np.argsort(-score[cand], kind="stable")][:k]
