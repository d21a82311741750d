"""The word channel computed beside the encoding gives the prior the same scores as after it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from _h1_gifs import good_gif
from sqlalchemy import select

from bot.intent import IntentParser
from scorer.migrate import init_db
from scorer.prior import prior_version, write_prior
from scorer.settings import Settings
from scorer.store import Prediction, session_scope, unpack_scores
from scorer.words_ahead import WordsAhead

LEXICON = IntentParser(use_embeddings=False).distribution


def _pool(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    from scorer.pool import ingest, pool_gifs

    folder = tmp_path / "team"
    folder.mkdir()
    names = ["so-happy-yay.gif", "crying-sad.gif", "3f9a2c1b7d8e4f60.gif", "ugh-mondays.gif",
             "so-happy-yay-again.gif", "boom-explodes.gif"]
    for i, name in enumerate(names):
        (folder / name).write_bytes(good_gif(i + 1, size=48, n=3))
    engine = init_db(settings.db_url)
    ingest(settings, engine, "team", folder)
    return engine, pool_gifs(engine, "team")


def _prior(engine, mv_id: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return {p.gif_sha: (unpack_scores(p.scores), unpack_scores(p.sd))
                for p in s.scalars(select(Prediction).where(Prediction.model_version_id == mv_id))}


def test_the_prior_is_the_same_with_the_words_computed_ahead(sqlite_settings: Settings,
                                                             tmp_path: Path) -> None:
    engine, shas = _pool(sqlite_settings, tmp_path)
    mv_id = prior_version(engine, "motion", "sparse", with_faces=False)
    calls: list[tuple[str, str]] = []

    def counted(text: str):  # type: ignore[no-untyped-def]
        calls.append((threading.current_thread().name, text))
        return LEXICON(text)

    write_prior(engine, mv_id, shas, lambda _sha: None, LEXICON, with_faces=False)
    serial = _prior(engine, mv_id)
    ahead = WordsAhead(engine, shas, counted)
    write_prior(engine, mv_id, shas, lambda _sha: None, ahead.model(), with_faces=False)
    assert _prior(engine, mv_id).keys() == serial.keys() and len(serial) == len(shas)
    for sha, (mean, sd) in _prior(engine, mv_id).items():
        np.testing.assert_array_equal(mean, serial[sha][0])
        np.testing.assert_array_equal(sd, serial[sha][1])
    # every distinct non-empty text once, all in the thread; the hash name has no words
    texts = [t for _, t in calls]
    assert len(texts) == len(set(texts)) == len(shas) - 1
    assert {name for name, _ in calls} == {"words-ahead"}


def test_a_failing_text_model_fails_the_same_way(sqlite_settings: Settings, tmp_path: Path) -> None:
    engine, shas = _pool(sqlite_settings, tmp_path)

    def broken(text: str):  # type: ignore[no-untyped-def]
        if "sad" in text:
            raise RuntimeError("model bug")
        return LEXICON(text)

    model = WordsAhead(engine, shas, broken).model()
    try:
        model("crying sad")
    except RuntimeError as exc:
        assert str(exc) == "model bug"
    else:
        raise AssertionError("the stored error was not raised")
    assert model("so happy yay") == LEXICON("so happy yay")
    assert model("never seen before") == LEXICON("never seen before")  # not ahead: asked now
