"""What the scoring process writes per GIF, on real databases: the gif rows of a chunk in one
query, the feature files on the writer's threads, a row only once its file is on disk, a
failed write as a clear stop, and the writer drained and shut down on every way out."""

from __future__ import annotations

import tempfile
import threading
import time

import pytest
from sqlalchemy import event, select
from test_pipeline import add_pool, make_gif

import scorer.pipeline as pipeline
from scorer.features import feature_path, has_features
from scorer.pipeline import ScoreError, score_pool
from scorer.store import Gif, session_scope

ENC = "nsfw-resnet50thin"  # its NSFW output gives every scored GIF a probability to look for
WRITER = "moodgif-features"  # the writer threads' name prefix


def _rows(engine) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return {g.sha256: (g.nsfw_prob, g.rating, g.rating_source, g.score_error)
                for g in s.scalars(select(Gif))}


def _gif_selects(engine) -> list[str]:  # type: ignore[no-untyped-def]
    """SELECTs on the gifs table from now on, appended as they run."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM gifs" in statement:
            seen.append(statement)

    return seen


def test_a_chunk_of_gif_rows_is_read_with_one_query_and_updated_as_before(settings, engine) -> None:
    shas = add_pool(settings, engine, "p", [(make_gif(i, 2), 2) for i in range(5)],
                    ratings={1: "pg"})
    with session_scope(engine) as s:
        s.get(Gif, shas[0]).score_error = "an earlier transient failure"
        s.get(Gif, shas[3]).score_error = "an earlier transient failure"
        s.get(Gif, shas[4]).rating, s.get(Gif, shas[4]).rating_source = "r", "nsfw-model"
    updates = [(shas[0], 0.9, None),          # unrated: the model rates it, the error goes
               (shas[1], 0.5, None),          # a manifest's rating stays
               (shas[2], None, "x" * 3000),   # an error, cut to 2,000 characters
               (shas[3], None, None),         # no probability: only the error is cleared
               ("f" * 64, 0.99, None),        # no such row: skipped, nothing created
               (shas[4], 0.05, None)]         # the model's own earlier rating is redone
    selects = _gif_selects(engine)
    pipeline._write_gif_updates(engine, settings, updates)
    assert len(selects) == 1  # one query for the chunk, not a get per GIF
    rows = _rows(engine)
    assert rows[shas[0]] == (pytest.approx(0.9), "r", "nsfw-model", None)
    assert rows[shas[1]] == (pytest.approx(0.5), "pg", "manifest", None)
    assert rows[shas[2]] == (None, None, None, "x" * 2000)
    assert rows[shas[3]] == (None, None, None, None)
    assert rows[shas[4]] == (pytest.approx(0.05), "g", "nsfw-model", None)
    assert "f" * 64 not in rows and len(rows) == 5


def _refused_file(monkeypatch, sha: str) -> None:  # type: ignore[no-untyped-def]
    """The features folder refuses `sha`'s file, as a read-only folder does (this runs as
    root, to whom a chmod refuses nothing): its temporary file cannot be made."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("prefix", "").startswith(f".{sha[:12]}."):
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_failed_feature_write_stops_the_run_and_nothing_is_scored_without_its_file(
        sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, engine = sqlite_settings, sqlite_engine
    shas = add_pool(settings, engine, "p", [(make_gif(i, 3), 3) for i in range(6)])
    monkeypatch.setattr(pipeline, "DB_CHUNK", 2)  # rows recorded while the run goes on
    _refused_file(monkeypatch, shas[2])
    with pytest.raises(ScoreError, match=f"cannot write the features of gif {shas[2]}: "
                                         "PermissionError: .*Permission denied"):
        score_pool(settings, engine, pool="p", encoder_id=ENC, device="cpu", workers=0)
    rows = _rows(engine)
    assert rows[shas[2]] == (None, None, None, None) and not has_features(settings, shas[2], ENC, "sparse")
    for sha in shas[:2]:  # written before the failure: recorded
        assert rows[sha][0] is not None and has_features(settings, sha, ENC, "sparse")
    for sha in shas:  # a probability in the database only with its file on disk
        assert (rows[sha][0] is not None) == has_features(settings, sha, ENC, "sparse")
    assert not list(settings.features_dir.rglob("*.tmp"))
    monkeypatch.undo()
    again = score_pool(settings, engine, pool="p", encoder_id=ENC, device="cpu", workers=0)
    assert again.encoded == 1 and again.cached == 5 and again.failed == []
    assert all(r[0] is not None for r in _rows(engine).values())


def _slow_writes(monkeypatch, seconds: float) -> list[str]:  # type: ignore[no-untyped-def]
    """Each feature file takes `seconds` longer (a slow disk); the writing threads' names."""
    real, threads = pipeline.save_features, []

    def save(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "save_features", save)
    return threads


def test_files_are_written_off_the_main_thread_and_each_row_waits_for_its_file(
        sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, engine = sqlite_settings, sqlite_engine
    shas = add_pool(settings, engine, "p", [(make_gif(i, 3), 3) for i in range(7)])
    monkeypatch.setattr(pipeline, "DB_CHUNK", 2)
    # The motion encoder takes milliseconds a GIF: rows come due long before their files.
    threads = _slow_writes(monkeypatch, 0.2)
    real_updates, early = pipeline._write_gif_updates, []

    def updates(engine_, settings_, rows):  # type: ignore[no-untyped-def]
        early.extend(sha for sha, _, error in rows
                     if error is None and not feature_path(settings, sha, "motion", "sparse").is_file())
        return real_updates(engine_, settings_, rows)

    monkeypatch.setattr(pipeline, "_write_gif_updates", updates)
    report = score_pool(settings, engine, pool="p", encoder_id="motion", workers=0)
    assert report.encoded == 7 and early == []
    assert len(threads) == 7 and all(name.startswith(WRITER) for name in threads)
    assert all(has_features(settings, sha, "motion", "sparse") for sha in shas)


def _interrupted_after(monkeypatch, count: int) -> None:  # type: ignore[no-untyped-def]
    """The encoder's stream gives `count` GIFs, then the run gets a Ctrl-C."""
    real = pipeline.encode_stream

    def stream(*args, **kwargs):  # type: ignore[no-untyped-def]
        for i, item in enumerate(real(*args, **kwargs)):
            if i == count:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(pipeline, "encode_stream", stream)


def test_after_a_ctrl_c_the_writer_is_drained_shut_down_and_its_files_recorded(
        sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings, engine = sqlite_settings, sqlite_engine
    shas = add_pool(settings, engine, "p", [(make_gif(i, 3), 3) for i in range(5)])
    threads = _slow_writes(monkeypatch, 0.2)  # still writing when the Ctrl-C comes
    _interrupted_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        score_pool(settings, engine, pool="p", encoder_id=ENC, device="cpu", workers=0)
    assert threads and all(name.startswith(WRITER) for name in threads)
    assert not [t for t in threading.enumerate() if t.name.startswith(WRITER)]
    rows = _rows(engine)
    for sha in shas[:3]:
        assert rows[sha][0] is not None and has_features(settings, sha, ENC, "sparse")
    for sha in shas[3:]:
        assert rows[sha][0] is None and not has_features(settings, sha, ENC, "sparse")
