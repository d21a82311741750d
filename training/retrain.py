"""The retrain job: ledger -> Bradley-Terry -> head -> evaluate -> rescore -> activate.

One run, step by step (each step's name is written to its `retrain_runs` row as it starts):

1. **lock** — one run at a time across processes and hosts (`training.locks`); a second
   run is told "already running" and does nothing. Runs left "running" by a killed process
   are marked failed, with the step they died in.
2. **ledger** — read every comparison (a fixed snapshot: votes arriving meanwhile wait for
   the next run). With none yet there is nothing to learn: the run is "skipped".
3. **bt-fit** — refit all 17 emotions, with the active model's predictions as the prior
   (in logit units, through the scale of the fit that model was trained on), so a GIF with
   few votes stays near what the scorer thinks and many votes override it. Stored as a
   `BTFit` with `BTScore` rows, inactive for now.
4. **dataset** — the GIFs' cached features with the fitted scores as targets, weighted by
   how many comparisons back each score; the 80/10/10 split by GIF (`settings.seed`).
5. **train** — the head, warm-started from the active version when it is compatible.
6. **evaluate** — the new head and the active version on the same dev GIFs and targets.
7. **save** — the head file (atomic) and a `candidate` model version.
8. **rescore** — predictions of the candidate for every pooled GIF.
9. **activate** — one transaction: the candidate becomes active (the old one retired) only
   if its dev RMSE is not worse, else it is "rejected"; the new fit becomes the active fit
   either way (it holds the newest votes and was fitted with the active model's prior).

A crash or kill at any step leaves the active version, the active fit and the ledger as they
were: everything before step 9 only adds inactive rows and files, and step 9 is one commit.

For tests, `MOODGIF_RETRAIN_HOLD_AT=<step>` makes a run stop at the start of that step
(after touching `MOODGIF_RETRAIN_HOLD_FILE`) for `MOODGIF_RETRAIN_HOLD_S` seconds, so a test
can kill it there.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.emotions import N_EMOTIONS
from scorer.pipeline import pools_with_votes
from scorer.settings import Settings
from scorer.store import (
    BTFit,
    BTScore,
    ModelVersion,
    Prediction,
    RetrainRun,
    init_db,
    pack_scores,
    session_scope,
    unpack_scores,
    utcnow,
)
from training import bradley_terry as bt
from training import bt_incremental
from training.comparisons import (
    LedgerArrays,
    is_reference,
    latest_id,
    load_ledger,
    pooled_gifs,
    reference_id,
)
from training.dataset import Dataset, assemble, gif_frame_counts
from training.evaluate import rmse
from training.fit import HeadConfig, train_head
from training.locks import LockBusy, job_lock

log = logging.getLogger("moodgif.training.retrain")

LOCK_NAME = "retrain"
STEPS = ("lock", "ledger", "bt-fit", "dataset", "train", "evaluate", "save", "rescore", "activate")
DEFAULT_HEAD = "fc-maxpool-2"
# How many comparisons on an emotion make a GIF's fitted score a full-weight target.
EVIDENCE_HALF = 2.0
# A candidate may be this much worse in dev RMSE and still count as "not worse" (float noise).
RMSE_TOLERANCE = 1e-6
# Weight of the active version's prediction as an extra target on every (GIF, emotion):
# rehearsal, so a head retrained on the few GIFs people compared (each emotion's top) does
# not forget the rest of the pool. A GIF with 2 comparisons weighs 0.5, so votes still lead.
DISTILL_WEIGHT = 0.2
# The scorer's prediction is clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP] before it becomes the
# fit's prior mean in logit units. A head that says 0.999 (logit 6.9 spreads) would
# otherwise pin its GIF to the top whatever people say: a handful of lost comparisons moves
# theta by about one unit, and on the saturated end of the logistic scale that is nothing.
PRIOR_CLIP = 0.03
# Fit each preview decision as a judgement against the sender's bar (training.judgements)
# instead of the adversely selected "sent beats skipped" pairs.
USE_BAR_JUDGEMENTS = True
# Weight of a 👍/👎 (a GIF against its emotion's reference item) relative to a pairwise
# comparison between two GIFs (a send over a skip, a poll answer).
REFERENCE_WEIGHT = 1.0
# Held-out comparisons (both GIFs in the dev split) needed to judge a candidate by them;
# fewer: dev RMSE on the compared dev GIFs decides, as before.
MIN_HELDOUT_PAIRS = 30


@dataclass
class RetrainOutcome:
    status: str  # activated | rejected | skipped | failed | busy
    message: str
    run_id: int | None = None
    model_version_id: int | None = None
    bt_fit_id: int | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("activated", "rejected", "skipped")


class _Skip(Exception):
    pass


# ---------------------------------------------------------------------------------------
# small helpers


def _hold(step: str) -> None:
    if os.environ.get("MOODGIF_RETRAIN_HOLD_AT") != step:
        return
    marker = os.environ.get("MOODGIF_RETRAIN_HOLD_FILE")
    if marker:
        Path(marker).write_text(f"{os.getpid()} {step}\n")
    time.sleep(float(os.environ.get("MOODGIF_RETRAIN_HOLD_S", "300")))


def _set_step(engine: Engine, run_id: int, step: str) -> None:
    with session_scope(engine) as s:
        s.execute(update(RetrainRun).where(RetrainRun.id == run_id).values(step=step))
    log.debug("retrain run %d: %s", run_id, step)
    _hold(step)


# The active version / fit: one owner, scorer/versions.py (re-exported for old callers).
active_version = versions.active_version


def prediction_matrix(engine: Engine, model_version_id: int, shas: list[str]) -> np.ndarray:
    """(N, 17) stored predictions of a model version, NaN rows for GIFs it has not scored."""
    out = np.full((len(shas), N_EMOTIONS), np.nan)
    row = {s: i for i, s in enumerate(shas)}
    with session_scope(engine) as s:
        q = select(Prediction.gif_sha, Prediction.scores).where(
            Prediction.model_version_id == model_version_id)
        for sha, blob in s.execute(q):
            if sha in row:
                out[row[sha]] = unpack_scores(blob)
    return out


def ranked_predictions(engine: Engine, model_version_id: int, shas: list[str]) -> np.ndarray:
    """`prediction_matrix` of the version, its NaN rows filled from the newest zero-shot
    prior (scorer.prior), as the ranker does for pools outside a head's domain."""
    out = prediction_matrix(engine, model_version_id, shas)
    missing = np.flatnonzero(np.isnan(out).any(axis=1))
    if len(missing) == 0:
        return out
    zero_shot = versions.zero_shot_version_id(engine)
    if zero_shot is not None and zero_shot != model_version_id:
        out[missing] = prediction_matrix(engine, zero_shot, [shas[i] for i in missing])
    return out


def cleanup_interrupted(engine: Engine) -> int:
    """Mark runs a killed process left "running" as failed (call while holding the lock)."""
    n = 0
    with session_scope(engine) as s:
        for run in s.scalars(select(RetrainRun).where(RetrainRun.status == "running")):
            run.status = "failed"
            run.error = f"interrupted (killed or crashed) at step {run.step or '?'}"
            run.finished_at = run.finished_at or utcnow()
            if run.model_version_id is not None:
                mv = s.get(ModelVersion, run.model_version_id)
                if mv is not None and mv.status == "candidate":
                    mv.status = "failed"
            n += 1
    if n:
        log.warning("retrain: %d earlier run(s) had been interrupted; marked failed", n)
    return n


# ---------------------------------------------------------------------------------------
# steps


@dataclass
class FitOutput:
    fit_id: int
    items: list[str]  # GIF shas (no references), row order of the matrices
    theta: np.ndarray  # (N, 17)
    se: np.ndarray
    scaled: np.ndarray
    counts: np.ndarray  # (N, 17) comparisons per GIF and emotion
    scale_params: dict  # {"centre": [17], "spread": [17]}
    ref_scaled: np.ndarray  # (17,) where each emotion's reference item sits on the scale


MIN_ANCHOR_GIFS = 10  # fewer compared GIFs than this: the unit scale (theta 0 -> 0.5)


def refit_bt(settings: Settings, engine: Engine, ledger: LedgerArrays, gifs: list[str], *,
             prior_version: ModelVersion | None, ledger_info: dict, store: bool = True
             ) -> FitOutput:
    """Fit all emotions on the ledger; store the fit (inactive) unless `store` is False."""
    ids = ledger.ids
    n = len(ids)
    prior_mean = None
    strength = 0.0
    model_scale = _model_scale(prior_version)
    if prior_version is not None:
        preds = prediction_matrix(engine, prior_version.id, ids)
        if np.isfinite(preds).any():
            centre, spread = model_scale if model_scale is not None else (
                np.zeros(N_EMOTIONS), np.ones(N_EMOTIONS))
            prior_mean = bt.prediction_to_prior(preds, centre, spread, eps=PRIOR_CLIP)
            strength = settings.bt_prior_strength if settings.bt_prior_strength > 0 else 0.0
    weight = ledger.weight
    if REFERENCE_WEIGHT != 1.0 and n:
        ref = np.asarray([is_reference(item) for item in ids], bool)
        weight = weight * np.where(ref[ledger.winner] | ref[ledger.loser], REFERENCE_WEIGHT, 1.0)
    # Only emotions with new votes (or a new prior) are refitted, warm from the active fit.
    results, digests, refitted = bt_incremental.fit_all_incremental(
        n, ledger.emotion, ledger.winner, ledger.loser, ledger.tie, weight,
        previous=bt_incremental.load_previous(engine, ids), ties=settings.bt_ties,
        alpha=settings.bt_alpha, prior_mean=prior_mean if strength > 0 else None,
        prior_strength=strength)
    theta = np.stack([r.theta for r in results], axis=1)
    se = np.stack([r.se for r in results], axis=1)
    counts = np.stack([r.n_compared if r.n_compared is not None else np.zeros(n)
                       for r in results], axis=1)
    gif_rows = np.asarray([i for i, item in enumerate(ids) if not is_reference(item)], np.int64)
    index = {item: i for i, item in enumerate(ids)}
    scaled = np.zeros_like(theta)
    centres, spreads, ref_scaled = [], [], np.full(N_EMOTIONS, np.nan)
    for e in range(N_EMOTIONS):
        compared = gif_rows[counts[gif_rows, e] > 0]
        params = _emotion_scale(e, theta[compared, e],
                                None if prior_mean is None else prior_mean[compared, e],
                                model_scale, with_prior=strength > 0)
        centres.append(params[0])
        spreads.append(params[1])
        scaled[:, e] = bt.robust_scale(theta[:, e], params=params)
        ref = index.get(reference_id(e))
        if ref is not None:
            ref_scaled[e] = scaled[ref, e]
    scale_params = {"centre": centres, "spread": spreads}
    rows = [index[g] for g in gifs]
    if not store:
        return FitOutput(0, list(gifs), theta[rows], se[rows], scaled[rows], counts[rows],
                         scale_params, ref_scaled)
    with session_scope(engine) as s:
        fit = BTFit(
            n_comparisons=len(ledger), last_comparison_id=ledger.max_id,
            params={"ties": settings.bt_ties, "alpha": settings.bt_alpha,
                    "prior_strength": strength, "method": "newton",
                    "scale": "robust", "scale_params": scale_params,
                    "reference_scaled": [None if math.isnan(x) else float(x) for x in ref_scaled]},
            stats={"converged": [bool(r.converged) for r in results],
                   "iterations": [int(r.iterations) for r in results],
                   "ledger": ledger_info, "items": len(gifs),
                   "n_items": n, "emotion_digests": digests, "refitted": refitted},
            prior_model_version_id=prior_version.id if strength > 0 and prior_version else None,
            active=False,
        )
        s.add(fit)
        s.flush()
        fit_id = fit.id
    for start in range(0, len(rows), 2000):
        chunk = rows[start:start + 2000]
        with session_scope(engine) as s:
            s.execute(insert(BTScore), [
                {"fit_id": fit_id, "gif_sha": ids[i], "theta": pack_scores(theta[i]),
                 "se": pack_scores(se[i]), "scaled": pack_scores(scaled[i]),
                 "n_comparisons": round(float(counts[i].sum()))}
                for i in chunk
            ])
    return FitOutput(fit_id, list(gifs), theta[rows], se[rows], scaled[rows], counts[rows],
                     scale_params, ref_scaled)


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


def distilled_targets(fit: FitOutput, active_pred: np.ndarray | None,
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


def build_dataset(settings: Settings, engine: Engine, fit: FitOutput, *, encoder_id: str,
                  sampling: str, active_pred: np.ndarray | None = None
                  ) -> tuple[Dataset, Dataset, dict]:
    """(train, dev, info): features and targets of every GIF with a weighted target.

    Without `active_pred` (the active version's predictions, rows as `fit.items`) those are
    the GIFs with at least one comparison; with it, every GIF the active version scored.
    `info["evidence"]` maps each GIF to its vote-only weights (for judging on votes alone).
    """
    from scorer.features import load_features

    all_targets, weights = distilled_targets(fit, active_pred)
    w_ev = evidence_weights(fit.counts)
    keep = np.flatnonzero(weights.sum(axis=1) > 0)
    targets = {fit.items[i]: all_targets[i] for i in keep}
    wmap = {fit.items[i]: weights[i] for i in keep}
    splits = assemble(
        targets, lambda sha: load_features(settings, sha, encoder_id, sampling),
        seed=settings.seed, n_frames=gif_frame_counts(engine, list(targets)), weights=wmap,
        encoder_id=encoder_id,
    )
    # The test part is not needed to decide; dev and test together make a steadier dev set.
    dev = splits.dev.with_extra(splits.test)
    info = dict(splits.info)
    info["evidence"] = {fit.items[i]: w_ev[i] for i in keep}
    return splits.train, dev, info


def _weighted_rmse(pred: np.ndarray, data: Dataset) -> float:
    return rmse(pred, data.targets, data.weights)


def column_means(targets: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Weighted mean of each emotion's targets; the plain mean where an emotion has no weight
    (np.average raises ZeroDivisionError when one column's weights sum to 0)."""
    targets = np.asarray(targets, np.float64)
    if len(targets) == 0:
        return np.full(targets.shape[1:] or (N_EMOTIONS,), 0.5)
    plain = targets.mean(axis=0)
    if weights is None:
        return plain
    w = np.asarray(weights, np.float64)
    total = w.sum(axis=0)
    weighted = (w * targets).sum(axis=0) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, weighted, plain)


@dataclass
class HeldOutPairs:
    """Decisive ledger comparisons whose two GIFs are both in the dev split."""

    emotion: np.ndarray  # (P,)
    winner: np.ndarray  # row in the dev set
    loser: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.emotion.shape[0])

    def accuracy(self, pred: np.ndarray, usable: np.ndarray | None = None) -> tuple[float, int]:
        """(weighted share ordered right, ties half; pairs used) for predictions (rows, 17)."""
        ok = np.ones(len(self), bool) if usable is None else usable
        pw = pred[self.winner[ok], self.emotion[ok]]
        pl = pred[self.loser[ok], self.emotion[ok]]
        score = (pw > pl) + 0.5 * (pw == pl)
        w = self.weight[ok]
        return (float((w * score).sum() / w.sum()) if w.sum() > 0 else math.nan), int(ok.sum())


def heldout_pairs(ledger: LedgerArrays, dev_shas: list[str]) -> HeldOutPairs:
    row = {sha: i for i, sha in enumerate(dev_shas)}
    to_row = np.asarray([row.get(item, -1) for item in ledger.ids], np.int64)
    if len(ledger) == 0:
        empty = np.zeros(0, np.int64)
        return HeldOutPairs(empty, empty, empty, np.zeros(0))
    w, lo = to_row[ledger.winner], to_row[ledger.loser]
    keep = (w >= 0) & (lo >= 0) & ~ledger.tie.astype(bool) & (ledger.weight > 0) & (w != lo)
    return HeldOutPairs(ledger.emotion[keep].astype(np.int64), w[keep], lo[keep],
                        ledger.weight[keep].astype(np.float64))


# ---------------------------------------------------------------------------------------
# the run


def run_retrain(settings: Settings, engine: Engine | None = None, *, trigger: str = "manual",
                head_kind: str | None = None, epochs: int = 100, device: str = "cpu",
                force: bool = False, on_step: Callable[[str], None] | None = None
                ) -> RetrainOutcome:
    """One retrain run; returns what happened (never raises for an expected failure).

    A scheduled run (`trigger="schedule"`) is skipped when fewer than
    `settings.retrain_min_new_comparisons` comparisons arrived since the active fit;
    `force` runs anyway.
    """
    engine = engine or init_db(settings.db_url)
    try:
        with job_lock(engine, LOCK_NAME):
            return _run_locked(settings, engine, trigger=trigger, head_kind=head_kind,
                               epochs=epochs, device=device, force=force, on_step=on_step)
    except LockBusy as exc:
        return RetrainOutcome("busy", f"a retrain is {exc}")


def _run_locked(settings: Settings, engine: Engine, *, trigger: str, head_kind: str | None,
                epochs: int, device: str, force: bool,
                on_step: Callable[[str], None] | None) -> RetrainOutcome:
    cleanup_interrupted(engine)
    with session_scope(engine) as s:
        run = RetrainRun(trigger=trigger[:20], status="running", step="lock",
                         host=f"{socket.gethostname()}:{os.getpid()}"[:100])
        s.add(run)
        s.flush()
        run_id = run.id
    metrics: dict = {}
    state: dict = {}

    def step(name: str) -> None:
        if on_step is not None:
            on_step(name)
        _set_step(engine, run_id, name)

    def finish(status: str, message: str, **extra: object) -> RetrainOutcome:
        with session_scope(engine) as s:
            r = s.get(RetrainRun, run_id)
            assert r is not None
            r.status, r.finished_at, r.metrics = status, utcnow(), {**metrics, "message": message}
            if status == "failed":
                r.error = message
            r.bt_fit_id = state.get("fit_id")
            r.model_version_id = state.get("mv_id")
            if status == "failed" and state.get("mv_id") is not None:
                mv = s.get(ModelVersion, state["mv_id"])
                if mv is not None and mv.status == "candidate":
                    mv.status = "failed"
        log.info("retrain run %d: %s: %s", run_id, status, message)
        return RetrainOutcome(status, message, run_id, state.get("mv_id"), state.get("fit_id"),
                              metrics)

    try:
        _hold("lock")
        step("ledger")
        prev_fit = versions.active_fit(engine)
        last_seen = prev_fit.last_comparison_id if prev_fit else 0
        newest = latest_id(engine)
        if newest == 0:
            raise _Skip("nothing to learn yet: the ledger has no comparisons (votes, sends, "
                        "polls or imported pairs); collect some, then run again")
        if trigger == "schedule" and not force:
            from training.comparisons import count_since

            new = count_since(engine, last_seen)
            if new < settings.retrain_min_new_comparisons:
                raise _Skip(f"only {new} new comparisons since the last fit "
                            f"(MOODGIF_RETRAIN_MIN_NEW_COMPARISONS={settings.retrain_min_new_comparisons})")
        gifs = sorted(pooled_gifs(engine))
        ledger, info = load_ledger(engine, known_gifs=set(gifs), items=gifs, up_to_id=newest)
        metrics["ledger"] = {k: info[k] for k in ("rows", "used", "skipped_unknown_gif", "ties")}
        metrics["ledger"]["by_source"] = info["by_source"]
        if len(ledger) == 0:
            raise _Skip(f"nothing to learn yet: none of the {info['rows']} comparisons names a "
                        "GIF that is in a pool")

        fit_ledger = ledger
        if USE_BAR_JUDGEMENTS:
            from training.judgements import preview_judgements, with_judgements

            judged = preview_judgements(engine, set(gifs))
            fit_ledger = with_judgements(ledger, judged)
            metrics["ledger"]["bar_judgements"] = len(judged)

        step("bt-fit")
        active = active_version(engine)
        fit = refit_bt(settings, engine, fit_ledger, gifs, prior_version=active,
                       ledger_info=metrics["ledger"])
        state["fit_id"] = fit.fit_id
        metrics["bt"] = {"fit_id": fit.fit_id, "prior_model_version_id": active.id if active else None}

        step("dataset")
        encoder_id = active.encoder_id if active else settings.encoder
        sampling = active.sampling if active else settings.sampling
        active_pred = None
        if active is not None and DISTILL_WEIGHT > 0:
            active_pred = prediction_matrix(engine, active.id, fit.items)
            if not np.isfinite(active_pred).any():
                active_pred = None
        train, dev, dinfo = build_dataset(settings, engine, fit, encoder_id=encoder_id,
                                          sampling=sampling, active_pred=active_pred)
        evidence = dinfo.pop("evidence")
        metrics["dataset"] = {**dinfo, "dev_used": len(dev), "encoder_id": encoder_id,
                              "sampling": sampling,
                              "distill_weight": DISTILL_WEIGHT if active_pred is not None else 0.0}
        if len(train) == 0:
            if dinfo.get("no_features"):
                raise _Skip(f"no cached features for the {dinfo['no_features']} compared GIFs "
                            f"(encoder {encoder_id}, {sampling}): run `moodgif score` first")
            raise _Skip("nothing to learn yet: too few compared GIFs with 4 or more frames")

        def votes_only(data: Dataset) -> Dataset:
            # Judge on the votes alone: the active version fits its own rehearsal targets
            # exactly, so with them in the dev loss a warm start would never be beaten.
            return Dataset(data.keys, data.shas, data.feats, data.targets,
                           np.asarray([evidence[sha] for sha in data.shas],
                                      np.float32).reshape(-1, N_EMOTIONS))

        step("train")
        init = None
        base_cfg = HeadConfig(kind=head_kind or DEFAULT_HEAD, epochs=epochs, seed=settings.seed)
        if active is not None and active.path and (head_kind in (None, active.head_kind)):
            path = versions.head_file(settings, active.path)
            if path.is_file():
                from scorer.heads import load_head

                module, meta = load_head(path)
                if int(meta.get("in_dim", -1)) == train.dim and active.head_kind.startswith(("fc-", "rnn-")):
                    init = module
                    saved = (active.config or {}).get("head") or {}
                    base_cfg = HeadConfig.from_dict({**saved, "epochs": epochs, "seed": settings.seed,
                                                     "kind": active.head_kind})
        result = train_head(train, votes_only(dev), base_cfg, device=device, init=init)
        metrics["train"] = {**result.summary(), "warm_start": init is not None,
                            "head": base_cfg.to_dict(), "n_train": len(train)}

        step("evaluate")
        from scorer.heads import predict

        new_pred = predict(result.module, dev.feats) if len(dev) else np.zeros((0, N_EMOTIONS))
        eval_set = votes_only(dev)
        on_dev = True
        if len(dev) == 0 or float(eval_set.weights.sum()) == 0:  # type: ignore[union-attr]
            # Too few compared GIFs for a dev set: judge on the training GIFs, and say so.
            eval_set = votes_only(train)
            on_dev = False
            new_pred = predict(result.module, train.feats)
            metrics["evaluate_on"] = "train (no dev GIFs with comparisons)"
        new_rmse = _weighted_rmse(new_pred, eval_set)
        # For scale: what predicting the training mean for every GIF scores here.
        mean_pred = np.broadcast_to(column_means(train.targets, train.weights), eval_set.targets.shape)
        metrics["dev_rmse_mean_only"] = _weighted_rmse(mean_pred, eval_set)
        old_rmse = math.nan
        old_pred = None
        if active is not None:
            # What ranks these GIFs now: the active version, or the zero-shot prior for the
            # pools outside its domain. A new head must beat that on each GIF it would take over.
            old_pred = ranked_predictions(engine, active.id, eval_set.shas)
            have = np.isfinite(old_pred).all(axis=1)
            if have.any():
                sub = eval_set.subset(np.flatnonzero(have).tolist())
                old_rmse = _weighted_rmse(old_pred[have], sub)
                new_rmse_same = _weighted_rmse(new_pred[have], sub)
                metrics["dev_compared_gifs"] = int(have.sum())
                new_rmse = new_rmse_same
        better = active is None or math.isnan(old_rmse) or new_rmse <= old_rmse + RMSE_TOLERANCE
        metrics["judged_by"] = "dev RMSE"
        # Better evidence than RMSE on the compared GIFs (each emotion's top, the very set the
        # candidate was fitted to): the comparisons among dev GIFs, which no head trained on.
        if old_pred is not None and on_dev:
            pairs = heldout_pairs(ledger, dev.shas)
            usable = (np.isfinite(old_pred[pairs.winner, pairs.emotion])
                      & np.isfinite(old_pred[pairs.loser, pairs.emotion]))
            metrics["heldout_pairs"] = int(usable.sum())
            if int(usable.sum()) >= MIN_HELDOUT_PAIRS:
                acc_new, _ = pairs.accuracy(new_pred, usable)
                acc_old, _ = pairs.accuracy(np.nan_to_num(old_pred), usable)
                metrics["heldout_accuracy_new"] = acc_new
                metrics["heldout_accuracy_active"] = acc_old
                better = acc_new >= acc_old
                metrics["judged_by"] = "held-out comparisons"
        metrics["dev_rmse_new"] = new_rmse
        metrics["dev_rmse_active"] = None if math.isnan(old_rmse) else old_rmse
        metrics["not_worse"] = bool(better)

        step("save")
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        rel = f"retrain-{run_id}-{base_cfg.kind}.pt"
        from scorer.heads import save_head

        save_head(settings.models_dir / rel, result.module.cpu(), {
            "kind": base_cfg.kind, "in_dim": train.dim, "cfg": base_cfg.head_kwargs(),
            "encoder_id": encoder_id, "sampling": sampling,
        })
        with session_scope(engine) as s:
            mv = ModelVersion(
                name=f"retrain-{run_id}", encoder_id=encoder_id, sampling=sampling,
                head_kind=base_cfg.kind, path=rel, status="candidate",
                config={"head": base_cfg.to_dict(), "scale_params": fit.scale_params,
                        "bt_fit_id": fit.fit_id, "in_dim": train.dim, "targets": "bt-robust",
                        # The pools whose votes trained it: the only ones it may rank.
                        "pools": pools_with_votes(engine) or None},
                metrics={k: metrics[k] for k in ("dev_rmse_new", "dev_rmse_active") if k in metrics},
                parent_id=active.id if active else None,
            )
            s.add(mv)
            s.flush()
            state["mv_id"] = mv.id
            s.execute(update(RetrainRun).where(RetrainRun.id == run_id).values(
                model_version_id=mv.id, bt_fit_id=fit.fit_id))

        step("rescore")
        from scorer.pipeline import write_predictions

        metrics["rescored"] = write_predictions(settings, engine, state["mv_id"], gifs)

        step("activate")
        with session_scope(engine) as s:
            current = versions.active_ids(s)
            if active is not None and current != [active.id]:
                better = False
                metrics["not_worse"] = False
                metrics["why"] = "the active version changed during the run"
            if better:
                versions.activate(s, state["mv_id"])
            else:
                mv = s.get(ModelVersion, state["mv_id"])
                assert mv is not None
                mv.status = "rejected"
            # The new fit is active either way: it holds the newest votes.
            versions.activate_fit(s, fit.fit_id)
            r = s.get(RetrainRun, run_id)
            assert r is not None
            r.status = "activated" if better else "rejected"
            r.finished_at = utcnow()
            r.metrics = metrics
        if "heldout_accuracy_new" in metrics:
            judged = (f"held-out comparison accuracy {metrics['heldout_accuracy_new']:.4f} vs "
                      f"{metrics['heldout_accuracy_active']:.4f} on {metrics['heldout_pairs']} pairs")
        else:
            judged = (f"dev RMSE {new_rmse:.4f}"
                      + (f" vs {old_rmse:.4f}" if not math.isnan(old_rmse) else ", first version"))
        if better:
            msg = f"model version {state['mv_id']} is active ({judged})"
        else:
            msg = (f"model version {state['mv_id']} rejected: worse than the active version "
                   f"({judged}); the new Bradley-Terry fit is active")
        metrics["message"] = msg
        with session_scope(engine) as s:
            s.execute(update(RetrainRun).where(RetrainRun.id == run_id).values(metrics=metrics))
        log.info("retrain run %d: %s", run_id, msg)
        return RetrainOutcome("activated" if better else "rejected", msg, run_id, state["mv_id"],
                              fit.fit_id, metrics)
    except _Skip as skip:
        return finish("skipped", str(skip))
    except Exception as exc:
        log.error("retrain run %d failed: %s\n%s", run_id, exc, traceback.format_exc())
        return finish("failed", f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------
# history and scheduling


def history(engine: Engine, limit: int = 20) -> list[dict]:
    with session_scope(engine) as s:
        runs = s.scalars(select(RetrainRun).order_by(RetrainRun.id.desc()).limit(limit)).all()
        return [{
            "id": r.id, "trigger": r.trigger, "status": r.status, "step": r.step,
            "started_at": r.started_at, "finished_at": r.finished_at, "host": r.host,
            "bt_fit_id": r.bt_fit_id, "model_version_id": r.model_version_id,
            "metrics": r.metrics or {}, "error": r.error,
        } for r in runs]


def make_trigger(settings: Settings):  # type: ignore[no-untyped-def]
    """The APScheduler trigger from settings: an interval if set, else the crontab; None = off."""
    if settings.retrain_interval_min > 0:
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(minutes=settings.retrain_interval_min)
    if settings.retrain_cron.strip():
        from apscheduler.triggers.cron import CronTrigger

        try:
            return CronTrigger.from_crontab(settings.retrain_cron.strip(), timezone="UTC")
        except ValueError as exc:
            from scorer.settings import SettingsError

            raise SettingsError(f"MOODGIF_RETRAIN_CRON {settings.retrain_cron!r} is not a crontab: {exc}") from None
    return None


def scheduled_job(settings: Settings) -> RetrainOutcome:
    outcome = run_retrain(settings, trigger="schedule")
    level = logging.WARNING if outcome.status == "failed" else logging.INFO
    log.log(level, "scheduled retrain: %s: %s", outcome.status, outcome.message)
    return outcome


def make_scheduler(settings: Settings, *, kind: str = "background"):  # type: ignore[no-untyped-def]
    """An APScheduler 3 scheduler with the retrain job, not started.

    kind "asyncio" (inside the bot's event loop: the job runs in the loop's thread pool, never
    on the loop) or "background" (a thread; `moodgif retrain --schedule`). Returns None when
    scheduling is off (empty cron and no interval). One instance at a time, missed runs
    coalesced; the database lock covers other processes and hosts.
    """
    trigger = make_trigger(settings)
    if trigger is None:
        return None
    if kind == "asyncio":
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        sched = AsyncIOScheduler(timezone="UTC")
    elif kind == "background":
        from apscheduler.schedulers.background import BackgroundScheduler

        sched = BackgroundScheduler(timezone="UTC")
    else:
        raise ValueError(f"unknown scheduler kind {kind!r}")
    sched.add_job(scheduled_job, trigger, args=[settings], id="moodgif-retrain",
                  name="moodgif retrain", max_instances=1, coalesce=True,
                  misfire_grace_time=3600, replace_existing=True)
    return sched
