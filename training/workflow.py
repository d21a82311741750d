"""What `moodgif train` and `moodgif evaluate` do, as plain functions (the CLI only prints).

Both start from the ledger: a Bradley-Terry fit of every comparison (seconds even at GIFGIF
scale), the pool's cached features (missing ones are encoded first), and the 80/10/10 split
by GIF. `train_version` trains one head (or searches) and stores it as a model version;
`evaluate_table` trains the paper's seven models and writes the Table-1 report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.pipeline import pools_with_votes
from scorer.settings import Settings
from scorer.store import session_scope, utcnow
from scorer.versions import HEAD_KINDS, active_version, create_candidate
from training import bradley_terry as bt
from training.comparisons import LedgerArrays, load_ledger, pooled_gifs
from training.dataset import Splits, assemble, gif_frame_counts, training_set
from training.evaluate import (
    TABLE_MODELS,
    Table,
    held_out_pairs,
    predict,
    rmse,
    run_table,
    write_report,
)
from training.fit import HeadConfig, HeadFit, fit_baseline, search, train_head
from training.refit import BTFitOutput, distilled_targets, refit_bt

log = logging.getLogger("moodgif.training.workflow")


class WorkflowError(RuntimeError):
    """An expected stop (nothing to learn, no features...); the message says what to do."""


def ledger_fit(settings: Settings, engine: Engine, *, pool: str | None = None,
               with_prior: bool = True, store: bool = False
               ) -> tuple[BTFitOutput, LedgerArrays, dict]:
    gifs = sorted(pooled_gifs(engine, pool))
    if not gifs:
        raise WorkflowError(f"no GIFs in {'pool ' + repr(pool) if pool else 'any pool'}: "
                            "add some with `moodgif pool add` (or `moodgif demo-pool`)")
    ledger, info = load_ledger(engine, known_gifs=set(gifs), items=gifs)
    if len(ledger) == 0:
        raise WorkflowError("nothing to learn yet: the ledger has no comparisons between these "
                            "GIFs; collect votes or run `moodgif import-votes FILE.csv`")
    prior = active_version(engine) if with_prior else None
    fit = refit_bt(settings, engine, ledger, gifs, prior_version=prior, ledger_info=info,
                   store=store)
    return fit, ledger, info


def targets_from(fit: BTFitOutput, scale: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """Targets of the GIFs that were compared at least once.

    "product": `refit.distilled_targets` without an active version (the robust scale,
    weighted by evidence: what the retrain trains on);
    "minmax": theta min-max scaled per emotion over those GIFs, unweighted (the paper's Table 1).
    """
    compared = np.flatnonzero(fit.counts.sum(axis=1) > 0)
    shas = [fit.items[i] for i in compared]
    if scale == "product":
        targets, weights = distilled_targets(fit, None)
        return ({s: targets[i] for s, i in zip(shas, compared, strict=True)},
                {s: weights[i] for s, i in zip(shas, compared, strict=True)})
    if scale == "minmax":
        theta = fit.theta[compared]
        mm = np.stack([bt.minmax_scale(theta[:, e]) for e in range(theta.shape[1])], axis=1)
        return {s: mm[k].astype(np.float32) for k, s in enumerate(shas)}, None
    raise ValueError(f"unknown target scale {scale!r}; expected product or minmax")


def ensure_features(settings: Settings, engine: Engine, shas: Sequence[str], *, pool: str | None,
                    encoder_id: str, sampling: str, device: str, progress: bool) -> int:
    """Encode the GIFs that have no cached features for (encoder, sampling); returns how many."""
    from scorer.features import has_features

    missing = [s for s in shas if not has_features(settings, s, encoder_id, sampling)]
    if not missing:
        return 0
    from scorer.pipeline import score_pool

    log.info("encoding %d GIFs with %s (%s)", len(missing), encoder_id, sampling)
    report = score_pool(settings.override(scoring__sampling=sampling), engine, pool=pool,
                        encoder_id=encoder_id, device=device, progress=progress)
    return report.encoded


def build_splits(settings: Settings, engine: Engine, targets: dict[str, np.ndarray],
                 weights: dict[str, np.ndarray] | None, *, encoder_id: str, set_name: str,
                 device: str = "auto", progress: bool = False) -> Splits:
    from scorer.features import load_features

    ts = training_set(set_name)
    augmenter = None
    bar = None
    if ts.augment:
        from tqdm import tqdm

        from training.augment import Augmenter

        # About 80 % of the GIFs are training GIFs, the only ones augmented.
        bar = tqdm(total=round(0.8 * len(targets)), unit="gif", desc="augmenting",
                   disable=not progress)
        augmenter = Augmenter(settings, encoder_id=encoder_id, sampling=ts.sampling,
                              device=device, progress=bar.update)
    try:
        splits = assemble(
            targets, lambda sha: load_features(settings, sha, encoder_id, ts.sampling),
            seed=settings.training.seed, n_frames=gif_frame_counts(engine, list(targets)), weights=weights,
            augmented=augmenter, set_name=set_name, encoder_id=encoder_id,
        )
    finally:
        if bar is not None:
            bar.close()
    if augmenter is not None:
        splits.info["augment_encoded"] = augmenter.encoded
        splits.info["augment_cached"] = augmenter.cached
        splits.info["augment_failed"] = len(augmenter.failed)
    return splits


@dataclass
class TrainReport:
    model_version_id: int
    kind: str
    splits: str
    metrics: dict
    activated: bool
    trials: list[dict] = field(default_factory=list)


def activate_version(engine: Engine, mv_id: int, fit_id: int | None) -> None:
    """Make this version (and its fit) the active ones, in one transaction."""
    with session_scope(engine) as s:
        versions.activate(s, mv_id, fit_id)


def _splits_for(settings: Settings, engine: Engine, targets: dict, weights: dict, *,
                pool: str | None, set_name: str, device: str, progress: bool) -> Splits:
    """Features for every target GIF (encoding what is missing), then the 80/10/10 split."""
    ts = training_set(set_name)
    ensure_features(settings, engine, list(targets), pool=pool, encoder_id=settings.scoring.encoder,
                    sampling=ts.sampling, device=device, progress=progress)
    splits = build_splits(settings, engine, targets, weights, encoder_id=settings.scoring.encoder,
                          set_name=set_name, device=device, progress=progress)
    if len(splits.train) == 0:
        raise WorkflowError(f"no training examples ({splits.info}); score the pool first")
    return splits


def train_version(settings: Settings, engine: Engine, *, pool: str | None = None,
                  head: str = "fc-maxpool-2", search_trials: int = 0,
                  set_name: str = "sparse-small", epochs: int = 100, activate: bool = False,
                  device: str = "auto", progress: bool = False,
                  on_epoch: Callable[[int, float, float], None] | None = None,
                  on_trial: Callable[[int, dict], None] | None = None) -> TrainReport:
    """Fit the ledger, train one head (or search), store it as a model version."""
    if head not in HEAD_KINDS:
        raise WorkflowError(f"unknown head {head!r}; expected one of {', '.join(HEAD_KINDS)}")
    ts = training_set(set_name)
    fit, _, _ = ledger_fit(settings, engine, pool=pool, store=True)
    targets, weights = targets_from(fit, "product")
    encoder_id = settings.scoring.encoder
    splits = _splits_for(settings, engine, targets, weights, pool=pool, set_name=set_name,
                         device=device, progress=progress)
    trials: list[dict] = []
    result: HeadFit
    if search_trials > 0:
        res = search(splits.train, splits.dev, head, search_trials, seed=settings.training.seed,
                     epochs=epochs, device=device, on_trial=on_trial)
        result, trials = res.best, res.trials
    else:
        result = train_head(splits.train, splits.dev,
                            HeadConfig(kind=head, epochs=epochs, seed=settings.training.seed),
                            device=device, on_epoch=on_epoch)
    module = result.module.cpu()
    metrics: dict = {"set": set_name, **result.summary()}
    for part in ("train", "dev", "test"):
        data = getattr(splits, part)
        metrics[f"{part}_rmse"] = rmse(predict(module, data), data.targets, data.weights)
    mean = fit_baseline("mean", splits.train)
    metrics["test_rmse_mean_only"] = rmse(predict(mean, splits.test), splits.test.targets,
                                          splits.test.weights)
    from scorer.heads import save_head

    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    rel = f"train-{stamp}-{head}-{set_name}.pt"
    save_head(settings.models_dir / rel, module, {
        "kind": head, "in_dim": splits.train.dim, "cfg": result.config.head_kwargs(),
        "encoder_id": encoder_id, "sampling": ts.sampling,
    })
    active = active_version(engine)
    with session_scope(engine) as s:
        mv_id = create_candidate(
            s, name=f"train-{stamp}", encoder_id=encoder_id, sampling=ts.sampling, head_kind=head,
            path=rel, parent_id=active.id if active else None,
            config={"head": result.config.to_dict(), "scale_params": fit.scale_params,
                    "bt_fit_id": fit.fit_id, "in_dim": splits.train.dim, "set": set_name,
                    "targets": "bt-robust",
                    # The pools whose votes trained it: the only ones it may rank.
                    "pools": pools_with_votes(engine) or None},
            metrics=metrics).id
    if activate:
        from scorer.pipeline import write_predictions

        write_predictions(settings, engine, mv_id, sorted(pooled_gifs(engine)))
        activate_version(engine, mv_id, fit.fit_id)
    return TrainReport(mv_id, head, splits.summary(), metrics, activate, trials)


def evaluate_table(settings: Settings, engine: Engine, out_dir: Path, *, pool: str | None = None,
                   set_name: str = "sparse-small", scale: str = "minmax", epochs: int = 100,
                   search_trials: int = 0, models: Sequence[str] = tuple(TABLE_MODELS),
                   device: str = "auto", progress: bool = False,
                   on_model: Callable[[str], None] | None = None,
                   truth: dict[str, np.ndarray] | None = None) -> tuple[Table, Path]:
    """The paper's Table 1 on the ledger's fit (no model prior: targets come from votes only)."""
    training_set(set_name)  # an unknown set name fails before any work
    fit, ledger, info = ledger_fit(settings, engine, pool=pool, with_prior=False, store=False)
    targets, weights = targets_from(fit, scale)
    encoder_id = settings.scoring.encoder
    splits = _splits_for(settings, engine, targets, weights, pool=pool, set_name=set_name,
                         device=device, progress=progress)
    splits.info["ledger_comparisons"] = info["used"]
    splits.info["target_scale"] = scale
    pairs = held_out_pairs(ledger, set(splits.test.shas))
    splits.info["held_out_pairs"] = len(pairs)
    table = run_table(splits, models=models, pairs=pairs, search_trials=search_trials,
                      epochs=epochs, seed=settings.training.seed, device=device, on_model=on_model)
    notes = [f"Targets: Bradley-Terry fit of {info['used']} comparisons, "
             f"{'min-max scaled per emotion (the paper)' if scale == 'minmax' else 'the product scale, evidence-weighted'}; "
             f"training set {set_name}, encoder `{encoder_id}`."]
    if truth:
        notes.append(_truth_note(table, splits, truth))
    report = write_report(table, out_dir, all_targets=np.stack(list(targets.values())),
                          notes=notes)
    return table, report


def _truth_note(table: Table, splits: Splits, truth: dict[str, np.ndarray]) -> str:
    """Spearman of each model's test predictions against a known ground truth (demo pool)."""
    from training.evaluate import spearman_per_emotion

    rows = [i for i, s in enumerate(splits.test.shas) if s in truth]
    if len(rows) < 3:
        return ""
    y = np.stack([truth[splits.test.shas[i]] for i in rows])
    parts = []
    for ev in table.evals:
        if ev.test_pred is None:
            continue
        rho = spearman_per_emotion(ev.test_pred[rows], y)
        parts.append(f"{ev.label} {np.nanmean(rho):.3f}" if np.isfinite(rho).any() else f"{ev.label} –")
    return "Mean Spearman against the demo pool's ground truth (test GIFs): " + ", ".join(parts) + "."
