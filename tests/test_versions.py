"""scorer/versions.py: the one rule for "which model version / BT fit is active", on
SQLite and PostgreSQL, and the one head-file lookup."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.score_matrix import load_matrix, version_stamp
from scorer import versions
from scorer.store import BTFit, ModelVersion, session_scope

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def _mv(s, name: str, *, status: str = "candidate", activated_at: dt.datetime | None = None,  # type: ignore[no-untyped-def]
        head_kind: str = "fc-1", path: str = "") -> int:
    mv = ModelVersion(name=name, encoder_id="e", sampling="sparse", head_kind=head_kind,
                      path=path, status=status, activated_at=activated_at, config={}, metrics={})
    s.add(mv)
    s.flush()
    return mv.id


def test_tie_break_is_newest_activation_then_highest_id(engine) -> None:  # type: ignore[no-untyped-def]
    # Two rows marked active (what a race would leave): every reader must agree on one.
    with session_scope(engine) as s:
        newer = _mv(s, "newer-activation", status="active", activated_at=T0 + dt.timedelta(hours=1))
        _mv(s, "higher-id-older-activation", status="active", activated_at=T0)
        _mv(s, "no-timestamp", status="active", activated_at=None)  # sorts last, not first
    assert versions.active_version_id(engine) == newer
    assert versions.active_version(engine).id == newer  # type: ignore[union-attr]
    with engine.connect() as conn:  # the ranker reads on a Core connection
        assert versions.active_version_id(conn) == newer
    assert load_matrix(engine).model_version_id == newer
    assert version_stamp(engine)[0] == newer
    assert versions.active_ids(engine)[0] == newer and len(versions.active_ids(engine)) == 3

    with session_scope(engine) as s:  # same timestamp: the highest id wins
        tied = _mv(s, "tied", status="active", activated_at=T0 + dt.timedelta(hours=1))
    assert versions.active_version_id(engine) == tied


def test_activate_retires_the_others_and_moves_the_fit(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        old = _mv(s, "old", status="active", activated_at=T0)
        new = _mv(s, "new")
        f1, f2 = BTFit(active=True), BTFit(active=False)
        s.add_all([f1, f2])
        s.flush()
        fit1, fit2 = f1.id, f2.id
    assert versions.active_fit(engine).id == fit1  # type: ignore[union-attr]
    with session_scope(engine) as s:
        versions.activate(s, new, fit2)
    with session_scope(engine) as s:
        assert s.get(ModelVersion, old).status == "retired"  # type: ignore[union-attr]
        mv = s.get(ModelVersion, new)
        assert mv.status == "active" and mv.activated_at is not None  # type: ignore[union-attr]
        assert not s.get(BTFit, fit1).active and s.get(BTFit, fit2).active  # type: ignore[union-attr]
    assert versions.active_ids(engine) == [new]
    with session_scope(engine) as s, pytest.raises(LookupError, match="999"):
        versions.activate(s, 999)


def test_the_zero_shot_prior_is_the_newest_active_or_not(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        a, b = _mv(s, "a", head_kind="prior"), _mv(s, "b", head_kind="prior")
    with session_scope(engine) as s:
        versions.activate(s, a)
    assert versions.active_ids(engine) == [a]
    assert versions.zero_shot_version_id(engine) == b  # the newest prior, active or not
    assert versions.zero_shot_version(engine).id == b  # type: ignore[union-attr]


def test_head_path_looks_in_models_dir_then_home_and_says_when_missing(settings) -> None:  # type: ignore[no-untyped-def]
    mv = ModelVersion(id=7, name="x", encoder_id="e", head_kind="fc-1", path="h.pt")
    with pytest.raises(versions.MissingHead, match=r"model version 7 has no head file at 'h.pt'"):
        versions.head_path(settings, mv)
    (settings.home / "h.pt").write_bytes(b"x")  # an older version stored relative to the home
    assert versions.head_path(settings, mv) == settings.home / "h.pt"
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    (settings.models_dir / "h.pt").write_bytes(b"x")  # models_dir wins
    assert versions.head_path(settings, mv) == settings.models_dir / "h.pt"
    with pytest.raises(versions.MissingHead, match="has no head file"):
        versions.head_path(settings, ModelVersion(id=8, name="p", encoder_id="e",
                                                  head_kind="prior", path=""))


def test_create_candidate_is_inactive_until_activated(engine) -> None:  # type: ignore[no-untyped-def]
    # The one creator: a new version never serves until `activate`, and NaN metrics
    # (a split too small to measure) are dropped rather than written as invalid JSON.
    with session_scope(engine) as s:
        served = _mv(s, "served", status="active", activated_at=T0)
        mv = versions.create_candidate(s, name="new", encoder_id="e", sampling="sparse",
                                       head_kind="fc-1", config={"pools": None},
                                       metrics={"dev_rmse": 0.2, "test_rmse": float("nan")},
                                       parent_id=served)
        new = mv.id
        assert new is not None  # flushed: the caller can use the id in the same transaction
    with session_scope(engine) as s:
        row = s.get(ModelVersion, new)
        assert row.status == "candidate" and row.parent_id == served  # type: ignore[union-attr]
        assert row.metrics == {"dev_rmse": 0.2}  # type: ignore[union-attr]
    assert versions.active_version_id(engine) == served


def test_non_finite_figures_never_break_a_json_column(engine) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL refuses the NaN and Infinity tokens Python writes: an empty dev set's
    # best_dev_loss (inf) or a nested NaN must still store, on both databases.
    inf, nan = float("inf"), float("nan")
    with session_scope(engine) as s:
        new = versions.create_candidate(
            s, name="blind", encoder_id="e", sampling="sparse", head_kind="fc-1",
            config={"train": {"best_dev_loss": inf, "dev_loss@5": nan, "curve": [nan, 0.5]}},
            metrics={"best_dev_loss": inf, "worst": -inf, "test_rmse": nan, "dev_rmse": 0.2}).id
    with session_scope(engine) as s:
        row = s.get(ModelVersion, new)
        assert row.metrics == {"dev_rmse": 0.2}  # type: ignore[union-attr]
        assert row.config == {"train": {"best_dev_loss": None, "dev_loss@5": None,  # type: ignore[union-attr]
                                        "curve": [None, 0.5]}}
    assert versions.finite_metrics({"a": inf, "b": 1, "c": "x"}) == {"b": 1, "c": "x"}


def test_pool_show_names_the_prior_that_scores_the_pool(engine) -> None:  # type: ignore[no-untyped-def]
    """An active prior ranks first (bot.ranking): a newer prior that scored none of these GIFs
    (a `score` run without the face model) once stood in the report with "0 GIFs scored"."""
    from scorer.prior import prior_summary
    from scorer.store import Gif, Prediction, pack_scores

    shas = [f"{i:064x}" for i in range(3)]
    with session_scope(engine) as s:
        a, b = _mv(s, "words+faces", head_kind="prior"), _mv(s, "words", head_kind="prior")
        s.add_all(Gif(sha256=sha, bytes=1, width=1, height=1, n_frames=1) for sha in shas)
        s.flush()
        for sha in shas:
            s.add(Prediction(model_version_id=a, gif_sha=sha, scores=pack_scores([0.5] * 17),
                             sd=pack_scores([0.1] * 17)))
    assert prior_summary(engine, shas)["version_id"] == b  # nothing active: the newest
    with session_scope(engine) as s:
        versions.activate(s, a)
    summary = prior_summary(engine, shas)
    assert (summary["version_id"], summary["scored"], summary["wide"]) == (a, 3, 0)
