"""Which GIFs to offer for (emotion, workspace, channel): the score matrix's posterior plus
exploration, and which pair to ask about in a poll.

A request is a handful of whole-array numpy operations on one emotion's row of the
snapshot (`bot.score_matrix.ScoreMatrix`) and one `np.partition` (top-k selection): no
Python loop over GIFs, so a million GIFs rank in milliseconds. With nothing scored at all (a
fresh pool) the ranking is uniform random and says so ("not scored yet").

`Ranker` owns the current snapshot. It is rebuilt off the event loop and swapped in with one
assignment when a cheap "version stamp" query (active model version, active fit, pool size,
number of predictions) changes; the stamp is checked at most every `STAMP_INTERVAL_S`
seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.engine import Engine

from bot.bounded_pick import (  # noqa: F401 (BOUND_Z, TIED_SPREAD: the exploration's knobs)
    BOUND_Z,
    TIED_SPREAD,
    Heads,
    bounded_pick,
)
from bot.score_matrix import ScoreMatrix, load_matrix, version_stamp
from bot.topics import attach_topics  # the words index is built with each snapshot

log = logging.getLogger("moodgif.bot.ranking")

STAMP_INTERVAL_S = 5.0
NOT_SCORED_NOTE = "not scored yet: these GIFs are in random order until the pool is scored"


@dataclass(frozen=True)
class Ranked:
    shas: list[str]
    scores: list[float]  # the sampled / bonus score each was picked by
    means: list[float]  # posterior means (what the model believes)
    note: str = ""  # e.g. "not scored yet"
    eligible: int = 0  # GIFs allowed in this channel before exclusions
    relaxed_repeats: bool = False  # the channel's recent GIFs had to be offered again


def rank(
    matrix: ScoreMatrix,
    emotion: int,
    k: int,
    *,
    rng: np.random.Generator,
    pools: Sequence[str] | None = None,
    ceiling: str = "pg-13",
    exploration: str = "thompson",
    rate: float = 1.0,
    exclude: Iterable[str] = (),
    soft_exclude: Iterable[str] = (),
    candidates: np.ndarray | None = None,
) -> Ranked:
    """The top `k` GIFs for one emotion by sampled (Thompson) or optimistic (UCB) score.

    `exclude` is never offered (already shown in this session); `soft_exclude` (shown in the
    channel recently) is offered only when nothing else is left. `candidates` (row indices,
    e.g. a topic's GIFs from `bot.topics`) limits the offer to those rows.
    """
    n = matrix.size
    if n == 0 or k <= 0:
        return Ranked([], [], [], note="" if n else "the pool is empty")
    pen, eligible = matrix.penalty(pools, ceiling)
    if candidates is not None:
        only = np.full(n, -np.inf, dtype=np.float32)
        only[candidates] = 0.0
        only += pen
        pen, eligible = only, int(np.isfinite(only).sum())
    if matrix.scored and exploration == "bounded":
        factor = max(rate, 0.0) * cooling(matrix, emotion)
        heads = (matrix.heads(emotion, pools, ceiling, factor) if candidates is None
                 else Heads(matrix.mean[emotion], matrix.sd[emotion], factor, pen, eligible))
        return _rank_bounded(matrix, heads, emotion, k, rng=rng, eligible=eligible,
                             exclude=exclude, soft_exclude=soft_exclude)
    score, note = _sampled_scores(matrix, emotion, rng=rng, exploration=exploration, rate=rate)
    score += pen
    picked, relaxed = _top_excluding(matrix, score, k, exclude, soft_exclude)
    mu_all = matrix.mean[emotion]
    return Ranked(
        shas=[matrix.shas[i] for i in picked],
        scores=[float(score[i]) for i in picked],
        means=[float(mu_all[i]) if matrix.scored else float("nan") for i in picked],
        note=note,
        eligible=eligible,
        relaxed_repeats=relaxed,
    )


def _sampled_scores(matrix: ScoreMatrix, emotion: int, *, rng: np.random.Generator,
                    exploration: str, rate: float) -> tuple[np.ndarray, str]:
    """Every GIF's score for one request (a fresh array) and the note to show: a Thompson
    draw, an optimistic bound, the plain mean, or random order when nothing is scored."""
    n = matrix.size
    if not matrix.scored:
        return rng.random(n, dtype=np.float32), NOT_SCORED_NOTE
    mu = matrix.mean[emotion]
    if exploration == "thompson" and rate > 0:
        score = standard_normal_f32(rng, n)
        score *= np.float32(rate)
        score *= matrix.sd[emotion]
        score += mu
    elif exploration == "ucb" and rate > 0:
        score = matrix.sd[emotion] * np.float32(rate)
        score += mu
    else:
        score = mu.copy()
    return score, ""


def _top_excluding(matrix: ScoreMatrix, score: np.ndarray, k: int, exclude: Iterable[str],
                   soft_exclude: Iterable[str]) -> tuple[list[int], bool]:
    """The best `k` rows of `score` (edited in place) without `exclude`; `soft_exclude` only
    when nothing else is left (then `relaxed` is True)."""
    hard = _indices(matrix, exclude)
    if hard.size:
        score[hard] = -np.inf
    soft = _indices(matrix, soft_exclude)
    if soft.size:
        saved = score[soft].copy()
        score[soft] = -np.inf
    picked = _top(score, k)
    relaxed = False
    if soft.size and len(picked) < k:
        # Everything fresh is used up: offer the channel's recent GIFs again, best first.
        score[soft] = saved
        more = [i for i in _top(score, k) if i not in set(picked)]
        relaxed = bool(more)
        picked = picked + more[: k - len(picked)]
    return picked, relaxed


# --- "bounded" exploration: the best-known GIF first, exploration only where it can pay ---
#
# Thompson sampling over the whole pool never cools: a GIF nobody voted on keeps the prior's
# width (PRIOR_SD) forever, so once people's votes have narrowed the known-good GIFs, the
# one-in-hundreds lucky draw of an unknown GIF beats them on most requests and people shuffle
# more the more they use the bot (docs/learning-loop.md has the measurement). Instead:
#
# - the first GIF of a request is the best posterior mean (what the ranker believes is best),
#   unless the ranker is truly unsure (every candidate's mean within TIED_SPREAD);
# - the other slots and every shuffle explore, by Thompson draws restricted to the GIFs whose
#   upper bound (mean + BOUND_Z sd) beats the best remaining mean: near-top, uncertain GIFs,
#   never the tail;
# - the draws' width cools with the emotion's evidence, rate / sqrt(1 + n / COOL_EVIDENCE),
#   n = the comparisons on that emotion in the active fit's ledger.
# The pick itself (bot.bounded_pick) reads only the top of two per-snapshot orders.
COOL_EVIDENCE = 200.0


def cooling(matrix: ScoreMatrix, emotion: int) -> float:
    """How much of the exploration width is left for this emotion (1 with no evidence)."""
    n = float(matrix.evidence[emotion]) if matrix.evidence.shape[0] > emotion else 0.0
    return 1.0 / float(np.sqrt(1.0 + max(n, 0.0) / COOL_EVIDENCE))


def _rank_bounded(matrix: ScoreMatrix, heads: Heads, emotion: int, k: int, *,
                  rng: np.random.Generator, eligible: int, exclude: Iterable[str],
                  soft_exclude: Iterable[str]) -> Ranked:
    hard = set(_indices(matrix, exclude).tolist())
    soft = set(_indices(matrix, soft_exclude).tolist())
    # a new request (not a shuffle): its first slot is the best-known
    picked, scores = bounded_pick(heads, k, rng, normal_table(), skip=hard | soft,
                                  fresh=not hard)
    relaxed = False
    if soft and len(picked) < k:
        # Everything fresh is used up: offer the channel's recent GIFs again, best first.
        chosen = set(picked)
        top = [i for _, i in zip(range(k), heads.by_mean(hard), strict=False)]
        more = [i for i in top if i not in chosen]
        relaxed = bool(more)
        for i in more[: k - len(picked)]:
            picked.append(i)
            scores.append(float(heads.mean[i]))
    mu = matrix.mean[emotion]
    return Ranked(
        shas=[matrix.shas[i] for i in picked],
        scores=scores,
        means=[float(mu[i]) for i in picked],
        eligible=eligible,
        relaxed_repeats=relaxed,
    )


# --- polls: the pair whose answer tells most about the top of an emotion's ranking -------
#
# Active sorting (Maystre & Grossglauser, "Just Sort It!", ICML 2017, on GIFGIF): compare
# items adjacent in the current estimate, where the order is still uncertain; spent on the
# top of each emotion's ranking, which is all a person ever sees. A pair earns its place by
#   P(i in the top) * P(j in the top) * 4 p (1 - p) * (sd_i^2 + sd_j^2),
# p = P(i beats j) under the posterior: both could be in the top, nobody knows their order,
# and the answer would move the estimate (a pair of well-known GIFs teaches little);
# the top-membership estimated from POLL_DRAWS Thompson draws over the candidates (GIFs whose
# upper bound reaches the POLL_TOP-th best mean). Pairs are drawn in proportion to that
# value, not taken greedily: the matrix changes only at the next retrain, and asking the one
# best pair a hundred times teaches nothing after the first few answers.
POLL_TOP = 5
POLL_CANDIDATES = 30
POLL_DRAWS = 64


def poll_pair(matrix: ScoreMatrix, emotion: int, *, rng: np.random.Generator,
              pools: Sequence[str] | None = None, ceiling: str = "pg-13",
              avoid: Iterable[tuple[str, str]] = (),
              exclude: Iterable[str] = ()) -> tuple[str, str] | None:
    """Two GIFs to ask "which is more X?" about, or None when fewer than two are allowed.

    `avoid`: pairs asked recently (either order), skipped while any other pair is left.
    `exclude`: GIFs never asked about (an admin hid them here).
    """
    if matrix.size < 2:
        return None
    pen, eligible = matrix.penalty(pools, ceiling)
    rows = [i for sha in exclude if (i := matrix.index.get(sha)) is not None and np.isfinite(pen[i])]
    if rows:
        pen = pen.copy()  # the cached penalty is shared by every channel with these settings
        pen[rows] = -np.inf
        eligible -= len(rows)
    if eligible < 2:
        return None
    if not matrix.scored:  # nothing known: any two allowed GIFs are as good as any
        allowed = np.flatnonzero(np.isfinite(pen))
        a, b = rng.choice(allowed, 2, replace=False)
        return matrix.shas[int(a)], matrix.shas[int(b)]
    mu = (matrix.mean[emotion] + pen).astype(np.float64)
    sd = matrix.sd[emotion].astype(np.float64)
    cand = _poll_candidates(mu, sd)
    if cand.size < 2:
        return None
    m_c, s_c = mu[cand], np.maximum(sd[cand], 1e-6)
    value = _pair_values(m_c, s_c, _top_share(m_c, s_c, rng))
    value = _skip_asked(value, matrix, cand, avoid)
    pair = _draw_pair(value, cand, rng)
    if pair is None:  # no pair with any doubt left: the two best means
        a, b = _top(mu.astype(np.float32), 2)
    else:
        a, b = pair
    return matrix.shas[a], matrix.shas[b]


def _poll_candidates(mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Rows that could be in the top, sorted: the current top POLL_TOP and the GIFs whose
    upper bound (mean + 2 sd) reaches its last mean, at most the POLL_CANDIDATES highest."""
    top = _top(mu.astype(np.float32), POLL_TOP)
    kth = float(mu[top[-1]])
    ucb = np.where(np.isfinite(mu), mu + 2.0 * sd, -np.inf)
    reach = np.flatnonzero(ucb >= kth)
    if reach.size > POLL_CANDIDATES:  # the most optimistic few, the current top included
        reach = reach[np.argsort(-ucb[reach], kind="stable")[:POLL_CANDIDATES]]
    return np.union1d(reach, np.asarray(top, np.int64))


def _top_share(m_c: np.ndarray, s_c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """P(each candidate is in the top), the share of POLL_DRAWS Thompson draws it is in."""
    draws = m_c[None, :] + s_c[None, :] * rng.standard_normal((POLL_DRAWS, m_c.size))
    k = min(POLL_TOP, m_c.size - 1)
    in_top = np.zeros(m_c.size)
    for row in draws:
        in_top[np.argpartition(-row, k - 1)[:k]] += 1.0
    return in_top / POLL_DRAWS


def _pair_values(m_c: np.ndarray, s_c: np.ndarray, p_top: np.ndarray) -> np.ndarray:
    """Each candidate pair's worth as a poll (the module's formula above), upper triangle only:
    value[i, j] for i < j, zero elsewhere."""
    from scipy.special import ndtr

    diff = (m_c[:, None] - m_c[None, :]) / np.sqrt(s_c[:, None] ** 2 + s_c[None, :] ** 2)
    p = ndtr(diff)
    # p (1 - p) is the Fisher information of one answer about the difference; times the
    # difference's prior variance it is (to first order) the variance the answer removes
    var = s_c[:, None] ** 2 + s_c[None, :] ** 2
    value = np.outer(p_top, p_top) * 4.0 * p * (1.0 - p) * var
    np.fill_diagonal(value, 0.0)
    return np.triu(value, 1)


def _skip_asked(value: np.ndarray, matrix: ScoreMatrix, cand: np.ndarray,
                avoid: Iterable[tuple[str, str]]) -> np.ndarray:
    """`value` with the pairs in `avoid` zeroed, unless no other pair is worth anything."""
    pos = {matrix.shas[int(c)]: j for j, c in enumerate(cand)}
    asked = np.zeros_like(value, dtype=bool)
    for a, b in avoid:
        ia, ib = pos.get(a), pos.get(b)
        if ia is not None and ib is not None:
            asked[min(ia, ib), max(ia, ib)] = True
    if (value[~asked] > 0).any():
        value = np.where(asked, 0.0, value)
    return value


def _draw_pair(value: np.ndarray, cand: np.ndarray,
               rng: np.random.Generator) -> tuple[int, int] | None:
    """Rows of one pair drawn in proportion to `value`, in random order (no side bias);
    None when no pair is worth anything."""
    flat = value.ravel()
    total = flat.sum()
    if not total > 0:
        return None
    pick = int(rng.choice(flat.size, p=flat / total))
    i, j = divmod(pick, cand.size)
    a, b = int(cand[i]), int(cand[j])
    if rng.random() < 0.5:  # no side bias
        a, b = b, a
    return a, b


_NORMAL_TABLE: np.ndarray | None = None


def normal_table() -> np.ndarray:
    """65,536 quantiles of the standard normal (float32): see `standard_normal_f32`."""
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from scipy.special import ndtri

        _NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
    return _NORMAL_TABLE


def standard_normal_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """n independent N(0, 1) draws, float32, about 4x faster than `standard_normal`.

    Inverse-CDF sampling on a 65,536-quantile table: one random uint16 and one table
    lookup per GIF. The draws are exact quantiles of the normal (tails cut at 4.3 sd,
    probability 2e-5), which is all Thompson sampling needs; at a million GIFs this is
    the difference between ~20 ms and ~5 ms per request.
    """
    return np.take(normal_table(), rng.integers(0, 65536, n, dtype=np.uint16))


def _indices(matrix: ScoreMatrix, shas: Iterable[str]) -> np.ndarray:
    idx = [matrix.index[s] for s in shas if s in matrix.index]
    return np.asarray(idx, dtype=np.int64)


def _top(score: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest finite scores, best first.

    One introselect (`np.partition`) finds the k-th largest value, then one comparison
    picks the few GIFs at or above it. This is `np.argpartition`'s selection without its
    N-long int64 index array, which at a million GIFs is most of the cost.
    """
    n = score.shape[0]
    if k == 1 and n:  # a new request's first slot: one pass, no selection (the first of ties)
        i = int(np.argmax(score))
        return [i] if np.isfinite(score[i]) else []
    if k < n:
        threshold = np.partition(score, n - k)[n - k]
        if np.isfinite(threshold):
            cand = np.flatnonzero(score >= threshold)
        else:  # fewer than k GIFs allowed: take every allowed one
            cand = np.flatnonzero(np.isfinite(score))
    else:
        cand = np.flatnonzero(np.isfinite(score))
    if cand.size > 8 * k + 64:  # a large tie at the threshold: select before sorting
        cand = cand[np.argpartition(-score[cand], k - 1)[:k]]
    order = cand[np.argsort(-score[cand], kind="stable")][:k]
    return [int(i) for i in order]


class Ranker:
    """Owns the current snapshot; rebuilds it when the version stamp moves.

    Thread-safe: requests run in worker threads (`asyncio.to_thread`) and readers keep the
    old snapshot until the new one is assigned. With `background=True` (what the bot uses)
    a rebuild after a change runs in its own thread, so no user's request waits for a
    million rows to load; only the very first load is synchronous. Every new snapshot is
    handed to the listeners (`add_listener`): the bot core reports it to /readyz.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic,
                 stamp_interval_s: float = STAMP_INTERVAL_S, background: bool = False) -> None:
        self.engine = engine
        self.clock = clock
        self.stamp_interval_s = stamp_interval_s
        self.background = background
        self._matrix: ScoreMatrix | None = None
        self._checked_at = -1e18
        self._lock = threading.Lock()
        self._rebuilding = threading.Event()
        self._listeners: list[Callable[[ScoreMatrix], None]] = []

    def add_listener(self, fn: Callable[[ScoreMatrix], None]) -> None:
        """Call `fn(matrix)` after each load (in the loading thread; it must be quick)."""
        self._listeners.append(fn)

    def _loaded(self, m: ScoreMatrix) -> None:
        for fn in list(self._listeners):
            try:
                fn(m)
            except Exception:  # a listener's failure never costs the new scores
                log.exception("ranking: a listener failed on the new snapshot")

    def refresh(self) -> ScoreMatrix:
        """Rebuild now from the database and swap it in."""
        with self._lock:
            m = load_matrix(self.engine)
            attach_topics(self.engine, m)
            self._matrix = m
            self._checked_at = self.clock()
            log.info("ranking: %d GIFs loaded (model version %s, BT fit %s, %d with votes)%s",
                     m.size, m.model_version_id, m.fit_id, m.n_bt,
                     "" if m.scored else "; not scored yet")
            self._loaded(m)
            return m

    def _refresh_in_background(self) -> None:
        if self._rebuilding.is_set():
            return
        self._rebuilding.set()

        def work() -> None:
            try:
                self.refresh()
            except Exception:
                log.exception("ranking: rebuilding the scores failed; keeping the current ones")
            finally:
                self._rebuilding.clear()

        threading.Thread(target=work, name="ranking-refresh", daemon=True).start()

    def matrix(self) -> ScoreMatrix:
        """The current snapshot; the stamp is checked every few seconds and a change rebuilds
        it (in the background when `background`, else before returning)."""
        m = self._matrix
        if m is None:
            return self.refresh()
        if self.clock() - self._checked_at >= self.stamp_interval_s:
            self._checked_at = self.clock()
            try:
                changed = version_stamp(self.engine) != m.stamp
            except Exception:  # a busy database must not break suggestions: keep the old one
                log.exception("ranking: version check failed; keeping the current scores")
                changed = False
            if changed:
                if not self.background:
                    return self.refresh()
                self._refresh_in_background()
        return m

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Block until a background rebuild (if any) is done; for shutdown and tests."""
        deadline = time.monotonic() + timeout_s
        while self._rebuilding.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
