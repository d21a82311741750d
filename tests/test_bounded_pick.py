"""bot.bounded_pick against the rule it implements, computed the plain way over every GIF.

The pick reads per-snapshot orders and decides "truly unsure" by a binary search; these
tests hold it to the full-array rule: the same first GIF, the same decision, and the same
distribution of picks on random cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from bot import bounded_pick as bp
from bot.ranking import normal_table


def _full_pick(mean: np.ndarray, width: np.ndarray, pen: np.ndarray, k: int,
               rng: np.random.Generator, *, skip: set[int], fresh: bool
               ) -> tuple[list[int], list[float]]:
    """The rule with every allowed GIF drawn: the reference."""
    base = (mean + pen).astype(np.float32)
    upper = base + np.float32(bp.BOUND_Z) * width
    free = np.isfinite(base)
    free[list(skip)] = False
    if not free.any():
        return [], []

    def best_left(ok: np.ndarray) -> int:
        return int(np.argmax(np.where(ok, base, -np.inf)))

    first = best_left(free)
    best = float(mean[first])
    cand = np.flatnonzero(free & (upper >= best))
    tied = cand.size > 1 and best - float(mean[cand].min()) < bp.TIED_SPREAD
    picked: list[int] = []
    scores: list[float] = []
    if fresh and not tied:
        picked, scores = [first], [best]
        free[first] = False
        if k <= 1 or not free.any():
            return picked, scores
        best = float(mean[best_left(free)])
        cand = np.flatnonzero(free & (upper >= best))
    draw = np.take(normal_table(), rng.integers(0, 65536, cand.size, dtype=np.uint16))
    draw = draw * width[cand] + mean[cand]
    top = np.lexsort((cand, -draw))[: k - len(picked)]
    picked += cand[top].tolist()
    scores += draw[top].tolist()
    free[picked] = False
    while len(picked) < k and free.any():
        i = best_left(free)
        picked.append(i)
        scores.append(float(mean[i]))
        free[i] = False
    return picked, scores


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(rng.integers(5, 60))
    kind = rng.integers(3)
    if kind == 0:  # unvoted: one width everywhere
        mean = rng.random(n).astype(np.float32)
        sd = np.full(n, 0.2, np.float32)
    elif kind == 1:  # voted: narrow known GIFs among wide unknown ones
        mean = rng.random(n).astype(np.float32)
        sd = np.where(rng.random(n) < 0.5, 0.01, 0.2).astype(np.float32)
    else:  # coarse means: ties, and near-ties around TIED_SPREAD
        mean = (np.round(rng.random(n) * 4) / 4 + rng.choice([0, 5e-4, 2e-3], n)).astype(
            np.float32)
        sd = rng.choice([0.001, 0.05, 0.2], n).astype(np.float32)
    pen = np.where(rng.random(n) < 0.15, -np.inf, 0.0).astype(np.float32)
    return mean, sd, pen


def _heads(mean: np.ndarray, sd: np.ndarray, pen: np.ndarray, factor: float,
           kept: bool = True) -> bp.Heads:
    return bp.Heads(mean, sd, factor, pen, int(np.isfinite(pen).sum()), kept=kept)


def _full_unsure(mean: np.ndarray, width: np.ndarray, pen: np.ndarray, skip: set[int]
                 ) -> tuple[int, bool]:
    """The best remaining GIF and whether the full rule is "truly unsure" about it."""
    base = (mean + pen).astype(np.float32)
    free = np.isfinite(base)
    free[list(skip)] = False
    first = int(np.argmax(np.where(free, base, -np.inf)))
    best = float(mean[first])
    cand = np.flatnonzero(free & (base + np.float32(bp.BOUND_Z) * width >= best))
    return first, bool(cand.size > 1 and best - float(mean[cand].min()) < bp.TIED_SPREAD)


def test_first_gif_and_unsure_decision_match_the_full_rule() -> None:
    rng = np.random.default_rng(7)
    seen = {True: 0, False: 0}
    for _ in range(1500):
        mean, sd, pen = _case(rng)
        factor = float(rng.choice([1.0, 0.3]))
        n = mean.size
        skip = set(rng.choice(n, int(rng.integers(0, 4)), replace=False).tolist())
        if not (np.isfinite(pen) & ~np.isin(np.arange(n), list(skip))).any():
            continue
        heads = _heads(mean, sd, pen, factor, kept=bool(rng.integers(4)))
        first, tied = _full_unsure(mean, sd * np.float32(factor), pen, skip)
        assert next(heads.by_mean(skip)) == first
        assert heads.unsure(float(mean[first]), skip, len(skip) + 1) == tied
        seen[tied] += 1
        k = int(rng.integers(1, 4))
        got, got_s = bp.bounded_pick(heads, k, np.random.default_rng(1), normal_table(),
                                     skip=skip, fresh=True)
        ref, _ = _full_pick(mean, sd * np.float32(factor), pen, k, np.random.default_rng(1),
                            skip=skip, fresh=True)
        assert len(got) == len(ref) and len(set(got)) == len(got)
        assert not set(got) & skip and np.isfinite(pen[got]).all()
        if not tied:
            assert got[0] == first and got_s[0] == float(mean[first])
    assert min(seen.values()) > 50  # both decisions were exercised


def _frequencies(pick, cases: int, draws: int) -> np.ndarray:
    out = np.zeros(cases)
    for s in range(draws):
        out[pick(np.random.default_rng(s))] += 1
    return out / draws


@pytest.mark.parametrize("seed", range(6))
def test_pick_distribution_matches_the_full_draw(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    mean, sd, pen = _case(rng)
    n = mean.size
    skip = set(rng.choice(n, int(rng.integers(0, 3)), replace=False).tolist())
    fresh = bool(seed % 2)
    k = 2 if fresh else 1
    heads = _heads(mean, sd, pen, 1.0)

    def lazy(r: np.random.Generator) -> int:
        got = bp.bounded_pick(heads, k, r, normal_table(), skip=skip, fresh=fresh)[0]
        return got[-1] if got else n

    def full(r: np.random.Generator) -> int:
        got = _full_pick(mean, sd, pen, k, r, skip=skip, fresh=fresh)[0]
        return got[-1] if got else n

    draws = 3000
    a = _frequencies(lazy, n + 1, draws)
    b = _frequencies(full, n + 1, draws)
    # two samples of one distribution: every GIF's share within ~5 standard errors
    se = np.sqrt((a + b) / 2 * (1 - (a + b) / 2) * 2 / draws) + 1e-9
    assert np.all(np.abs(a - b) <= 5 * se + 2 / draws), (a, b)
