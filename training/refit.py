"""Bradley-Terry refit and the head's targets: what the retrain (training/retrain.py) and
`moodgif train` (training/workflow.py) both build on, so neither imports the other's job.

- `refit_bt` fits all 17 emotions on the ledger, with a model version's predictions as the
  prior, and stores the fit (inactive; scorer/versions.py activates fits);
- `distilled_targets` / `build_dataset` turn a fit into weighted targets and the split;
- a version's stored predictions (`prediction_matrix`, `ranked_predictions`,
  `VersionPredictions`) are read through `scorer.versions`, the model-version owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from scorer.emotions import N_EMOTIONS
from scorer.settings import Settings
from scorer.store import (
    BTFit,
    BTScore,
    ModelVersion,
    pack_scores,
    session_scope,
)
from scorer.versions import VersionPredictions, prediction_matrix
from training import bradley_terry as bt
from training import bt_incremental
from training.comparisons import LedgerArrays, is_reference, reference_id
from training.dataset import Dataset, assemble, gif_frame_counts

# How many comparisons on an emotion make a GIF's fitted score a full-weight target.
EVIDENCE_HALF = 2.0
# Weight of the active version's prediction as an extra target on every (GIF, emotion):
# rehearsal, so a head retrained on the few GIFs people compared (each emotion's top) does
# not forget the rest of the pool. A GIF with 2 comparisons weighs 0.5, so votes still lead.
DISTILL_WEIGHT = 0.2
# The scorer's prediction is clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP] before it becomes the
# fit's prior mean in logit units. A head that says 0.999 (logit 6.9 spreads) would
# otherwise pin its GIF to the top whatever people say: a handful of lost comparisons moves
# theta by about one unit, and on the saturated end of the logistic scale that is nothing.
PRIOR_CLIP = 0.03
# Weight of a 👍/👎 (a GIF against its emotion's reference item) relative to a pairwise
# comparison between two GIFs (a send over a skip, a poll answer).
REFERENCE_WEIGHT = 1.0


@dataclass
class BTFitOutput:
    fit_id: int
    items: list[str]  # GIF shas (no references), row order of the matrices
    theta: np.ndarray  # (N, 17)
    se: np.ndarray
    scaled: np.ndarray
    counts: np.ndarray  # (N, 17) comparisons per GIF and emotion
    scale_params: dict  # {"centre": [17], "spread": [17]}
    ref_scaled: np.ndarray  # (17,) where each emotion's reference item sits on the scale


MIN_ANCHOR_GIFS = 10  # fewer compared GIFs than this: the unit scale (theta 0 -> 0.5)


def _bt_prior(settings: Settings, engine: Engine, ids: list[str],
              prior_version: ModelVersion | None, prior_pred: VersionPredictions | None,
              model_scale: tuple[np.ndarray, np.ndarray] | None
              ) -> tuple[np.ndarray | None, float]:
    """(prior mean in logit units, prior strength) from the prior version's predictions;
    (None, 0) without a version or when it scored none of the ledger's GIFs."""
    if prior_version is None:
        return None, 0.0
    preds = (prior_pred.raw(ids) if prior_pred is not None
             else prediction_matrix(engine, prior_version.id, ids))
    if not np.isfinite(preds).any():
        return None, 0.0
    centre, spread = model_scale if model_scale is not None else (
        np.zeros(N_EMOTIONS), np.ones(N_EMOTIONS))
    prior_mean = bt.prediction_to_prior(preds, centre, spread, eps=PRIOR_CLIP)
    return prior_mean, max(settings.training.bt_prior_strength, 0.0)


def refit_bt(settings: Settings, engine: Engine, ledger: LedgerArrays, gifs: list[str], *,
             prior_version: ModelVersion | None, ledger_info: dict, store: bool = True,
             prior_pred: VersionPredictions | None = None) -> BTFitOutput:
    """Fit all emotions on the ledger; store the fit (inactive) unless `store` is False.
    `prior_pred`: the prior version's predictions when the caller already read them."""
    ids = ledger.ids
    n = len(ids)
    model_scale = _model_scale(prior_version)
    prior_mean, strength = _bt_prior(settings, engine, ids, prior_version, prior_pred, model_scale)
    weight = ledger.weight
    if REFERENCE_WEIGHT != 1.0 and n:
        ref = np.asarray([is_reference(item) for item in ids], bool)
        weight = weight * np.where(ref[ledger.winner] | ref[ledger.loser], REFERENCE_WEIGHT, 1.0)
    # Only emotions with new votes (or a new prior) are refitted, warm from the active fit.
    results, digests, refitted = bt_incremental.fit_all_incremental(
        n, ledger.emotion, ledger.winner, ledger.loser, ledger.tie, weight,
        previous=bt_incremental.load_previous(engine, ids), ties=settings.training.bt_ties,
        alpha=settings.training.bt_alpha, prior_mean=prior_mean if strength > 0 else None,
        prior_strength=strength)
    theta = np.stack([r.theta for r in results], axis=1)
    se = np.stack([r.se for r in results], axis=1)
    counts = np.stack([r.n_compared if r.n_compared is not None else np.zeros(n)
                       for r in results], axis=1)
    scaled, scale_params, ref_scaled = _scale_fit(ids, theta, counts, prior_mean, model_scale,
                                                  with_prior=strength > 0)
    index = {item: i for i, item in enumerate(ids)}
    rows = [index[g] for g in gifs]
    fit_id = 0
    if store:
        params = {"ties": settings.training.bt_ties, "alpha": settings.training.bt_alpha,
                  "prior_strength": strength, "method": "newton",
                  "scale": "robust", "scale_params": scale_params,
                  "reference_scaled": [None if math.isnan(x) else float(x) for x in ref_scaled]}
        stats = {"converged": [bool(r.converged) for r in results],
                 "iterations": [int(r.iterations) for r in results],
                 "ledger": ledger_info, "items": len(gifs),
                 "n_items": n, "emotion_digests": digests, "refitted": refitted}
        fit = BTFit(n_comparisons=len(ledger), last_comparison_id=ledger.max_id,
                    params=params, stats=stats, active=False,
                    prior_model_version_id=prior_version.id if strength > 0 and prior_version else None)
        fit_id = _store_fit(engine, fit, ids, rows, theta, se, scaled, counts,
                            comparison_counts(ledger, n, weight))
    return BTFitOutput(fit_id, list(gifs), theta[rows], se[rows], scaled[rows], counts[rows],
                       scale_params, ref_scaled)


def _scale_fit(ids: list[str], theta: np.ndarray, counts: np.ndarray,
               prior_mean: np.ndarray | None,
               model_scale: tuple[np.ndarray, np.ndarray] | None, *, with_prior: bool
               ) -> tuple[np.ndarray, dict, np.ndarray]:
    """Each emotion's thetas on the robust 0-1 scale (fitted on the GIFs compared in it), the
    scale's parameters, and where each emotion's reference item lands on it."""
    gif_rows = np.asarray([i for i, item in enumerate(ids) if not is_reference(item)], np.int64)
    index = {item: i for i, item in enumerate(ids)}
    scaled = np.zeros_like(theta)
    centres, spreads, ref_scaled = [], [], np.full(N_EMOTIONS, np.nan)
    for e in range(N_EMOTIONS):
        compared = gif_rows[counts[gif_rows, e] > 0]
        params = _emotion_scale(e, theta[compared, e],
                                None if prior_mean is None else prior_mean[compared, e],
                                model_scale, with_prior=with_prior)
        centres.append(params[0])
        spreads.append(params[1])
        scaled[:, e] = bt.robust_scale(theta[:, e], params=params)
        ref = index.get(reference_id(e))
        if ref is not None:
            ref_scaled[e] = scaled[ref, e]
    return scaled, {"centre": centres, "spread": spreads}, ref_scaled


def _store_fit(engine: Engine, fit: BTFit, ids: list[str], rows: list[int], theta: np.ndarray,
               se: np.ndarray, scaled: np.ndarray, counts: np.ndarray, per_emotion: np.ndarray
               ) -> int:
    """The fit's row (inactive), then its GIFs' scores in chunks of 2,000; the fit's id."""
    with session_scope(engine) as s:
        s.add(fit)
        s.flush()
        fit_id = int(fit.id)
    for start in range(0, len(rows), 2000):
        chunk = rows[start:start + 2000]
        with session_scope(engine) as s:
            s.execute(insert(BTScore), [
                {"fit_id": fit_id, "gif_sha": ids[i], "theta": pack_scores(theta[i]),
                 "se": pack_scores(se[i]), "scaled": pack_scores(scaled[i]),
                 "n_comparisons": round(float(counts[i].sum())),
                 "counts": pack_scores(per_emotion[i])}
                for i in chunk
            ])
    return fit_id


def comparison_counts(ledger: LedgerArrays, n: int, weight: np.ndarray | None = None
                      ) -> np.ndarray:
    """(n, 17) how much of the fitted evidence each item took part in, per emotion: the sum of
    the fit's own `weight` over its comparisons (ties included, self-comparisons not; 1 per
    comparison without `weight`). What the ranker reads from ``bt_scores.counts``.

    Weighted, not a head count: the evidence the ranker narrows a GIF's posterior with and
    cools exploration by must be the evidence the fit used. Counting rows, a person the
    reliability weighing muted (training/reliability.py) still narrowed the posterior of
    every GIF they judged without moving it (docs/learning-loop.md, "Adversarial users")."""
    keep = ledger.winner != ledger.loser
    e = np.asarray(ledger.emotion)[keep].astype(np.int64)
    w = None if weight is None else np.asarray(weight, np.float64)[keep]
    total = np.zeros(n * N_EMOTIONS)
    for side in (ledger.winner, ledger.loser):
        total += np.bincount(np.asarray(side)[keep].astype(np.int64) * N_EMOTIONS + e,
                             weights=w, minlength=n * N_EMOTIONS)
    return total.reshape(n, N_EMOTIONS)


def _model_scale(version: ModelVersion | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(centre, spread), one per emotion, of the fit a model version was trained on."""
    sp = ((version.config or {}).get("scale_params") or {}) if version is not None else {}
    try:
        centre = np.asarray(sp["centre"], np.float64).reshape(N_EMOTIONS)
        spread = np.asarray(sp["spread"], np.float64).reshape(N_EMOTIONS)
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(centre).all() and np.isfinite(spread).all() and (spread > 0).all()):
        return None
    return centre, spread


def _emotion_scale(e: int, theta_compared: np.ndarray, prior_compared: np.ndarray | None,
                   model_scale: tuple[np.ndarray, np.ndarray] | None, *, with_prior: bool
                   ) -> tuple[float, float]:
    """(centre, spread) that puts emotion e's thetas on the [0, 1] scale of the predictions.

    Predictions, the ranker's prior, the fit and the next head's targets must share one
    scale. Re-anchoring each fit on its own percentiles collapsed it (docs/bench/
    learning-loop.md): the compared GIFs are each emotion's top, so their spread is small
    and the targets went to 0/1. So: with the model's predictions as the fit's prior, the
    model's own scale (an unvoted GIF's target is then exactly its prediction); a fit on votes
    alone keeps the model's unit and only moves its origin so the compared GIFs sit, in the
    median, where the model put them; with no model scale, the compared GIFs' percentiles.
    """
    if model_scale is not None:
        centre, spread = float(model_scale[0][e]), float(model_scale[1][e])
        if with_prior:
            return centre, spread
        if prior_compared is not None:
            d = theta_compared - prior_compared
            d = d[np.isfinite(d)]
            if len(d):
                return centre + float(np.median(d)), spread
        return centre, spread
    if len(theta_compared) >= MIN_ANCHOR_GIFS:
        return bt.robust_scale_params(theta_compared)
    return 0.0, 1.0


def evidence_weights(counts: np.ndarray) -> np.ndarray:
    """n / (n + 2) per GIF and emotion: 0 with no comparisons, 0.5 at 2, ~1 at dozens."""
    counts = np.asarray(counts, np.float64)
    return (counts / (counts + EVIDENCE_HALF)).astype(np.float32)


def distilled_targets(fit: BTFitOutput, active_pred: np.ndarray | None,
                      distill_weight: float = DISTILL_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """(targets, weights), both (N, 17): the fit's scores weighted by their evidence, plus the
    active version's prediction at `distill_weight` on every (GIF, emotion) it scored.

    Two weighted squared errors on one output are one error against their weighted mean, so
    the target is that mean and the weight their sum; an unvoted GIF keeps its prediction.
    """
    w_ev = evidence_weights(fit.counts).astype(np.float64)
    scaled = np.asarray(fit.scaled, np.float64)
    if active_pred is None or distill_weight <= 0:
        return scaled.astype(np.float32), w_ev.astype(np.float32)
    have = np.isfinite(active_pred)
    d = np.where(have, distill_weight, 0.0)
    w = w_ev + d
    mixed = (w_ev * scaled + d * np.where(have, active_pred, 0.0)) / np.maximum(w, 1e-12)
    targets = np.where(w > 0, mixed, scaled)
    return targets.astype(np.float32), w.astype(np.float32)


def build_dataset(settings: Settings, engine: Engine, fit: BTFitOutput, *, encoder_id: str,
                  sampling: str, active_pred: np.ndarray | None = None,
                  channels: str | None = None) -> tuple[Dataset, Dataset, dict]:
    """(train, dev, info): features and targets of every GIF with a weighted target.

    Without `active_pred` (the active version's predictions, rows as `fit.items`) those are
    the GIFs with at least one comparison; with it, every GIF the active version scored.
    `info["evidence"]` maps each GIF to its vote-only weights (for judging on votes alone).
    With `channels` (scorer.channels) each GIF's stored prior channels join its frames.
    """
    from scorer.channels import head_features

    all_targets, weights = distilled_targets(fit, active_pred)
    w_ev = evidence_weights(fit.counts)
    keep = np.flatnonzero(weights.sum(axis=1) > 0)
    targets = {fit.items[i]: all_targets[i] for i in keep}
    wmap = {fit.items[i]: weights[i] for i in keep}
    splits = assemble(
        targets, lambda sha: head_features(settings, sha, encoder_id, sampling, channels),
        seed=settings.training.seed, n_frames=gif_frame_counts(engine, list(targets)), weights=wmap,
        encoder_id=encoder_id,
    )
    # The test part is not needed to decide; dev and test together make a steadier dev set.
    dev = splits.dev.with_extra(splits.test)
    info = dict(splits.info)
    info["evidence"] = {fit.items[i]: w_ev[i] for i in keep}
    return splits.train, dev, info
