"""The score matrix: one immutable in-memory snapshot of every rankable GIF, built from the
database, that every request ranks against (`bot.ranking`).

Per GIF it holds the posterior mean and standard deviation of each of the 17 emotion scores,
the GIF's rating and the pools it is in; per pool, whose it is (`channel_pools`: a workspace
ranks the operator's pools and its own). Where the scores come from (never from a demo
manifest's ground truth):

- the **active model version's predictions** are the prior (mean = prediction, standard
  deviation `PRIOR_SD` on the [0, 1] scale the heads are trained on);
- the **active Bradley-Terry fit** is the evidence from people's votes. Its log-strengths
  (`theta`, `se`) are moved onto the same [0, 1] scale through the fit's own map to
  `scaled` (min-max or the logistic `robust_scale`; the standard error by the delta method).
  If the fit already used the model's predictions as its prior
  (`bt_fits.prior_model_version_id`), its estimate *is* the posterior; otherwise the two
  are combined as independent Gaussians (precision-weighted).
- (GIF, emotion) pairs nobody compared keep the prior and its width, so exploration shows
  them and people's votes teach the model about them. Which pairs were compared comes from
  the ledger the fit read, per emotion.
- With no model version and no fit at all (a fresh pool) nothing is scored and the ranking
  is uniform random.

`version_stamp` is the cheap fingerprint of what a snapshot was built from; the ranker
rebuilds when it moves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.bounded_pick import Heads
from scorer import versions as registry
from scorer.emotions import N_EMOTIONS
from scorer.pool_owners import OPERATOR, may_see
from scorer.settings import RATINGS
from scorer.store import BTFit, BTScore, Comparison, Gif, ModelVersion, Pool, PoolGif, Prediction

# Width of the model's prediction as a prior on the [0, 1] scale: about the test RMSE the
# paper's heads reach, so a GIF nobody voted on is explored roughly as much as the model
# is uncertain about it.
PRIOR_SD = 0.2
MIN_SD = 1e-3
# Weighted judgements (training/refit.comparison_counts) a (GIF, emotion) needs before the
# fit's estimate replaces the prior: half of one fully trusted judgement. Below it the
# evidence is a muted or nearly muted person's (training/reliability.py) and the fit's
# estimate there only repeats its prior, so it must not narrow the posterior.
EVIDENCE_FLOOR = 0.5
UNKNOWN_RATING = RATINGS.index("pg-13")  # unknown is not assumed safe (settings.rating_allowed)
HEADS_MAX_BYTES = 64 << 20  # ScoreMatrix.heads' cache, all emotions and channels together


@dataclass
class ScoreMatrix:
    """One immutable snapshot of every rankable GIF. Swapped whole, never edited in place."""

    shas: list[str]
    index: dict[str, int]
    mean: np.ndarray  # float32 (17, N): emotion-major so one emotion is one contiguous row
    sd: np.ndarray  # float32 (17, N)
    rating: np.ndarray  # uint8 (N,): index into RATINGS
    pools: dict[str, np.ndarray]  # pool name -> bool (N,) membership
    scored: bool  # False: no model version and no fit -> uniform random
    stamp: tuple = ()
    model_version_id: int | None = None
    fit_id: int | None = None
    n_bt: int = 0  # GIFs with a Bradley-Terry estimate
    # comparisons per emotion in the ledger the active fit read: how much people have taught
    # the ranker about each emotion (exploration cools as it grows)
    evidence: np.ndarray = field(default_factory=lambda: np.zeros(N_EMOTIONS))
    built_at: float = 0.0
    topics: Any = None  # bot.topics.TopicIndex over these rows, built with the snapshot
    owners: dict[str, str] = field(default_factory=dict)  # pool name -> owner; absent: the operator's
    # (pools, ceiling) -> float32 (N,) of 0 / -inf; filled lazily, dies with the snapshot
    _penalties: dict[tuple, tuple[np.ndarray, int]] = field(default_factory=dict, repr=False)
    # visible pools -> bool (N,) mask of their rows (`visible_rows`); dies with the snapshot
    _visible: dict[tuple | None, np.ndarray] = field(default_factory=dict, repr=False)
    # (emotion, pools, ceiling, width factor) -> bot.bounded_pick.Heads; dies with the snapshot
    _heads: dict[tuple, Heads] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> int:
        return len(self.shas)

    def sees(self, viewer: str, pool: str) -> bool:
        """Whether `viewer` (`Actor.pool_owner`) may rank pool `pool` of this snapshot."""
        return pool in self.pools and may_see(viewer, self.owners.get(pool, OPERATOR))

    def channel_pools(self, chosen: Sequence[str], viewer: str) -> tuple[str, ...] | None:
        """The pools a channel ranks (the `pools` of `penalty`, `heads`, `bot.ranking`): the
        ones it chose (`channel pools`), else every pool, and of those only the ones its
        workspace may see (`scorer.pool_owners.may_see`). None, no filter at all, when the
        channel chose none and sees every pool (one operator's pools: the single-tenant case)."""
        if chosen:
            return tuple(name for name in chosen if self.sees(viewer, name))
        visible = tuple(name for name in self.pools if self.sees(viewer, name))
        return None if len(visible) == len(self.pools) else visible

    def visible_count(self, viewer: str) -> int:
        """How many GIFs of this snapshot `viewer` may be offered (any channel, any rating)."""
        return self.penalty(self.channel_pools((), viewer), RATINGS[-1])[1]

    def visible_rows(self, viewer: str) -> np.ndarray | None:
        """Which rows are in a pool `viewer` may see (whatever its channel's choice and rating
        ceiling), as a mask; None when every one is. A topic's words are looked up among
        these only (`bot.topics.read_request`): another workspace's GIFs' words are no topic."""
        pools = self.channel_pools((), viewer)
        if pools is None:
            return None
        key = _pools_key(pools)  # workspaces that see the same pools share one mask
        mask = self._visible.get(key)
        if mask is None:  # once per snapshot: every topic request reads it (1M GIFs: ~1 ms)
            mask = np.isfinite(self.penalty(pools, RATINGS[-1])[0])
            with self._lock:
                if len(self._visible) > 64:
                    self._visible.clear()
                self._visible[key] = mask
        return mask

    def heads(self, emotion: int, pools: Sequence[str] | None, ceiling: str,
              factor: float) -> Heads:
        """The bounded pick's orders for one emotion in one channel's allowed set, kept
        across requests (the work of a pass over the pool is done once per snapshot)."""
        key = (emotion, _pools_key(pools), ceiling, factor)
        cached = self._heads.get(key)
        if cached is not None:
            return cached
        pen, eligible = self.penalty(pools, ceiling)
        entry = Heads(self.mean[emotion], self.sd[emotion], factor, pen, eligible, kept=True)
        with self._lock:
            # many channel configs, or an unvoted big pool (its candidate sets are half the
            # pool): keep the memory bounded
            if (len(self._heads) > 256
                    or sum(h.nbytes for h in self._heads.values()) > HEADS_MAX_BYTES):
                self._heads.clear()
            self._heads[key] = entry
        return entry

    def penalty(self, pools: Sequence[str] | None, ceiling: str) -> tuple[np.ndarray, int]:
        """0 where a GIF is allowed (in one of `pools`, rating <= ceiling), -inf elsewhere;
        and how many are allowed. `pools` None: every pool; empty: none."""
        key = (_pools_key(pools), ceiling)
        cached = self._penalties.get(key)
        if cached is not None:
            return cached
        allowed = self.rating <= RATINGS.index(ceiling)
        if pools is not None:
            member = np.zeros(self.size, dtype=bool)
            for name in pools:
                m = self.pools.get(name)
                if m is not None:
                    member |= m
            allowed &= member
        pen = np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
        entry = (pen, int(allowed.sum()))
        with self._lock:
            if len(self._penalties) > 64:  # many distinct channel configs: keep memory bounded
                self._penalties.clear()
            self._penalties[key] = entry
        return entry


def _pools_key(pools: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if pools is None else tuple(sorted(pools))


@dataclass(frozen=True)
class FitPosterior:
    """A Bradley-Terry fit as the matrix reads it: its estimates on the 0-1 scale (N, 17),
    where it has evidence, and how much people have compared on each emotion."""

    scaled: np.ndarray
    sd: np.ndarray
    # (N,) a GIF was compared, or (N, 17) per emotion: people compare a GIF on one emotion
    # at a time, so its other emotions keep the prior
    mask: np.ndarray
    evidence: np.ndarray | None = None  # (17,) GIF-sides: a pair counts twice, a thumb once
    has_prior: bool = False  # the fit already folded the model's predictions in
    fit_id: int | None = None


def build_matrix(
    shas: Sequence[str],
    ratings: Sequence[str | None],
    pools: dict[str, np.ndarray],
    *,
    prior: np.ndarray | None,
    prior_mask: np.ndarray | None = None,
    prior_sd: np.ndarray | None = None,
    fit: FitPosterior | None = None,
    stamp: tuple = (),
    model_version_id: int | None = None,
    owners: dict[str, str] | None = None,
) -> ScoreMatrix:
    """Combine the model prior and the BT evidence into one snapshot (arrays (N, 17)).

    `prior_mask[i]` says GIF i has a prediction; `prior_sd` (N, 17), when given, is each
    prediction's own width (the zero-shot prior's); else `PRIOR_SD`. `fit` is the active
    Bradley-Terry fit (`FitPosterior`), where people's votes have spoken. `owners`: pool
    name -> owner (`pools.owner`); a pool not in it is the operator's.
    GIFs with neither are dropped when anything is scored (a GIF the scorer has not reached
    yet would otherwise be offered at random for every emotion); with nothing scored at all
    every GIF stays, in random order.
    """
    n = len(shas)
    mean, sd, gif_has_bt, scored = _combined_estimate(n, prior, prior_mask, prior_sd, fit)
    keep = (_prior_rows(n, prior, prior_mask) | gif_has_bt) if scored else np.ones(n, bool)
    idx = np.flatnonzero(keep)
    kept = [shas[i] for i in idx]
    rating = _rating_codes(ratings, idx)
    return ScoreMatrix(
        shas=kept,
        index={s: i for i, s in enumerate(kept)},
        mean=np.ascontiguousarray(mean[idx].T, dtype=np.float32),
        sd=np.ascontiguousarray(np.clip(sd[idx], MIN_SD, 1.0).T, dtype=np.float32),
        rating=rating,
        pools={name: m[idx] for name, m in pools.items()},
        owners=dict(owners or {}),
        scored=scored,
        stamp=stamp,
        model_version_id=model_version_id,
        fit_id=fit.fit_id if fit is not None else None,
        n_bt=int((gif_has_bt & keep).sum()),
        built_at=time.time(),
        evidence=_evidence_per_emotion(fit.evidence if fit is not None else None),
    )


def _combined_estimate(n: int, prior: np.ndarray | None, prior_mask: np.ndarray | None,
                       prior_sd: np.ndarray | None, fit: FitPosterior | None,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(mean, sd, which GIFs have votes, whether anything is scored): the prior's estimate
    with the Bradley-Terry evidence folded in where people's votes have spoken."""
    has_prior = _prior_rows(n, prior, prior_mask)
    has_bt = _bt_mask_per_emotion(fit.mask if fit is not None else None, n)
    gif_has_bt = has_bt.any(axis=1)
    mean, sd = _prior_estimate(n, has_prior, prior, prior_sd)
    if fit is not None and gif_has_bt.any():
        _fold_in_bt(mean, sd, has_prior, has_bt, fit)
    return mean, sd, gif_has_bt, bool(has_prior.any() or gif_has_bt.any())


def _prior_rows(n: int, prior: np.ndarray | None, prior_mask: np.ndarray | None) -> np.ndarray:
    """(N,) bool, GIF i has a prediction: `prior_mask`, else every row when a prior is given."""
    if prior_mask is not None:
        return prior_mask
    return np.ones(n, bool) if prior is not None else np.zeros(n, bool)


def _rating_codes(ratings: Sequence[str | None], idx: np.ndarray) -> np.ndarray:
    """uint8 index into RATINGS of each kept row's rating (UNKNOWN_RATING when none or unknown)."""
    return np.array(
        [RATINGS.index(r) if r in RATINGS else UNKNOWN_RATING for r in (ratings[i] for i in idx)],
        dtype=np.uint8,
    )


def _evidence_per_emotion(evidence: np.ndarray | None) -> np.ndarray:
    """float64 (17,) comparisons per emotion; zeros when the caller gave none."""
    if evidence is None:
        return np.zeros(N_EMOTIONS)
    return np.asarray(evidence, np.float64).reshape(N_EMOTIONS)


def _bt_mask_per_emotion(bt_mask: np.ndarray | None, n: int) -> np.ndarray:
    """`bt_mask` as (N, 17): a per-GIF mask means evidence on every emotion."""
    if bt_mask is None:
        return np.zeros((n, N_EMOTIONS), bool)
    if bt_mask.ndim == 1:
        return np.repeat(bt_mask[:, None], N_EMOTIONS, axis=1)
    return bt_mask


def _prior_estimate(n: int, has_prior: np.ndarray, prior: np.ndarray | None,
                    prior_sd: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd before any evidence: the prediction where there is one, else 0.5 ± PRIOR_SD."""
    mean = np.full((n, N_EMOTIONS), 0.5, dtype=np.float64)
    sd = np.full((n, N_EMOTIONS), PRIOR_SD, dtype=np.float64)
    if prior is not None:
        mean[has_prior] = prior[has_prior]
    if prior_sd is not None:
        sd[has_prior] = np.clip(prior_sd[has_prior], MIN_SD, 1.0)
    return mean, sd


def _fold_in_bt(mean: np.ndarray, sd: np.ndarray, has_prior: np.ndarray, has_bt: np.ndarray,
                fit: FitPosterior) -> None:
    """Update `mean` and `sd` in place where the BT fit has evidence (precision-weighted)."""
    b_mean = fit.scaled[has_bt].astype(np.float64)
    b_sd = np.maximum(fit.sd[has_bt].astype(np.float64), MIN_SD)
    if fit.has_prior:
        # The fit already folded the prediction in: its estimate is the posterior.
        mean[has_bt], sd[has_bt] = b_mean, b_sd
        return
    p_prec = np.where(np.broadcast_to(has_prior[:, None], has_bt.shape)[has_bt],
                      1.0 / sd[has_bt] ** 2, 0.0)
    b_prec = 1.0 / b_sd**2
    post_prec = p_prec + b_prec
    mean[has_bt] = (mean[has_bt] * p_prec + b_mean * b_prec) / post_prec
    sd[has_bt] = 1.0 / np.sqrt(post_prec)


def version_stamp(engine: Engine) -> tuple:
    """A cheap fingerprint of what the matrix is built from; a change means rebuild."""
    mv = registry.active_id_query()
    q = select(
        mv,
        registry.active_fit_id_query(),
        select(func.count()).select_from(PoolGif).scalar_subquery(),
        select(func.count()).select_from(Prediction).where(Prediction.model_version_id == mv)
        .scalar_subquery(),
        select(func.count()).select_from(Gif).where(Gif.score_error.is_not(None)).scalar_subquery(),
        # The zero-shot prior ranks what the active version does not: its rows count too.
        select(func.count()).select_from(Prediction).join(
            ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(ModelVersion.head_kind == registry.PRIOR_HEAD_KIND).scalar_subquery(),
    )
    # Whose each pool is decides who ranks it: an operator's `pool owner` moves no count.
    owned = select(Pool.name, Pool.owner).where(Pool.owner != OPERATOR).order_by(Pool.name)
    with engine.connect() as conn:
        return (*conn.execute(q).one(), tuple(map(tuple, conn.execute(owned).all())))


def load_matrix(engine: Engine) -> ScoreMatrix:
    """Read the active model version's predictions and the active BT fit into a snapshot."""
    stamp = version_stamp(engine)
    with engine.connect() as conn:
        mv_id = registry.active_version_id(conn)
        fit_row = conn.execute(
            select(BTFit.id, BTFit.prior_model_version_id, BTFit.last_comparison_id, BTFit.stats,
                   BTFit.params)
            .where(BTFit.id == registry.active_fit_id_query())).first()
        shas, index, ratings, pools = _load_members(conn)
        owners = dict(conn.execute(select(Pool.name, Pool.owner).where(Pool.owner != OPERATOR)).all())
        prior, prior_mask, prior_sd = _load_predictions(conn, index, len(shas), mv_id)
        fit = _load_fit(conn, engine, fit_row, index, len(shas)) if fit_row is not None else None
    return build_matrix(shas, ratings, pools, prior=prior, prior_mask=prior_mask,
                        prior_sd=prior_sd, fit=fit, stamp=stamp, model_version_id=mv_id,
                        owners=owners)


def _load_members(conn) -> tuple[list[str], dict[str, int], list[str | None], dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    """Every scored GIF of any pool once (shas, their index, ratings) and each pool's members
    as a boolean mask over them."""
    rows = conn.execute(
        select(PoolGif.gif_sha, Gif.rating, Pool.name)
        .join(Gif, Gif.sha256 == PoolGif.gif_sha)
        .join(Pool, Pool.id == PoolGif.pool_id)
        .where(Gif.score_error.is_(None))
    ).all()
    shas: list[str] = []
    index: dict[str, int] = {}
    ratings: list[str | None] = []
    member_lists: dict[str, list[int]] = {}
    for sha, rating, pool in rows:
        i = index.get(sha)
        if i is None:
            i = index[sha] = len(shas)
            shas.append(sha)
            ratings.append(rating)
        member_lists.setdefault(pool, []).append(i)
    pools = {}
    for name, members in member_lists.items():
        m = np.zeros(len(shas), dtype=bool)
        m[members] = True
        pools[name] = m
    return shas, index, ratings, pools


def _load_fit(conn, engine: Engine, fit_row: Any, index: dict[str, int], n: int) -> FitPosterior:  # type: ignore[no-untyped-def]
    fit_id, prior_version, fit_last_id, fit_stats, fit_params = fit_row
    fit_last_id = fit_last_id or None  # 0 / None: a fit that did not record it
    bt_rows = conn.execute(
        select(BTScore.gif_sha, BTScore.theta, BTScore.se, BTScore.scaled, BTScore.counts)
        .where(BTScore.fit_id == fit_id)
    ).all()
    counts = _fit_evidence(bt_rows, index, n)
    if counts is None:  # a fit stored without its counts: recount the ledger
        counts = evidence_counts(conn, index, n, fit_last_id)
        if (fit_stats or {}).get("ledger", {}).get("bar_judgements"):
            from training.judgements import judgement_counts

            counts += judgement_counts(engine, index, n)
    scaled, sd, mask = _bt_posterior(bt_rows, index, n, counts, registry.fit_scale_spreads(fit_params))
    return FitPosterior(scaled, sd, mask, counts.sum(axis=0),
                        has_prior=prior_version is not None, fit_id=fit_id)


def _load_predictions(conn, index: dict[str, int], n: int, mv_id: int | None  # type: ignore[no-untyped-def]
                      ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(prior, mask, sd) from the active version's predictions; GIFs it does not rank (a
    pool outside a trained head's domain, scorer.pipeline.in_domain) take the newest
    zero-shot prior's. sd is each prediction's own width, PRIOR_SD where it has none."""
    versions = [v for v in dict.fromkeys((mv_id, registry.zero_shot_version_id(conn))) if v is not None]
    if not versions:
        return None, None, None
    prior = np.zeros((n, N_EMOTIONS), dtype=np.float32)
    sd = np.full((n, N_EMOTIONS), PRIOR_SD, dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    for version in versions:  # the active version first: it wins where both predict
        idx, blobs, sds = [], [], []
        for sha, blob, sd_blob in conn.execute(
            select(Prediction.gif_sha, Prediction.scores, Prediction.sd)
            .where(Prediction.model_version_id == version)
        ):
            i = index.get(sha)
            if i is not None and not mask[i]:
                idx.append(i)
                blobs.append(blob)
                sds.append(sd_blob)
        if blobs:
            rows_idx = np.asarray(idx)
            prior[rows_idx] = _stack(blobs)
            mask[rows_idx] = True
            own = [k for k, b in enumerate(sds) if b is not None]
            if own:
                sd[rows_idx[own]] = _stack([sds[k] for k in own])
    return prior, mask, sd


def _stack(blobs: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, N_EMOTIONS).astype(np.float32)


def _fit_evidence(rows: Sequence, index: dict[str, int], n: int) -> np.ndarray | None:
    """(N, 17) weighted comparisons per GIF and emotion in the ledger the fit read (with the
    bar judgements it fitted, each person's reliability applied), as the refit stored them;
    None for a fit stored without them."""
    stored = registry.fit_counts([r[4] for r in rows])
    if stored is None:
        return None
    counts = np.zeros((n, N_EMOTIONS))
    where = np.asarray([index.get(r[0], -1) for r in rows], np.int64)
    ok = where >= 0
    counts[where[ok]] = stored[ok]
    return counts


def evidence_counts(conn, index: dict[str, int], n: int, up_to_id: int | None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Comparisons per GIF and emotion in the ledger the fit read (ids <= its watermark).

    A BT fit stores one comparison count per GIF over all emotions; which emotions a GIF was
    actually compared on comes from the ledger itself (two GROUP BY queries).
    """
    counts = np.zeros((n, N_EMOTIONS), dtype=np.int64)
    for col in (Comparison.winner, Comparison.loser):
        q = select(col, Comparison.emotion, func.count()).group_by(col, Comparison.emotion)
        if up_to_id is not None:
            q = q.where(Comparison.id <= up_to_id)
        for sha, emotion, k in conn.execute(q):
            i = index.get(sha)
            if i is not None and 0 <= emotion < N_EMOTIONS:
                counts[i, emotion] += int(k)
    return counts


def _bt_posterior(rows: Sequence, index: dict[str, int], n: int, counts: np.ndarray,
                  spreads: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT estimates on the [0, 1] scale where the ledger has evidence, (N, 17) each.

    Only (GIF, emotion) pairs with `EVIDENCE_FLOOR` of the fit's weighted evidence count;
    elsewhere a fit only repeats its prior, and the current model's prediction is the better
    one.
    The map from theta to [0, 1] is the fit's own (`scaled`), the standard error going
    through its derivative (the delta method): `scaled (1 - scaled) / spread` with the
    logistic's `spreads` the fit stored (scorer.versions.fit_scale_spreads); for a fit
    stored without them, the logistic or min-max map is recognised from the data. Where
    that map is degenerate (most of `scaled` stuck at 0 or 1, as
    when the fit's quartiles coincide), a robust logistic map over the compared GIFs is
    used instead, so a GIF's one or two votes can never pin it to 0 or 1.
    """
    scaled = np.zeros((n, N_EMOTIONS), dtype=np.float32)
    sd = np.full((n, N_EMOTIONS), PRIOR_SD, dtype=np.float32)
    mask = np.zeros((n, N_EMOTIONS), dtype=bool)
    if not rows:
        return scaled, sd, mask
    where = np.asarray([index.get(r[0], -1) for r in rows])
    ok_rows = where >= 0
    if not ok_rows.any():
        return scaled, sd, mask
    rows_idx = where[ok_rows]
    theta = _stack([r[1] for r in rows]).astype(np.float64)[ok_rows]
    se = _stack([r[2] for r in rows]).astype(np.float64)[ok_rows]
    fit_scaled = _stack([r[3] for r in rows]).astype(np.float64)[ok_rows]
    evidence = counts[rows_idx] >= EVIDENCE_FLOOR
    for e in range(N_EMOTIONS):
        ev = evidence[:, e] & np.isfinite(theta[:, e]) & np.isfinite(se[:, e])
        if not ev.any():
            continue
        col = fit_scaled[:, e]
        deriv = (col * (1.0 - col) / spreads[e] if spreads is not None
                 else _scale_derivative(theta[:, e], col))
        saturated = np.mean((col <= 1e-6) | (col >= 1 - 1e-6)) > 0.2
        if deriv is None or saturated:
            col, deriv = _own_scale(theta[:, e], ev)
        est_sd = np.where(np.isfinite(se[:, e] * deriv) & (se[:, e] * deriv > 0),
                          se[:, e] * deriv, PRIOR_SD)
        scaled[rows_idx[ev], e] = col[ev]
        sd[rows_idx[ev], e] = est_sd[ev]
        mask[rows_idx[ev], e] = True
    return scaled, sd, mask


def _own_scale(theta: np.ndarray, evidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """expit((theta - median) / spread) with the quartiles of the compared GIFs; and its slope."""
    x = theta[evidence]
    q1, q2, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    spread = (q3 - q1) / (2 * np.log(3.0))  # quartiles -> 0.25 / 0.75, like robust_scale
    if not spread > 1e-6:
        spread = float(np.std(x)) if np.std(x) > 1e-6 else 1.0
    p = 1.0 / (1.0 + np.exp(-(theta - q2) / spread))
    return p, p * (1.0 - p) / spread


def _scale_derivative(theta: np.ndarray, scaled: np.ndarray) -> np.ndarray | None:
    """d scaled / d theta per item, for a logistic or linear map recognised from the data."""
    ok = np.isfinite(theta) & np.isfinite(scaled) & (scaled > 1e-6) & (scaled < 1 - 1e-6)
    if ok.sum() < 2 or np.ptp(theta[ok]) <= 1e-9:
        return None
    x = theta[ok]
    y = np.log(scaled[ok] / (1.0 - scaled[ok]))
    a, b = np.polyfit(x, y, 1)
    if a > 0 and np.max(np.abs(y - (a * x + b))) < 1e-2:
        return scaled * (1.0 - scaled) * a  # expit((theta - c) / s): derivative p(1-p)/s
    a_lin, _ = np.polyfit(x, scaled[ok], 1)
    return np.full_like(scaled, a_lin) if a_lin > 0 else None
