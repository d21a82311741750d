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
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.pipeline import pools_with_votes
from scorer.settings import Settings
from scorer.store import ModelVersion, session_scope, utcnow
from scorer.versions import HEAD_KINDS, active_version, create_candidate, finite_metrics
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

if TYPE_CHECKING:
    from torch import nn

    from scorer.prior import TextModel

log = logging.getLogger("moodgif.training.workflow")


class WorkflowError(RuntimeError):
    """An expected stop (nothing to learn, no features...); the message says what to do."""


def ledger_fit(settings: Settings, engine: Engine, *, pool: str | None = None,
               with_prior: bool = True, store: bool = False, judgements: bool = False,
               prior: ModelVersion | None = None) -> tuple[BTFitOutput, LedgerArrays, dict]:
    """The Bradley-Terry fit of the ledger's comparisons between pooled GIFs, and the
    ledger. `judgements`: with the previews' decisions against each sender's bar, weighed
    per person, as the retrain fits them (a fit that becomes active must: without them the
    sent-beats-skipped pairs count in full and the top of the ranking got worse)."""
    gifs = sorted(pooled_gifs(engine, pool))
    if not gifs and pool:
        from scorer.pool_storage import pool_exists

        if not pool_exists(engine, pool):
            raise WorkflowError(f"no pool named {pool!r} (`moodgif pool list` shows the pools)")
    if not gifs:
        raise WorkflowError(f"no GIFs in {'pool ' + repr(pool) if pool else 'any pool'}: "
                            "add some with `moodgif pool add` (or `moodgif demo-pool`)")
    ledger, info = load_ledger(engine, known_gifs=set(gifs), items=gifs)
    if len(ledger) == 0:
        raise WorkflowError("nothing to learn yet: the ledger has no comparisons between these "
                            "GIFs; collect votes or run `moodgif import-votes FILE.csv`")
    if with_prior and prior is None:
        prior = active_version(engine)
    elif not with_prior:
        prior = None
    fit_ledger = ledger
    if judgements:
        from training.judgements import preview_judgements, with_judgements

        judged = preview_judgements(engine, set(gifs))
        fit_ledger = with_judgements(ledger, judged)
        info = {**info, "bar_judgements": len(judged)}
    fit = refit_bt(settings, engine, fit_ledger, gifs, prior_version=prior, ledger_info=info,
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
                 device: str = "auto", progress: bool = False, channels: str | None = None) -> Splits:
    """With `channels` (scorer.channels) each GIF's stored prior channels join its frames,
    augmented copies included (a flipped or shifted copy keeps its GIF's face and words)."""
    from scorer.channels import head_features

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
    augmented: Callable[[str], list[tuple[str, np.ndarray]]] | None = augmenter
    if augmenter is not None and channels:
        augmented = _channels_appended(augmenter, settings, ts.sampling, channels)
    try:
        splits = assemble(
            targets, lambda sha: head_features(settings, sha, encoder_id, ts.sampling, channels),
            seed=settings.training.seed, n_frames=gif_frame_counts(engine, list(targets)), weights=weights,
            augmented=augmented, set_name=set_name, encoder_id=encoder_id,
        )
    finally:
        if bar is not None:
            bar.close()
    if augmenter is not None:
        splits.info["augment_encoded"] = augmenter.encoded
        splits.info["augment_cached"] = augmenter.cached
        splits.info["augment_failed"] = len(augmenter.failed)
    return splits


def _channels_appended(augmenter: Callable[[str], list[tuple[str, np.ndarray]]], settings: Settings,
                       sampling: str, channels: str) -> Callable[[str], list[tuple[str, np.ndarray]]]:
    from scorer.channels import load_channels, with_channels

    def augmented(sha: str) -> list[tuple[str, np.ndarray]]:
        vector = load_channels(settings, sha, sampling, channels)
        return [(kind, with_channels(f, vector)) for kind, f in augmenter(sha)]

    return augmented


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
                pool: str | None, set_name: str, device: str, progress: bool,
                channels: str | None = None) -> Splits:
    """Features for every target GIF (encoding what is missing), then the 80/10/10 split."""
    ts = training_set(set_name)
    ensure_features(settings, engine, list(targets), pool=pool, encoder_id=settings.scoring.encoder,
                    sampling=ts.sampling, device=device, progress=progress)
    splits = build_splits(settings, engine, targets, weights, encoder_id=settings.scoring.encoder,
                          set_name=set_name, device=device, progress=progress, channels=channels)
    if len(splits.train) == 0:
        raise WorkflowError(f"no training examples ({splits.info}); score the pool first")
    return splits


# Heads `moodgif train` can train: the paper's kinds, and the two that read only the prior's
# channels (scorer.heads.PriorResidual, ChannelsLinear).
RESIDUAL_HEAD = "prior-residual"
CHANNEL_HEADS = (RESIDUAL_HEAD, "channels-linear")
TRAIN_HEADS = (*HEAD_KINDS, *CHANNEL_HEADS)
DEFAULT_HEAD = "fc-maxpool-2"


def ensure_channels(settings: Settings, engine: Engine, shas: Sequence[str], *, pool: str | None,
                    encoder_id: str, sampling: str, device: str, progress: bool,
                    text_model: TextModel | None) -> str | None:
    """The prior's channel set the head will read (scorer.channels), or None when none of
    `shas` has channels. GIFs without them are scored with the prior first when a text model
    is given (the bot's intent model, from the CLI): without it the word channel would be
    empty, and re-scoring would overwrite the words a `moodgif score` already stored."""
    from scorer.channels import CHANNELS_ID, any_channels
    from scorer.features import has_features

    missing = [s for s in shas if not has_features(settings, s, CHANNELS_ID, sampling)]
    if missing and text_model is not None:
        from scorer.pipeline import score_pool

        log.info("%d GIFs have no prior channels: scoring them with the prior", len(missing))
        score_pool(settings.override(scoring__sampling=sampling), engine, pool=pool,
                   encoder_id=encoder_id, device=device, progress=progress,
                   text_model=text_model, prior=True)
    return CHANNELS_ID if any_channels(settings, shas, sampling) else None


def _train_heads(splits: Splits, head: str | None, channels: str | None, *, search_trials: int,
                 epochs: int, seed: int, device: str,
                 on_epoch: Callable[[int, float, float], None] | None,
                 on_trial: Callable[[int, dict], None] | None) -> tuple[HeadFit, list[dict], dict]:
    """One head of kind `head`; with no kind asked for, the default head and, when the
    channels are there, a `prior-residual` head too (as the retrain does): the one with
    the lower dev loss is kept. Returns (fit kept, every search trial, {kind: best dev loss})."""
    kinds = [head] if head else [DEFAULT_HEAD, *([RESIDUAL_HEAD] if channels else [])]
    fits: dict[str, tuple[HeadFit, list[dict]]] = {}
    for kind in kinds:
        if search_trials > 0 and kind not in CHANNEL_HEADS:
            res = search(splits.train, splits.dev, kind, search_trials, seed=seed, epochs=epochs,
                         device=device, on_trial=on_trial)
            fits[kind] = (res.best, res.trials)
            continue
        extra = {}
        if kind == RESIDUAL_HEAD:
            from training.retrain import RESIDUAL_CONFIG

            extra = RESIDUAL_CONFIG
        cfg = HeadConfig(kind=kind, epochs=epochs, seed=seed, **extra)
        fits[kind] = (train_head(splits.train, splits.dev, cfg, device=device, on_epoch=on_epoch), [])
    tried = {k: f.best_dev_loss for k, (f, _) in fits.items()}
    best = min(fits, key=lambda k: tried[k])
    return fits[best][0], [t for _, trials in fits.values() for t in trials], tried


def _check_head_kind(head: str | None) -> None:
    """Checked before the ledger is fitted, so a mistyped kind costs no BT fit and stores none."""
    if head is not None and head not in TRAIN_HEADS:
        raise WorkflowError(f"unknown head {head!r}; expected one of {', '.join(TRAIN_HEADS)}")


def _channels_for_head(settings: Settings, engine: Engine, shas: Sequence[str], head: str | None,
                       *, wanted: bool, pool: str | None, encoder_id: str, sampling: str,
                       device: str, progress: bool, text_model: TextModel | None) -> str | None:
    """The channel set the head will read (None: frames alone). The prior may score the
    GIFs first, so a channels-only head is refused only after that had its chance."""
    channels_id = None
    if wanted:
        channels_id = ensure_channels(settings, engine, shas, pool=pool, encoder_id=encoder_id,
                                      sampling=sampling, device=device, progress=progress,
                                      text_model=text_model)
    if head in CHANNEL_HEADS and channels_id is None:
        raise WorkflowError(f"a {head} head reads the zero-shot prior's channels, and none are "
                            "stored: run `moodgif score` (it writes them) first")
    return channels_id


def _rmse_metrics(module: nn.Module, splits: Splits) -> dict[str, float]:
    """RMSE on each split, and a mean-only baseline's on test: the bar any head must clear."""
    metrics = {}
    for part in ("train", "dev", "test"):
        data = getattr(splits, part)
        metrics[f"{part}_rmse"] = rmse(predict(module, data), data.targets, data.weights)
    mean = fit_baseline("mean", splits.train)
    metrics["test_rmse_mean_only"] = rmse(predict(mean, splits.test), splits.test.targets,
                                          splits.test.weights)
    return metrics


@dataclass(frozen=True)
class _HeadRecord:
    """What the head file's meta and the version row both say about a trained head: scoring
    must feed it the inputs it was trained on (encoder, sampling, channels)."""

    config: HeadConfig
    in_dim: int
    set_name: str
    encoder_id: str
    sampling: str
    channels: str | None
    stamp: str

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def version_name(self) -> str:
        return f"train-{self.stamp}"

    @property
    def file_name(self) -> str:
        return f"{self.version_name}-{self.kind}-{self.set_name}.pt"


def _save_head_file(settings: Settings, module: nn.Module, record: _HeadRecord) -> None:
    from scorer.heads import head_meta, save_head

    save_head(settings.models_dir / record.file_name, module, head_meta(
        kind=record.kind, in_dim=record.in_dim, cfg=record.config.head_kwargs(),
        encoder_id=record.encoder_id, sampling=record.sampling, channels=record.channels))


def _create_version(engine: Engine, record: _HeadRecord, fit: BTFitOutput, metrics: dict) -> int:
    """The saved head as a candidate version, a child of the active one; returns its id."""
    active = active_version(engine)
    with session_scope(engine) as s:
        mv_id = create_candidate(
            s, name=record.version_name, encoder_id=record.encoder_id, sampling=record.sampling,
            head_kind=record.kind, path=record.file_name, parent_id=active.id if active else None,
            config={"head": record.config.to_dict(), "scale_params": fit.scale_params,
                    "bt_fit_id": fit.fit_id, "in_dim": record.in_dim, "set": record.set_name,
                    "targets": "bt-robust", "channels": record.channels,
                    # The pools whose votes trained it: the only ones it may rank.
                    "pools": pools_with_votes(engine) or None},
            metrics=metrics).id
    return mv_id


def reactivate_version(settings: Settings, engine: Engine, mv_id: int) -> tuple[int, int | None]:
    """Make an earlier version the one that ranks again (a rollback): its head predicts the
    GIFs pooled since, the ledger is fitted again with it as the prior (a fit is on its
    prior's scale), then both become active in one transaction. Returns (predictions
    written, the new fit's id, None when nothing has been compared yet).

    Under the retrain's lock: a run ending meanwhile prunes the versions past the newest
    MOODGIF_KEEP_VERSIONS (training/prune.py), and would delete this one's predictions and
    head file while they are read and written here, leaving an active version without them."""
    from training.locks import RETRAIN_LOCK, LockBusy, job_lock

    try:
        with job_lock(engine, RETRAIN_LOCK):
            return _reactivate(settings, engine, mv_id)
    except LockBusy as exc:
        raise WorkflowError(f"a retrain is {exc}: activate a version when it has finished") from None


def _reactivate(settings: Settings, engine: Engine, mv_id: int) -> tuple[int, int | None]:
    from scorer.pipeline import write_predictions
    from scorer.versions import PRIOR_HEAD_KIND, head_path

    with session_scope(engine) as s:
        mv = s.get(ModelVersion, mv_id)
        if mv is None:
            raise WorkflowError(f"model version {mv_id} does not exist (`moodgif model list` shows them)")
        if mv.status == "active":
            raise WorkflowError(f"model version {mv_id} is the active one already")
        if mv.status == "failed":
            raise WorkflowError(f"model version {mv_id} is a failed run's: it was never finished")
        if mv.status == "pruned":
            raise WorkflowError(f"model version {mv_id} was pruned (its head file and predictions "
                                "are gone: MOODGIF_KEEP_VERSIONS, `moodgif db prune`); "
                                "`moodgif model list` shows the versions kept")
        s.expunge(mv)
    written = 0
    if mv.head_kind != PRIOR_HEAD_KIND:
        try:
            head_path(settings, mv)
        except Exception as exc:
            raise WorkflowError(str(exc)) from None
        written = write_predictions(settings, engine, mv_id, sorted(pooled_gifs(engine)))
    try:
        fit, _, _ = ledger_fit(settings, engine, store=True, judgements=True, prior=mv)
        fit_id: int | None = fit.fit_id
    except WorkflowError:  # nothing compared yet: the version alone
        fit_id = None
    activate_version(engine, mv_id, fit_id)
    return written, fit_id


def _activate_with_predictions(settings: Settings, engine: Engine, mv_id: int,
                               fit_id: int | None) -> None:
    """Predictions first, so the version already has scores for the pooled GIFs when it
    becomes the one that ranks them."""
    from scorer.pipeline import write_predictions

    write_predictions(settings, engine, mv_id, sorted(pooled_gifs(engine)))
    activate_version(engine, mv_id, fit_id)


def train_version(settings: Settings, engine: Engine, *, pool: str | None = None,
                  head: str | None = None, search_trials: int = 0,
                  set_name: str = "sparse-small", epochs: int = 100, activate: bool = False,
                  device: str = "auto", progress: bool = False, channels: bool = True,
                  text_model: TextModel | None = None,
                  on_epoch: Callable[[int, float, float], None] | None = None,
                  on_trial: Callable[[int, dict], None] | None = None) -> TrainReport:
    """Fit the ledger, train one head (or search), store it as a model version.

    With `channels` (the default) the head reads the zero-shot prior's channels beside the
    frames, as the retrain's heads do (`scorer.channels`): GIFs without stored channels are
    scored with the prior first when `text_model` is given; with none stored anywhere the
    head reads frames alone. `head=None` trains `fc-maxpool-2` and, with channels, also a
    `prior-residual` head, keeping the lower dev loss."""
    _check_head_kind(head)
    ts = training_set(set_name)
    fit, _, _ = ledger_fit(settings, engine, pool=pool, store=True, judgements=True)
    targets, weights = targets_from(fit, "product")
    encoder_id = settings.scoring.encoder
    channels_id = _channels_for_head(settings, engine, list(targets), head, wanted=channels,
                                     pool=pool, encoder_id=encoder_id, sampling=ts.sampling,
                                     device=device, progress=progress, text_model=text_model)
    splits = _splits_for(settings, engine, targets, weights, pool=pool, set_name=set_name,
                         device=device, progress=progress, channels=channels_id)
    result, trials, tried = _train_heads(splits, head, channels_id, search_trials=search_trials,
                                         epochs=epochs, seed=settings.training.seed,
                                         device=device, on_epoch=on_epoch, on_trial=on_trial)
    module = result.module.cpu()
    # The report says what the stored row says: the same dict, non-finite figures left out.
    metrics = finite_metrics({"set": set_name, **result.summary(), "channels": channels_id,
                              "tried": tried, **_rmse_metrics(module, splits)})
    record = _HeadRecord(config=result.config, in_dim=splits.train.dim, set_name=set_name,
                         encoder_id=encoder_id, sampling=ts.sampling, channels=channels_id,
                         stamp=utcnow().strftime("%Y%m%d-%H%M%S"))
    _save_head_file(settings, module, record)
    mv_id = _create_version(engine, record, fit, metrics)
    if activate:
        _activate_with_predictions(settings, engine, mv_id, fit.fit_id)
    return TrainReport(mv_id, record.kind, splits.summary(), metrics, activate, trials)


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
