"""The store on both real databases: schema via migrations, round trips, constraints."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from scorer.emotions import N_EMOTIONS, NAMES, emotion_index
from scorer.migrate import current_revision, head_revision, init_db
from scorer.store import (
    Comparison,
    Gif,
    ModelVersion,
    Pool,
    PoolGif,
    Prediction,
    pack_scores,
    session_scope,
    unpack_scores,
)


def test_emotions_are_gifgif_order() -> None:
    assert N_EMOTIONS == 17
    assert NAMES[0] == "amusement" and NAMES[-1] == "surprise"
    assert NAMES.index("contempt") == 2 and emotion_index("Happiness") == 9


def test_migrations_reach_head_and_are_idempotent(engine, settings) -> None:
    assert current_revision(engine) == head_revision(engine)
    init_db(settings.db_url)  # second run is a no-op
    assert current_revision(engine) == head_revision(engine)


def _gif(sha: str) -> Gif:
    return Gif(sha256=sha, bytes=10, width=4, height=4, n_frames=3, duration_ms=300)


def test_round_trip_and_constraints(engine) -> None:
    sha = "a" * 64
    with session_scope(engine) as s:
        pool = Pool(name="demo")
        s.add_all([pool, _gif(sha)])
        s.flush()
        s.add(PoolGif(pool_id=pool.id, gif_sha=sha))
        mv = ModelVersion(name="v1", encoder_id="enc", head_kind="fc-maxpool-2")
        s.add(mv)
        s.flush()
        s.add(Prediction(model_version_id=mv.id, gif_sha=sha, scores=pack_scores(np.linspace(0, 1, 17))))
    with session_scope(engine) as s:
        pred = s.scalars(select(Prediction)).one()
        np.testing.assert_allclose(unpack_scores(pred.scores), np.linspace(0, 1, 17), atol=1e-6)
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Pool(name="demo"))
    # one vote per person per post is a database constraint
    with session_scope(engine) as s:
        s.add(Comparison(emotion=9, winner=sha, loser="b" * 64, source="vote", vote_key="p1:u1"))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Comparison(emotion=9, winner="b" * 64, loser=sha, source="vote", vote_key="p1:u1"))
    with session_scope(engine) as s:
        assert len(s.scalars(select(Comparison)).all()) == 1


def test_pack_scores_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        pack_scores(np.zeros(3))
