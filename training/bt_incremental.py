"""Incremental Bradley-Terry refits for the retrain: only emotions whose data changed.

A retrain refits every emotion on the whole ledger, yet most runs bring votes on a few
emotions only. Each emotion's fit is a deterministic function of its aggregated comparisons,
its prior means and the fit parameters, so a fit stores a digest of those per emotion
(``stats["emotion_digests"]``). The next run, over the same GIFs:

* an emotion whose digest is unchanged takes its theta and se from the active fit (no work;
  the answer is the one a refit would give, to the float32 the scores are stored in);
* an emotion that changed is refitted, warm-started from the active fit's theta (Newton then
  needs fewer iterations; the optimum is the same, ``bradley_terry.fit``'s stopping rule).

With no usable active fit (none yet, other GIFs, other parameters) everything is fitted cold,
as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.emotions import N_EMOTIONS
from scorer.store import BTScore, session_scope, unpack_scores
from training import bradley_terry as bt


@dataclass
class Previous:
    """The active fit, its rows aligned to the current items."""

    fit_id: int
    digests: list[str]
    theta: np.ndarray  # (n_items, 17)
    se: np.ndarray


def emotion_digest(data: bt.PairData, prior_mean: np.ndarray | None, params: dict) -> str:
    """A digest of everything one emotion's fit depends on."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(sorted(params.items())).encode())
    h.update(np.int64(data.n_items).tobytes())
    for arr in (data.left, data.right, data.wins_left, data.wins_right, data.ties):
        h.update(np.ascontiguousarray(arr).tobytes())
    if prior_mean is not None:
        h.update(np.ascontiguousarray(prior_mean, np.float64).tobytes())
    return h.hexdigest()


def load_previous(engine: Engine, ids: list[str]) -> Previous | None:
    """The active fit's digests, theta and se for ``ids``; None if it cannot be reused
    (no active fit, no digests, or not exactly these items)."""
    with session_scope(engine) as s:
        fit = versions.active_fit(s)
        if fit is None:
            return None
        digests = (fit.stats or {}).get("emotion_digests")
        if not digests or len(digests) != N_EMOTIONS or fit.stats.get("n_items") != len(ids):
            return None
        rows = s.execute(select(BTScore.gif_sha, BTScore.theta, BTScore.se)
                         .where(BTScore.fit_id == fit.id)).all()
        fit_id = fit.id
    index = {g: i for i, g in enumerate(ids)}
    if len(rows) != len(ids) or any(g not in index for g, _, _ in rows):
        return None
    theta = np.empty((len(ids), N_EMOTIONS))
    se = np.empty((len(ids), N_EMOTIONS))
    for g, t, e in rows:
        theta[index[g]] = unpack_scores(t)
        se[index[g]] = unpack_scores(e)
    return Previous(fit_id, list(digests), theta, se)


def fit_all_incremental(
    n_items: int,
    emotion: np.ndarray,
    winners: np.ndarray,
    losers: np.ndarray,
    ties_mask: np.ndarray | None,
    weights: np.ndarray | None,
    *,
    previous: Previous | None,
    prior_mean: np.ndarray | None = None,
    **kw,
) -> tuple[list[bt.BTResult], list[str], list[bool]]:
    """``bradley_terry.fit_all`` reusing ``previous`` where an emotion is unchanged.

    Returns the results, the digest of every emotion (to store with the fit) and which
    emotions were refitted.
    """
    pairs = bt.aggregate_by_emotion(n_items, emotion, winners, losers, ties_mask, weights)
    params = {k: v for k, v in kw.items() if isinstance(v, str | int | float | bool)}
    params["prior_strength"] = float(np.mean(kw.get("prior_strength", 0.0)))
    results, digests, refitted = [], [], []
    for e, data in enumerate(pairs):
        pm = None if prior_mean is None else np.asarray(prior_mean)[:, e]
        digest = emotion_digest(data, pm, params)
        digests.append(digest)
        if previous is not None and previous.digests[e] == digest:
            counts = data.comparisons_per_item(with_ties=True)
            results.append(bt.BTResult(previous.theta[:, e].copy(), previous.se[:, e].copy(),
                                       0, True, n_compared=counts))
            refitted.append(False)
            continue
        theta0 = None if previous is None else previous.theta[:, e]
        results.append(bt.fit(data, prior_mean=pm, theta0=theta0, **kw))
        refitted.append(True)
    return results, digests, refitted
