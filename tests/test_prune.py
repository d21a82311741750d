"""Old retrains' leftovers are pruned (training/prune.py): the retrain keeps the newest
MOODGIF_KEEP_VERSIONS fits and trained versions whole, `moodgif db prune` does it by hand.

Found by running `moodgif serve` beside `moodgif retrain --schedule` with traffic: every run
with new votes added a Bradley-Terry fit's scores, and every trained candidate (rejected ones
too) its predictions and head file, for good; nothing in the product or the docs removed them.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from scorer.store import (
    BTFit,
    BTScore,
    Gif,
    ModelVersion,
    Pool,
    PoolGif,
    Prediction,
    pack_scores,
    session_scope,
)
from training.locks import LockBusy, job_lock
from training.prune import prune
from training.workflow import WorkflowError, reactivate_version

SHAS = [f"{i:064x}" for i in range(1, 6)]
ROW = pack_scores(np.full(17, 0.5, np.float32))


def _gifs(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        pool = Pool(name="p")
        s.add(pool)
        s.flush()
        for sha in SHAS:
            s.add(Gif(sha256=sha, bytes=1, width=1, height=1, n_frames=1))
            s.flush()
            s.add(PoolGif(pool_id=pool.id, gif_sha=sha, source_ref=""))


def _fit(engine, active: bool = False) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        fit = BTFit(active=active)
        s.add(fit)
        s.flush()
        s.add_all(BTScore(fit_id=fit.id, gif_sha=sha, theta=ROW, se=ROW, scaled=ROW) for sha in SHAS)
        return fit.id


def _version(settings, engine, status: str, kind: str = "fc-maxpool-2", path: str | None = None) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        mv = ModelVersion(name="v", encoder_id="e", head_kind=kind, status=status, config={}, metrics={})
        s.add(mv)
        s.flush()
        if kind != "prior" and path is None:
            path = f"retrain-{mv.id}-fc-maxpool-2.pt"
        mv.path = path or ""
        s.add_all(Prediction(model_version_id=mv.id, gif_sha=sha, scores=ROW) for sha in SHAS)
        mv_id = mv.id
    if path and not path.startswith("/"):
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        (settings.models_dir / path).write_bytes(b"head")
    return mv_id


def _scored_fits(engine) -> set[int]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return set(s.scalars(select(BTScore.fit_id).distinct()))


def _state(engine) -> dict[int, tuple[str, int]]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        counts = dict(s.execute(select(Prediction.model_version_id, func.count())
                                .group_by(Prediction.model_version_id)).all())
        return {mv.id: (mv.status, counts.get(mv.id, 0)) for mv in s.scalars(select(ModelVersion))}


def test_prune_keeps_the_newest_the_active_and_the_prior(settings, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _gifs(engine)
    fits = [_fit(engine, active=(i == 1)) for i in range(5)]  # the active fit is an old one
    prior = _version(settings, engine, "retired", kind="prior")
    old_retired = _version(settings, engine, "retired")
    old_rejected = _version(settings, engine, "rejected")
    elsewhere = tmp_path / "my-head.pt"  # an operator's head kept outside the home
    elsewhere.write_bytes(b"mine")
    outside = _version(settings, engine, "rejected", path=str(elsewhere))
    in_progress = _version(settings, engine, "candidate")  # a run's, not settled yet
    active = _version(settings, engine, "active")
    newest_rejected = _version(settings, engine, "rejected")
    failed = _version(settings, engine, "failed")
    (settings.models_dir / "retrain-77-fc-maxpool-2.pt").write_bytes(b"orphan")  # killed mid-save
    (settings.models_dir / "gifgif-head.pt").write_bytes(b"not a retrain's")
    before = _state(engine)

    dry = prune(settings, engine, 2, dry_run=True)
    assert _state(engine) == before and _scored_fits(engine) == set(fits)
    assert (settings.models_dir / "retrain-77-fc-maxpool-2.pt").is_file()

    report = prune(settings, engine, 2)
    assert (report.fits, report.versions) == (dry.fits, dry.versions)
    # fits: the active one and the newest two keep their scores; the rows all stay
    assert _scored_fits(engine) == {fits[1], fits[3], fits[4]}
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(BTFit)) == 5
    after = _state(engine)
    # the newest two trained heads stay whole, the active one and a run in progress too
    for mv in (active, newest_rejected, failed, in_progress):  # a failed one says so a while
        assert after[mv] == before[mv]
    assert after[prior] == ("retired", len(SHAS))  # a prior has no head to recompute it from
    for mv in (old_retired, old_rejected, outside):
        assert after[mv] == ("pruned", 0)
    assert sorted(p.name for p in settings.models_dir.iterdir()) == sorted([
        "gifgif-head.pt", f"retrain-{active}-fc-maxpool-2.pt", f"retrain-{in_progress}-fc-maxpool-2.pt",
        f"retrain-{newest_rejected}-fc-maxpool-2.pt", f"retrain-{failed}-fc-maxpool-2.pt"])
    assert elsewhere.read_bytes() == b"mine"
    assert prune(settings, engine, 2).empty  # nothing left to do
    with pytest.raises(WorkflowError, match="pruned"):  # a rollback says why, in words
        reactivate_version(settings, engine, old_rejected)


def test_prune_waits_for_no_retrain(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    _gifs(sqlite_engine)
    _fit(sqlite_engine)
    with job_lock(sqlite_engine, "retrain"), pytest.raises(LockBusy):
        prune(sqlite_settings, sqlite_engine, 1)


def test_the_retrain_prunes_after_each_run(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from test_retrain import make_pool, simulate_votes

    from training.retrain import run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    truth = make_pool(settings, engine)
    settings.training.keep_versions = 1
    outcomes = []
    for seed in range(3):
        simulate_votes(engine, truth, 800, seed=seed)
        outcomes.append(run_retrain(settings, engine, epochs=5))
    assert all(o.status in ("activated", "kept", "rejected") for o in outcomes), outcomes
    assert _scored_fits(engine) == {outcomes[-1].bt_fit_id}  # three fits made, one kept whole
    heads = _state(engine)
    settled = [mv for mv, (status, _) in heads.items() if status in ("retired", "rejected")]
    assert len(settled) <= 1, heads  # older settled heads went
    assert len(list(settings.models_dir.glob("retrain-*.pt"))) <= 2


def test_db_prune_command(sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import cli

    _gifs(sqlite_engine)
    for _ in range(4):
        _fit(sqlite_engine)
    monkeypatch.setenv("MOODGIF_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("MOODGIF_DATABASE_URL", sqlite_settings.db_url)
    run = CliRunner().invoke(cli, ["db", "prune", "--keep", "1", "--dry-run"])
    assert run.exit_code == 0 and run.output.startswith("would drop: 3 old Bradley-Terry fits"), run.output
    assert len(_scored_fits(sqlite_engine)) == 4
    run = CliRunner().invoke(cli, ["db", "prune", "--keep", "1"])
    assert run.exit_code == 0 and run.output.startswith("dropped: 3 old Bradley-Terry fits"), run.output
    assert len(_scored_fits(sqlite_engine)) == 1
    monkeypatch.setenv("MOODGIF_KEEP_VERSIONS", "0")
    run = CliRunner().invoke(cli, ["db", "prune"])
    assert run.exit_code == 2 and "--keep N" in run.output, run.output


def test_a_rollback_waits_for_no_retrain(settings, engine) -> None:  # type: ignore[no-untyped-def]
    """`moodgif model activate` while a retrain ends: the run's prune could drop the very
    version being reactivated (its predictions and head file) half way, leaving it active
    with neither. A rollback takes the retrain's lock, and says so when a run holds it."""
    _gifs(engine)
    kept = _version(settings, engine, "retired")
    _version(settings, engine, "active")
    before = _state(engine)
    with job_lock(engine, "retrain"), pytest.raises(WorkflowError, match=r"a retrain is .*has finished"):
        reactivate_version(settings, engine, kept)
    assert _state(engine) == before
