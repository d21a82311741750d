"""Drop what old retrains left behind, so a home and its database stop growing with every run.

Every retrain run with new votes stores a Bradley-Terry fit (a `bt_scores` row per compared
GIF) and, when it trains a head, a model version with a prediction per pooled GIF and a head
file under `models/`, kept even when the version is rejected. Nothing reads them again but a
rollback (`moodgif model activate`), so at 100k GIFs each daily run added ~40 MB of fit and
~25 MB of predictions for good (docs/deploy.md, Sizing). Here the newest `keep` of each stay
as they are; older ones lose their bulk:

- a fit that is not active and not among the newest `keep`: its `bt_scores` rows (the
  `bt_fits` row stays: the retrain history names it). Only the active fit is ever read back.
- a trained head that is not active, not a run's candidate in progress, and not among the
  newest `keep` trained heads: its predictions and its head file; its status becomes
  "pruned", so `model activate` refuses it in words (a failed run's version the same way; the
  run's row keeps why it failed). A rollback to a kept version writes its predictions again
  from its head file (`training.workflow.reactivate_version`).
- `retrain-*.pt` files in `models/` that no version names (a run killed between writing its
  head and recording it).

Zero-shot prior versions are left alone: they have no head file to recompute them from, and
the newest one ranks every GIF a head does not. Comparisons, posts and sessions are the
ledger and are never pruned here. Runs under the retrain lock, so no run is half-saved
meanwhile: `prune` raises LockBusy while a retrain runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.settings import Settings
from scorer.store import BTFit, BTScore, ModelVersion, Prediction, session_scope
from training.locks import RETRAIN_LOCK, job_lock

PRUNED = "pruned"
# Statuses a version can be pruned from: never "active", never "candidate" (a run in progress,
# or one `cleanup_interrupted` has not marked failed yet).
_SETTLED = ("retired", "rejected", "failed")


@dataclass
class PruneReport:
    fits: list[int] = field(default_factory=list)  # fits whose scores went
    fit_rows: int = 0
    versions: list[int] = field(default_factory=list)  # versions pruned
    predictions: int = 0
    files: list[str] = field(default_factory=list)  # head files removed (paths under models/)

    @property
    def empty(self) -> bool:
        return not (self.fits or self.versions or self.files)

    def summary(self) -> str:
        if self.empty:
            return "nothing to prune"
        return (f"{len(self.fits)} old Bradley-Terry fits ({self.fit_rows} score rows), "
                f"{len(self.versions)} old model versions ({self.predictions} predictions), "
                f"{len(self.files)} head files")


def prune(settings: Settings, engine: Engine, keep: int, *, dry_run: bool = False,
          locked: bool = False) -> PruneReport:
    """Prune all but the newest `keep` (>= 1) fits and trained heads; see the module doc.
    `locked`: the caller holds the retrain lock already (the retrain itself)."""
    if keep < 1:
        raise ValueError("keep at least one fit and one model version")
    if locked:
        return _prune(settings, engine, keep, dry_run)
    with job_lock(engine, RETRAIN_LOCK):  # a prune never meets a run half-saved
        return _prune(settings, engine, keep, dry_run)


def _prune(settings: Settings, engine: Engine, keep: int, dry_run: bool) -> PruneReport:
    report = PruneReport()
    with session_scope(engine) as s:
        _old_fits(s, keep, report, dry_run)
        doomed = _old_versions(s, keep)
        for mv in doomed:
            report.versions.append(mv.id)
            report.predictions += s.scalar(select(func.count()).select_from(Prediction)
                                           .where(Prediction.model_version_id == mv.id)) or 0
            head = _own_file(settings, mv.path)
            if head is not None:
                report.files.append(mv.path)
        paths = [mv.path for mv in doomed]
        if not dry_run and doomed:
            ids = [mv.id for mv in doomed]
            s.execute(delete(Prediction).where(Prediction.model_version_id.in_(ids)))
            s.execute(update(ModelVersion).where(ModelVersion.id.in_(ids)).values(status=PRUNED))
        named = set(s.scalars(select(ModelVersion.path)))
    # Files go after the rows commit: a crash between leaves a file no row wants, which the
    # next prune finds below, never a row whose file is gone while it still claims one.
    orphans = _orphan_files(settings, named)
    report.files += orphans
    if not dry_run:
        for rel in [p for p in paths if _own_file(settings, p) is not None] + orphans:
            _own_file(settings, rel).unlink(missing_ok=True)  # type: ignore[union-attr]
    return report


def _old_fits(s, keep: int, report: PruneReport, dry_run: bool) -> None:  # type: ignore[no-untyped-def]
    """The scores of fits neither active nor among the newest `keep` (and that still have any)."""
    active = versions.active_fit(s)
    newest = list(s.scalars(select(BTFit.id).order_by(BTFit.id.desc()).limit(keep)))
    spare = {*newest, *([active.id] if active is not None else [])}
    rows = s.execute(select(BTScore.fit_id, func.count()).where(BTScore.fit_id.not_in(spare))
                     .group_by(BTScore.fit_id).order_by(BTScore.fit_id)).all()
    report.fits = [fit_id for fit_id, _ in rows]
    report.fit_rows = sum(n for _, n in rows)
    if report.fits and not dry_run:
        s.execute(delete(BTScore).where(BTScore.fit_id.in_(report.fits)))


def _old_versions(s, keep: int) -> list[ModelVersion]:  # type: ignore[no-untyped-def]
    """Settled trained heads past the newest `keep` (by id)."""
    heads = s.scalars(select(ModelVersion).where(ModelVersion.head_kind != versions.PRIOR_HEAD_KIND)
                      .order_by(ModelVersion.id.desc()))
    return [mv for rank, mv in enumerate(heads) if mv.status in _SETTLED and rank >= keep]


def _own_file(settings: Settings, rel: str) -> Path | None:
    """A version's head file when it lies in this home's models folder (a head kept elsewhere,
    by an absolute path, is the operator's own and never removed)."""
    if not rel:
        return None
    p = versions.head_file(settings, rel)
    models = settings.models_dir.resolve()
    return p if p.is_file() and p.resolve().parent == models else None


def _orphan_files(settings: Settings, named: set[str]) -> list[str]:
    """`retrain-*.pt` files in models/ that no version row names."""
    if not settings.models_dir.is_dir():
        return []
    return sorted(p.name for p in settings.models_dir.glob("retrain-*.pt")
                  if p.name not in named and p.is_file())
