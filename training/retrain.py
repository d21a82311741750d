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
   how many comparisons back each score; the 80/10/10 split by GIF (`settings.training.seed`).
5. **train** — the head, warm-started from the active version when it is compatible.
   When the head was warm-started and no epoch beat it on the dev votes, the candidate
   would be the active head itself: the run ends there as "kept" (the active version stays,
   the new fit becomes active), with no copy saved or rescored.
6. **evaluate** — the new head and the active version on the same dev GIFs and targets;
   then, pool by pool, the new head against the zero-shot prior on the held-out comparisons
   of that pool: the head takes over a pool only where it wins (`_pool_domain`).
7. **save** — the head file (atomic) and a `candidate` model version.
8. **rescore** — predictions of the candidate for every pooled GIF.
9. **activate** — one transaction: the candidate becomes active (the old one retired) only
   if it is not worse and takes over at least one pool, else it is "rejected"; the new fit
   becomes the active fit either way (it holds the newest votes and was fitted with the
   active model's prior).

The head reads the zero-shot prior's channels (faces, words: `scorer.channels`) beside the
frame features when `moodgif score` stored them, so votes on some GIFs move similar ones.

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
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.emotions import N_EMOTIONS
from scorer.pipeline import pools_with_votes
from scorer.settings import Settings
from scorer.store import (
    ModelVersion,
    RetrainRun,
    db_error_line,
    make_engine,
    session_scope,
    utcnow,
)
from scorer.versions import (  # prediction readers re-exported: their old home
    VersionPredictions,
    create_candidate,
    prediction_matrix,
    ranked_predictions,
)
from training.comparisons import (
    LedgerArrays,
    latest_id,
    load_ledger,
    pooled_gifs,
)
from training.dataset import Dataset
from training.evaluate import held_out_pairs, rmse
from training.fit import HeadConfig, HeadFit, train_head
from training.locks import RETRAIN_LOCK, LockBusy, job_lock
from training.refit import (  # re-exported: the refit and targets' old home
    DISTILL_WEIGHT,
    EVIDENCE_HALF,
    PRIOR_CLIP,
    REFERENCE_WEIGHT,
    BTFitOutput,
    build_dataset,
    distilled_targets,
    evidence_weights,
    refit_bt,
)
from training.run_history import NOT_MEASURED
from training.run_history import history as history  # re-exported: its old home (torch-free)
from training.schedule import make_trigger

log = logging.getLogger("moodgif.training.retrain")

DEFAULT_HEAD = "fc-maxpool-2"
# A candidate may be this much worse in dev RMSE and still count as "not worse" (float noise).
RMSE_TOLERANCE = 1e-6
# Fit each preview decision as a judgement against the sender's bar (training.judgements)
# instead of the adversely selected "sent beats skipped" pairs.
USE_BAR_JUDGEMENTS = True
# Held-out comparisons (both GIFs in the dev split) needed to judge a candidate by them;
# fewer: dev RMSE on the compared dev GIFs decides, as before.
MIN_HELDOUT_PAIRS = 30
# Held-out comparisons of one pool needed before a head may take that pool over from the
# zero-shot prior; with fewer the prior keeps ranking it.
MIN_POOL_PAIRS = 10
# The head that starts as the zero-shot prior and learns a correction from votes
# (scorer.heads.PriorResidual); a 26-input linear correction from zero needs a larger step
# than the default 1e-3 to move within 100 epochs of one batch each. Chosen on real-gifs
# (the tuning set) only: docs/benchmarks.md, "Votes on half a pool".
RESIDUAL_HEAD = "prior-residual"
RESIDUAL_CONFIG = {"lr": 1e-2}


@dataclass
class RetrainOutcome:
    status: str  # activated | kept | rejected | skipped | failed | busy
    message: str
    run_id: int | None = None
    model_version_id: int | None = None
    bt_fit_id: int | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("activated", "kept", "rejected", "skipped")


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

__all__ = [
    "DISTILL_WEIGHT", "EVIDENCE_HALF", "PRIOR_CLIP", "REFERENCE_WEIGHT", "BTFitOutput",
    "RetrainOutcome", "active_version", "build_dataset", "distilled_targets",
    "evidence_weights", "history", "make_scheduler", "make_trigger", "prediction_matrix",
    "ranked_predictions", "refit_bt", "run_retrain", "scheduled_job",
]


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
# evaluation helpers


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


# ---------------------------------------------------------------------------------------
# the run: one function per step, handing each other named values


@dataclass
class _Run:
    """One run's context: its row, the callback, and what it records as it goes."""

    settings: Settings
    engine: Engine
    run_id: int
    on_step: Callable[[str], None] | None
    metrics: dict = field(default_factory=dict)  # written to the run's row at the end
    fit_id: int | None = None
    mv_id: int | None = None
    # The active version's predictions, read once (bt-fit) for the refit's prior, the
    # distillation targets and the evaluation.
    active_pred: VersionPredictions | None = None
    current_step: str = ""

    def step(self, name: str) -> None:
        self.current_step = name
        if self.on_step is not None:
            self.on_step(name)
        _set_step(self.engine, self.run_id, name)


@dataclass
class _Ledger:
    gifs: list[str]  # every pooled GIF, sorted
    ledger: LedgerArrays  # the comparisons (held-out pairs are judged on these)
    fit_ledger: LedgerArrays  # plus the bar judgements: what the BT fit sees


@dataclass
class _Data:
    train: Dataset
    dev: Dataset
    evidence: dict  # sha -> vote-only weights (17,)
    encoder_id: str
    sampling: str
    channels: str | None = None  # the prior's channels the head reads (scorer.channels)

    def votes_only(self, data: Dataset) -> Dataset:
        # Judge on the votes alone: the active version fits its own rehearsal targets
        # exactly, so with them in the dev loss a warm start would never be beaten.
        return Dataset(data.keys, data.shas, data.feats, data.targets,
                       np.asarray([self.evidence[sha] for sha in data.shas],
                                  np.float32).reshape(-1, N_EMOTIONS))


@dataclass
class _Verdict:
    better: bool
    new_rmse: float
    old_rmse: float
    pools: list[str] | None = None  # the pools the candidate takes over; None = any


def run_retrain(settings: Settings, engine: Engine | None = None, *, trigger: str = "manual",
                head_kind: str | None = None, epochs: int = 100, device: str = "cpu",
                force: bool = False, on_step: Callable[[str], None] | None = None
                ) -> RetrainOutcome:
    """One retrain run; returns what happened (never raises for an expected failure).

    A scheduled run (`trigger="schedule"`) is skipped when fewer than
    `settings.training.retrain_min_new_comparisons` comparisons arrived since the active fit;
    `force` runs anyway.
    """
    # The schema is migrated at `moodgif db upgrade` and at start-up, never by a job.
    engine = engine or make_engine(settings.db_url)
    try:
        with job_lock(engine, RETRAIN_LOCK):
            outcome = _run_locked(settings, engine, trigger=trigger, head_kind=head_kind,
                                  epochs=epochs, device=device, force=force, on_step=on_step)
            _prune_old(settings, engine)
            return outcome
    except LockBusy as exc:
        return RetrainOutcome("busy", f"a retrain is {exc}")


def _prune_old(settings: Settings, engine: Engine) -> None:
    """Each run adds a fit and maybe a version with its predictions: keep the newest
    `keep_versions` of them whole, drop the rest's bulk (training/prune.py). A prune that
    fails costs disk space, never the run: it is tried again after the next one."""
    keep = settings.training.keep_versions
    if keep <= 0:
        return
    from training.prune import prune

    try:
        report = prune(settings, engine, keep, locked=True)
    except Exception as exc:
        log.warning("retrain: pruning old fits and versions failed (tried again next run): %s", exc)
        return
    if not report.empty:
        log.info("retrain: pruned %s (MOODGIF_KEEP_VERSIONS=%d)", report.summary(), keep)


def _run_locked(settings: Settings, engine: Engine, *, trigger: str, head_kind: str | None,
                epochs: int, device: str, force: bool,
                on_step: Callable[[str], None] | None) -> RetrainOutcome:
    cleanup_interrupted(engine)
    run = _start(settings, engine, trigger, on_step)
    try:
        _hold("lock")
        run.step("ledger")
        led = _read_ledger(run, trigger, force)
        run.step("bt-fit")
        active = versions.active_version(engine)
        fit = _fit_bt(run, led, active)
        run.step("dataset")
        data = _dataset(run, fit, active)
        run.step("train")
        result, cfg = _train(run, data, active, head_kind, epochs, device)
        if _active_head_unbeaten(run):
            return _keep_active_head(run, fit, active)
        run.step("evaluate")
        verdict = _evaluate(run, led.ledger, data, active, result)
        run.step("save")
        _save(run, data, fit, active, result, cfg, verdict.pools)
        run.step("rescore")
        _rescore(run, led.gifs)
        run.step("activate")
        verdict.better = _activate(run, fit, active, verdict.better)
        return _report(run, fit, verdict)
    except _Skip as skip:
        return _finish(run, "skipped", str(skip))
    except Exception as exc:
        log.error("retrain run %d failed: %s\n%s", run.run_id, exc, traceback.format_exc())
        return _finish(run, "failed", f"{type(exc).__name__}: {exc}")
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM unwinding (bot.sigterm)
        # said now, not by the next run's cleanup: until then `history` showed it "running"
        _finish(run, "failed", f"interrupted at step {run.current_step or 'start'} (stopped by a signal)")
        raise


def _start(settings: Settings, engine: Engine, trigger: str,
           on_step: Callable[[str], None] | None) -> _Run:
    with session_scope(engine) as s:
        row = RetrainRun(trigger=trigger[:20], status="running", step="lock",
                         host=f"{socket.gethostname()}:{os.getpid()}"[:100])
        s.add(row)
        s.flush()
        return _Run(settings, engine, row.id, on_step)


def _finish(run: _Run, status: str, message: str) -> RetrainOutcome:
    """Close a run that did not reach activation (skipped or failed)."""
    with session_scope(run.engine) as s:
        r = s.get(RetrainRun, run.run_id)
        assert r is not None
        if r.status != "running":  # decided already (a signal after the activation's commit)
            return RetrainOutcome(r.status, message, run.run_id, run.mv_id, run.fit_id, run.metrics)
        r.status, r.finished_at, r.metrics = status, utcnow(), {**run.metrics, "message": message}
        if status == "failed":
            r.error = message
        r.bt_fit_id = run.fit_id
        r.model_version_id = run.mv_id
        if status == "failed" and run.mv_id is not None:
            mv = s.get(ModelVersion, run.mv_id)
            if mv is not None and mv.status == "candidate":
                mv.status = "failed"
    log.info("retrain run %d: %s: %s", run.run_id, status, message)
    return RetrainOutcome(status, message, run.run_id, run.mv_id, run.fit_id, run.metrics)


def _read_ledger(run: _Run, trigger: str, force: bool) -> _Ledger:
    """A fixed snapshot of the ledger (up to the newest comparison now); _Skip when there
    is nothing (new enough) to learn."""
    settings, engine = run.settings, run.engine
    from training.judgements import preview_judgements, previews_decided_since, with_judgements

    prev_fit = versions.active_fit(engine)
    last_seen = prev_fit.last_comparison_id if prev_fit else 0
    newest = latest_id(engine)
    # A preview sent without a shuffle, or cancelled, adds no comparison row but is a
    # decision the fit learns from: it counts as something new (the better the bot, the more
    # first GIFs are sent as they are).
    decided = (previews_decided_since(engine, prev_fit.created_at if prev_fit else None)
               if USE_BAR_JUDGEMENTS else 0)
    if newest == 0 and decided == 0 and prev_fit is None:
        raise _Skip("nothing to learn yet: no comparisons (votes, sends, polls or imported "
                    "pairs) and no decided previews; collect some, then run again")
    if trigger == "schedule" and not force:
        from training.comparisons import count_since

        new = count_since(engine, last_seen) + decided
        if new < settings.training.retrain_min_new_comparisons:
            raise _Skip(f"only {new} new comparisons and decided previews since the last fit "
                        f"(MOODGIF_RETRAIN_MIN_NEW_COMPARISONS={settings.training.retrain_min_new_comparisons})")
    gifs = sorted(pooled_gifs(engine))
    ledger, info = load_ledger(engine, known_gifs=set(gifs), items=gifs, up_to_id=newest)
    run.metrics["ledger"] = {k: info[k] for k in ("rows", "used", "skipped_unknown_gif", "ties")}
    run.metrics["ledger"]["by_source"] = info["by_source"]
    fit_ledger = ledger
    if USE_BAR_JUDGEMENTS:
        judged = preview_judgements(engine, set(gifs))
        fit_ledger = with_judgements(ledger, judged)
        run.metrics["ledger"]["bar_judgements"] = len(judged)
        run.metrics["ledger"]["previews_decided_since_last_fit"] = decided
    if len(fit_ledger) == 0:
        raise _Skip(f"nothing to learn yet: none of the {info['rows']} comparisons or decided "
                    "previews names a GIF that is in a pool")
    return _Ledger(gifs, ledger, fit_ledger)


def _fit_bt(run: _Run, led: _Ledger, active: ModelVersion | None) -> BTFitOutput:
    if active is not None:
        run.active_pred = VersionPredictions(run.engine, active.id,
                                             list(dict.fromkeys([*led.fit_ledger.ids, *led.gifs])))
    fit = refit_bt(run.settings, run.engine, led.fit_ledger, led.gifs, prior_version=active,
                   ledger_info=run.metrics["ledger"], prior_pred=run.active_pred)
    run.fit_id = fit.fit_id
    run.metrics["bt"] = {"fit_id": fit.fit_id,
                         "prior_model_version_id": active.id if active else None}
    return fit


def _dataset(run: _Run, fit: BTFitOutput, active: ModelVersion | None) -> _Data:
    settings, engine = run.settings, run.engine
    encoder_id = active.encoder_id if active else settings.scoring.encoder
    sampling = active.sampling if active else settings.scoring.sampling
    active_pred = None
    if run.active_pred is not None and DISTILL_WEIGHT > 0:
        # What ranks each GIF now (the prior where the active head does not): rehearsed.
        active_pred = run.active_pred.ranked(fit.items)
        if not np.isfinite(active_pred).any():
            active_pred = None
    from scorer.channels import CHANNELS_ID, any_channels

    channels = CHANNELS_ID if any_channels(settings, fit.items, sampling) else None
    train, dev, dinfo = build_dataset(settings, engine, fit, encoder_id=encoder_id,
                                      sampling=sampling, active_pred=active_pred,
                                      channels=channels)
    evidence = dinfo.pop("evidence")
    run.metrics["dataset"] = {**dinfo, "dev_used": len(dev), "encoder_id": encoder_id,
                              "sampling": sampling, "channels": channels,
                              "distill_weight": DISTILL_WEIGHT if active_pred is not None else 0.0}
    if len(train) == 0:
        if dinfo.get("no_features"):
            raise _Skip(f"no cached features for the {dinfo['no_features']} compared GIFs "
                        f"(encoder {encoder_id}, {sampling}): run `moodgif score` first")
        raise _Skip("nothing to learn yet: too few compared GIFs with 4 or more frames")
    return _Data(train, dev, evidence, encoder_id, sampling, channels)


def _train(run: _Run, data: _Data, active: ModelVersion | None, head_kind: str | None,
           epochs: int, device: str) -> tuple[HeadFit, HeadConfig]:
    """The head (warm-started from the active version's when it is the same kind and size);
    with the prior's channels and no kind asked for, also a `prior-residual` head, and the
    one with the lower dev loss on the votes is kept."""
    result, cfg = _train_one(run, data, active, head_kind, epochs, device)
    if head_kind is None and data.channels and cfg.kind != RESIDUAL_HEAD:
        other = HeadConfig(kind=RESIDUAL_HEAD, epochs=epochs, seed=run.settings.training.seed,
                           **RESIDUAL_CONFIG)
        alt = train_head(data.train, data.votes_only(data.dev), other, device=device)
        tried = {cfg.kind: result.best_dev_loss, RESIDUAL_HEAD: alt.best_dev_loss}
        if alt.best_dev_loss < result.best_dev_loss:
            result, cfg = alt, other
            run.metrics["train"] = {**alt.summary(), "warm_start": False,
                                    "head": other.to_dict(), "n_train": len(data.train)}
        run.metrics["train"]["tried"] = tried
    return result, cfg


def _train_one(run: _Run, data: _Data, active: ModelVersion | None, head_kind: str | None,
               epochs: int, device: str) -> tuple[HeadFit, HeadConfig]:
    settings = run.settings
    if head_kind in (RESIDUAL_HEAD, "channels-linear") and not data.channels:
        raise ValueError(f"a {head_kind} head reads the zero-shot prior's channels, and none are "
                         "stored: run `moodgif score` (it writes them) first")
    init = None
    cfg = HeadConfig(kind=head_kind or DEFAULT_HEAD, epochs=epochs, seed=settings.training.seed)
    if active is not None and active.path and (head_kind in (None, active.head_kind)):
        path = versions.head_file(settings, active.path)
        if path.is_file():
            from scorer.channels import head_channels
            from scorer.heads import load_head

            try:
                module, meta = load_head(path)
            except Exception as exc:  # a damaged file must not block every later run
                log.warning("retrain: the active head %s cannot be read (%s: %s); training from "
                            "scratch", path.name, type(exc).__name__, str(exc)[:200])
                run.metrics["warm_start_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                module, meta = None, {}
            if (module is not None and int(meta.get("in_dim", -1)) == data.train.dim
                    and head_channels(meta) == data.channels
                    and active.head_kind.startswith(("fc-", "rnn-", RESIDUAL_HEAD))):
                init = module
                saved = (active.config or {}).get("head") or {}
                cfg = HeadConfig.from_dict({**saved, "epochs": epochs, "seed": settings.training.seed,
                                            "kind": active.head_kind})
    result = train_head(data.train, data.votes_only(data.dev), cfg, device=device, init=init)
    run.metrics["train"] = {**result.summary(), "warm_start": init is not None,
                            "head": cfg.to_dict(), "n_train": len(data.train)}
    return result, cfg


def _active_head_unbeaten(run: _Run) -> bool:
    """No epoch beat the warm start on the dev votes: the candidate would be the active head
    itself, weight for weight (saving and activating it published identical copies)."""
    train = run.metrics.get("train", {})
    return bool(train.get("warm_start")) and train.get("best_epoch") == 0


def _keep_active_head(run: _Run, fit: BTFitOutput, active: ModelVersion | None) -> RetrainOutcome:
    """The active version stays, the new fit becomes active (it holds the newest votes): one
    transaction, unless the active version changed meanwhile (then the fit waits too)."""
    assert active is not None
    metrics = run.metrics
    loss = metrics["train"].get("best_dev_loss")
    msg = (f"model version {active.id} stays active: no training epoch beat its head on the dev "
           f"votes (dev loss {loss:.4f}); the new Bradley-Terry fit is active")
    with session_scope(run.engine) as s:
        if versions.active_ids(s) != [active.id]:
            msg = "the active version changed during the run; nothing was changed"
        else:
            versions.activate_fit(s, fit.fit_id)
        r = s.get(RetrainRun, run.run_id)
        assert r is not None
        r.status, r.finished_at = "kept", utcnow()
        metrics["message"] = msg
        r.metrics = metrics
    log.info("retrain run %d: %s", run.run_id, msg)
    return RetrainOutcome("kept", msg, run.run_id, active.id, fit.fit_id, metrics)


def _evaluate(run: _Run, ledger: LedgerArrays, data: _Data, active: ModelVersion | None,
              result: HeadFit) -> _Verdict:
    """Which pools the candidate would take over from the zero-shot prior (`_pool_domain`),
    then: is it not worse than what ranks the GIFs of those pools now?"""
    from scorer.heads import predict

    dev_pred = predict(result.module, data.dev.feats) if len(data.dev) else np.zeros((0, N_EMOTIONS))
    pools, members = _pool_domain(run, ledger, data, dev_pred)
    if pools is not None and not pools:
        per = run.metrics.get("pools", {})
        if per and all(row.get("heldout_pairs", 0) < MIN_POOL_PAIRS for row in per.values()):
            # never measured, not beaten: say what it waits for
            run.metrics["why"] = (f"no pool has {MIN_POOL_PAIRS} held-out comparisons yet to judge it "
                                  "against the zero-shot prior, which keeps ranking them; more votes will")
        else:
            run.metrics["why"] = "it beats the zero-shot prior on the held-out comparisons of no pool"
        run.metrics["not_worse"] = False
        return _Verdict(False, math.nan, math.nan, [])
    # With a zero-shot prior, judged against the active version only where it takes over.
    scope = set().union(*(members[p] for p in pools)) if pools and members else None
    better, new_rmse, old_rmse = _against_active(run, ledger, data, active, result, dev_pred, scope)
    return _Verdict(better, new_rmse, old_rmse, pools)


def _against_active(run: _Run, ledger: LedgerArrays, data: _Data, active: ModelVersion | None,
                    result: HeadFit, dev_pred: np.ndarray, scope: set[str] | None
                    ) -> tuple[bool, float, float]:
    """Is the candidate not worse than what ranks these GIFs (those in `scope`, when given)
    now? Held-out comparisons decide when there are enough of them, else dev RMSE on the
    votes. Returns (not worse, new RMSE, active RMSE)."""
    metrics = run.metrics
    eval_set, new_pred, on_dev = _evaluation_set(run, data, result, dev_pred)
    if scope is not None:  # only the GIFs it would take over
        rows = [i for i, sha in enumerate(eval_set.shas) if sha in scope]
        eval_set, new_pred = eval_set.subset(rows), new_pred[rows]
    new_rmse = _weighted_rmse(new_pred, eval_set)
    # For scale: what predicting the training mean for every GIF scores here.
    mean_pred = np.broadcast_to(column_means(data.train.targets, data.train.weights),
                                eval_set.targets.shape)
    mean_only = _weighted_rmse(mean_pred, eval_set)
    metrics["dev_rmse_mean_only"] = None if math.isnan(mean_only) else mean_only
    old_rmse = math.nan
    old_pred = None
    if active is not None:
        old_pred, old_rmse, new_rmse = _rmse_against_active(run, eval_set, new_pred, new_rmse)
    better = active is None or math.isnan(old_rmse) or new_rmse <= old_rmse + RMSE_TOLERANCE
    metrics["judged_by"] = "dev RMSE"
    # Better evidence than RMSE on the compared GIFs (each emotion's top, the very set the
    # candidate was fitted to): the comparisons among dev GIFs, which no head trained on.
    if old_pred is not None and on_dev:
        verdict = _heldout_verdict(metrics, ledger, eval_set, new_pred, old_pred)
        better = better if verdict is None else verdict
    # None, not NaN, for "not measured": the metrics are JSON shown to people.
    metrics["dev_rmse_new"] = None if math.isnan(new_rmse) else new_rmse
    metrics["dev_rmse_active"] = None if math.isnan(old_rmse) else old_rmse
    metrics["not_worse"] = bool(better)
    return bool(better), new_rmse, old_rmse


def _evaluation_set(run: _Run, data: _Data, result: HeadFit, dev_pred: np.ndarray
                    ) -> tuple[Dataset, np.ndarray, bool]:
    """The GIFs to judge on (votes only), the candidate's predictions for them, and whether
    they are the dev GIFs (else the training GIFs)."""
    from scorer.heads import predict

    train, dev = data.train, data.dev
    eval_set = data.votes_only(dev)
    if len(dev) == 0 or float(eval_set.weights.sum()) == 0:  # type: ignore[union-attr]
        # Too few compared GIFs for a dev set: judge on the training GIFs, and say so.
        eval_set = data.votes_only(train)
        new_pred = predict(result.module, train.feats)
        run.metrics["evaluate_on"] = "train (no dev GIFs with comparisons)"
        return eval_set, new_pred, False
    return eval_set, dev_pred, True


def _rmse_against_active(run: _Run, eval_set: Dataset, new_pred: np.ndarray, new_rmse: float
                         ) -> tuple[np.ndarray, float, float]:
    """What ranks these GIFs now, and both RMSEs on the GIFs it ranks (`new_rmse` as given
    when it ranks none): (its predictions, its RMSE, the candidate's RMSE)."""
    # What ranks these GIFs now: the active version, or the zero-shot prior for the
    # pools outside its domain. A new head must beat that on each GIF it would take over.
    assert run.active_pred is not None  # read at bt-fit for this same active version
    old_pred = run.active_pred.ranked(eval_set.shas)
    old_rmse = math.nan
    have = np.isfinite(old_pred).all(axis=1)
    if have.any():
        sub = eval_set.subset(np.flatnonzero(have).tolist())
        old_rmse = _weighted_rmse(old_pred[have], sub)
        new_rmse = _weighted_rmse(new_pred[have], sub)
        run.metrics["dev_compared_gifs"] = int(have.sum())
    return old_pred, old_rmse, new_rmse


def _heldout_verdict(metrics: dict, ledger: LedgerArrays, eval_set: Dataset,
                     new_pred: np.ndarray, old_pred: np.ndarray) -> bool | None:
    """Does the candidate order the held-out comparisons among these GIFs at least as well
    as what ranks them now? None when fewer than MIN_HELDOUT_PAIRS can be judged."""
    pairs = held_out_pairs(ledger, eval_set.shas)
    w, lo, usable = pairs.rows(eval_set.shas)
    usable &= np.isfinite(old_pred[w, pairs.emotion]) & np.isfinite(old_pred[lo, pairs.emotion])
    metrics["heldout_pairs"] = int(usable.sum())
    if int(usable.sum()) < MIN_HELDOUT_PAIRS:
        return None
    acc_new, _ = pairs.accuracy(new_pred, eval_set.shas, usable)
    acc_old, _ = pairs.accuracy(np.nan_to_num(old_pred), eval_set.shas, usable)
    metrics["heldout_accuracy_new"] = acc_new
    metrics["heldout_accuracy_active"] = acc_old
    metrics["judged_by"] = "held-out comparisons"
    return acc_new >= acc_old


def _pool_members(engine: Engine, pools: list[str]) -> dict[str, set[str]]:
    from scorer.store import Pool, PoolGif

    out: dict[str, set[str]] = {p: set() for p in pools}
    with session_scope(engine) as s:
        for name, sha in s.execute(select(Pool.name, PoolGif.gif_sha)
                                   .join(PoolGif, PoolGif.pool_id == Pool.id)
                                   .where(Pool.name.in_(pools))):
            out[name].add(sha)
    return out


def _pool_domain(run: _Run, ledger: LedgerArrays, data: _Data, new_pred: np.ndarray
                 ) -> tuple[list[str] | None, dict[str, set[str]]]:
    """The voted pools whose ranking the candidate takes over from the zero-shot prior:
    those where it orders more of the pool's held-out comparisons (both GIFs in the dev
    split) right than the prior does, on at least MIN_POOL_PAIRS of them; and each pool's
    GIFs. None (any pool with votes, as before) when the home has no zero-shot prior."""
    engine, metrics = run.engine, run.metrics
    voted = pools_with_votes(engine)
    zero_shot = versions.zero_shot_version_id(engine)
    if zero_shot is None:
        metrics["pools"] = {p: {"takes_over": True, "why": "no zero-shot prior"} for p in voted}
        return voted or None, {}
    dev = data.dev
    prior = prediction_matrix(engine, zero_shot, dev.shas)
    pairs = held_out_pairs(ledger, dev.shas)
    win, lose, present = pairs.rows(dev.shas)
    per: dict[str, dict] = {}
    members_of = _pool_members(engine, voted)
    for pool, members in members_of.items():
        in_pool = np.asarray([sha in members for sha in dev.shas], bool)
        # A pool the prior never scored (scored without it): the head must beat chance.
        unscored = not np.isfinite(prior[in_pool]).all(axis=1).any()
        ranked = in_pool if unscored else in_pool & np.isfinite(prior).all(axis=1)
        usable = present & ranked[win] & ranked[lose] if len(pairs) else np.zeros(0, bool)
        n = int(usable.sum())
        row: dict = {"heldout_pairs": n, "takes_over": False}
        if n >= MIN_POOL_PAIRS:
            row["accuracy_new"], _ = pairs.accuracy(new_pred, dev.shas, usable)
            row["accuracy_prior"] = (0.5 if unscored else
                                     pairs.accuracy(np.nan_to_num(prior), dev.shas, usable)[0])
            row["takes_over"] = bool(row["accuracy_new"] > row["accuracy_prior"])
            if unscored:
                row["why"] = "the zero-shot prior has not scored this pool: judged against chance"
        else:
            row["why"] = f"fewer than {MIN_POOL_PAIRS} held-out comparisons: the prior keeps it"
        per[pool] = row
    metrics["pools"] = per
    return [p for p in voted if per[p]["takes_over"]], members_of


def _save(run: _Run, data: _Data, fit: BTFitOutput, active: ModelVersion | None,
          result: HeadFit, cfg: HeadConfig, pools: list[str] | None) -> None:
    """The head file and a `candidate` model version (inactive: a kill here changes nothing)."""
    from scorer.heads import head_meta, save_head

    settings, engine = run.settings, run.engine
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    rel = f"retrain-{run.run_id}-{cfg.kind}.pt"
    save_head(settings.models_dir / rel, result.module.cpu(), head_meta(
        kind=cfg.kind, in_dim=data.train.dim, cfg=cfg.head_kwargs(), encoder_id=data.encoder_id,
        sampling=data.sampling, channels=data.channels))
    with session_scope(engine) as s:
        mv = create_candidate(
            s, name=f"retrain-{run.run_id}", encoder_id=data.encoder_id, sampling=data.sampling,
            head_kind=cfg.kind, path=rel,
            config={"head": cfg.to_dict(), "scale_params": fit.scale_params,
                    "bt_fit_id": fit.fit_id, "in_dim": data.train.dim, "targets": "bt-robust",
                    "channels": data.channels,
                    # The pools whose votes trained it and where it beat the zero-shot
                    # prior: the only ones it may rank.
                    "pools": pools},
            metrics={k: run.metrics[k] for k in ("dev_rmse_new", "dev_rmse_active")
                     if k in run.metrics},
            parent_id=active.id if active else None,
        )
        run.mv_id = mv.id
        s.execute(update(RetrainRun).where(RetrainRun.id == run.run_id).values(
            model_version_id=mv.id, bt_fit_id=fit.fit_id))


def _rescore(run: _Run, gifs: list[str]) -> None:
    from scorer.pipeline import write_predictions

    assert run.mv_id is not None
    run.metrics["rescored"] = write_predictions(run.settings, run.engine, run.mv_id, gifs)


def _activate(run: _Run, fit: BTFitOutput, active: ModelVersion | None, better: bool) -> bool:
    """One transaction: the candidate active (or rejected), the new fit active either way.
    Returns whether the candidate was activated."""
    metrics = run.metrics
    with session_scope(run.engine) as s:
        changed = active is not None and versions.active_ids(s) != [active.id]
        if changed:
            better = False
            metrics["not_worse"] = False
            metrics["why"] = "the active version changed during the run"
        assert run.mv_id is not None
        if better:
            versions.activate(s, run.mv_id)
        else:
            mv = s.get(ModelVersion, run.mv_id)
            assert mv is not None
            mv.status = "rejected"
        if not changed:
            # The new fit is active either way: it holds the newest votes. Not beside a version
            # activated meanwhile (`train --activate`): it was fitted on the old one's prior.
            versions.activate_fit(s, fit.fit_id)
        r = s.get(RetrainRun, run.run_id)
        assert r is not None
        r.status = "activated" if better else "rejected"
        r.finished_at = utcnow()
        r.metrics = metrics
    return better


def _judged(metrics: dict, verdict: _Verdict) -> str:
    """What the verdict rests on, in words: never "nan" (a candidate with no vote on a GIF it
    was not trained on could not be measured, and the message says so)."""
    if "heldout_accuracy_new" in metrics:
        return (f"held-out comparison accuracy {metrics['heldout_accuracy_new']:.4f} vs "
                f"{metrics['heldout_accuracy_active']:.4f} on {metrics['heldout_pairs']} pairs")
    first = math.isnan(verdict.old_rmse)
    if math.isnan(verdict.new_rmse):
        return NOT_MEASURED + (", first version" if first else "")
    return f"dev RMSE {verdict.new_rmse:.4f}" + (", first version" if first
                                                 else f" vs {verdict.old_rmse:.4f}")


def _report(run: _Run, fit: BTFitOutput, verdict: _Verdict) -> RetrainOutcome:
    metrics = run.metrics
    judged = _judged(metrics, verdict)
    if verdict.better:
        msg = f"model version {run.mv_id} is active ({judged})"
        if verdict.pools is not None:
            kept = sorted(set(metrics.get("pools", {})) - set(verdict.pools))
            msg += (f"; it ranks {', '.join(verdict.pools)}"
                    + (f"; the zero-shot prior keeps {', '.join(kept)}" if kept else ""))
    else:
        why = metrics.get("why") or "worse than the active version"
        # Rejected before any measuring (it wins no pool): the why is the whole story.
        shown = why if verdict.pools == [] else f"{why} ({judged})"
        fit_note = ("the active version's own fit stays" if why == "the active version changed during the run"
                    else "the new Bradley-Terry fit is active")
        msg = f"model version {run.mv_id} rejected: {shown}; {fit_note}"
    metrics["message"] = msg
    with session_scope(run.engine) as s:
        s.execute(update(RetrainRun).where(RetrainRun.id == run.run_id).values(metrics=metrics))
    log.info("retrain run %d: %s", run.run_id, msg)
    status = "activated" if verdict.better else "rejected"
    return RetrainOutcome(status, msg, run.run_id, run.mv_id, fit.fit_id, metrics)


# ---------------------------------------------------------------------------------------
# history and scheduling


def scheduled_job(settings: Settings) -> RetrainOutcome:
    from sqlalchemy.exc import OperationalError

    try:
        outcome = run_retrain(settings, trigger="schedule")
    except OperationalError as exc:
        # The database is away (a restart, a network cut): there is no run to record it in,
        # and APScheduler would log a traceback each time. One line; the next run retries.
        outcome = RetrainOutcome("failed", f"the database does not answer ({db_error_line(exc)}); "
                                 "the next run retries")
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
