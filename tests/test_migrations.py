"""Upgrades: a database made by the FIRST migration, with data in it, reaches head intact.

Written to keep working as migrations are added: the rows are inserted with plain SQL
against the first revision's tables (reflected, so any NOT NULL column gets a value), and
are read back after `upgrade(engine, "head")` both with SQL and through today's ORM.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, select, text, types

from scorer.migrate import alembic_config, current_revision, head_revision, upgrade
from scorer.settings import Settings
from scorer.store import (
    Base,
    Comparison,
    Gif,
    Pool,
    PoolGif,
    Prediction,
    dispose_engines,
    make_engine,
    pack_scores,
    session_scope,
    unpack_scores,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, home) -> str:  # type: ignore[no-untyped-def]
    """Empty databases here (the shared fixture's PostgreSQL copy is already at head)."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'moodgif.db'}"
    return request.getfixturevalue("pg_url")


SHA_A, SHA_B = "a" * 64, "b" * 64
NOW = dt.datetime(2024, 5, 1, 12, 0, 0)
SCORES = np.linspace(0.0, 1.0, 17, dtype="<f4")

# Rows as the first revision knows them: table -> list of {column: value} (JSON columns
# take Python values: the reflected column type encodes them).
SEED: dict[str, list[dict]] = {
    "pools": [{"id": 1, "name": "team", "description": "the first pool", "created_at": NOW}],
    "gifs": [
        {"sha256": SHA_A, "bytes": 1234, "format": "gif", "width": 320, "height": 240, "n_frames": 12,
         "duration_ms": 1200, "title": "cat", "tags": ["cat", "happy"], "rating": "g",
         "created_at": NOW},
        {"sha256": SHA_B, "bytes": 99, "format": "gif", "width": 10, "height": 10, "n_frames": 1,
         "duration_ms": 0, "title": "dog", "tags": [], "created_at": NOW},
    ],
    "pool_gifs": [
        {"pool_id": 1, "gif_sha": SHA_A, "source_ref": "cat.gif", "added_at": NOW},
        {"pool_id": 1, "gif_sha": SHA_B, "source_ref": "dog.gif", "added_at": NOW},
    ],
    "model_versions": [
        {"id": 1, "name": "v1", "encoder_id": "enc", "sampling": "sparse", "head_kind": "fc-maxpool-2",
         "config": {}, "path": "models/v1.pt", "metrics": {"rmse": 0.12},
         "status": "active", "created_at": NOW}
    ],
    "predictions": [{"model_version_id": 1, "gif_sha": SHA_A, "scores": pack_scores(SCORES)}],
    "comparisons": [
        {"id": 1, "emotion": 9, "winner": SHA_A, "loser": SHA_B, "tie": False, "weight": 1.0,
         "source": "vote", "who": "h1", "platform": "slack", "workspace": "T1", "channel": "C1",
         "vote_key": "p1:u1", "created_at": NOW}
    ],
    "meta": [{"key": "user_hash_salt", "value": "salt"}],
}


def _filler(col_type: types.TypeEngine) -> object:
    """A value for a NOT NULL column this test does not know (added to 0001 later)."""
    if isinstance(col_type, types.Boolean):
        return False
    if isinstance(col_type, types.Integer | types.Float | types.Numeric):
        return 0
    if isinstance(col_type, types.DateTime):
        return NOW
    if isinstance(col_type, types.JSON):
        return {}
    if isinstance(col_type, types.LargeBinary):
        return b""
    return ""


def _first_revision(engine) -> str:  # type: ignore[no-untyped-def]
    script = ScriptDirectory.from_config(alembic_config(engine))
    (base,) = script.get_bases()
    return base


def _seed_first_revision(engine) -> None:  # type: ignore[no-untyped-def]
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for table, rows in SEED.items():
            t = meta.tables[table]
            for row in rows:
                values = dict(row)
                for col in t.columns:
                    if (col.name not in values and not col.nullable and col.server_default is None
                            and not (col.primary_key and col.autoincrement is True)):
                        values[col.name] = _filler(col.type)
                conn.execute(t.insert().values(**values))
        if engine.dialect.name == "postgresql":
            # explicit ids do not move the sequences; the app would collide without this
            for table in ("pools", "model_versions", "comparisons"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))


def test_first_migration_with_data_upgrades_to_head(settings: Settings) -> None:
    engine = make_engine(settings.db_url)
    first = _first_revision(engine)
    upgrade(engine, first)
    assert current_revision(engine) == first
    _seed_first_revision(engine)

    upgrade(engine, "head")
    assert current_revision(engine) == head_revision(engine)

    with engine.connect() as conn:
        for table, rows in SEED.items():
            n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            assert n == len(rows), table
        title = conn.execute(text("SELECT title FROM gifs WHERE sha256 = :s"), {"s": SHA_A}).scalar_one()
        assert title == "cat"

    # Today's ORM reads the upgraded rows, and can write next to them.
    with session_scope(engine) as s:
        gifs = {g.sha256: g for g in s.scalars(select(Gif))}
        assert gifs[SHA_A].tags == ["cat", "happy"] and gifs[SHA_A].rating == "g"
        assert s.scalars(select(Pool)).one().name == "team"
        assert len(s.scalars(select(PoolGif)).all()) == 2
        pred = s.scalars(select(Prediction)).one()
        np.testing.assert_array_equal(unpack_scores(pred.scores), SCORES)
        vote = s.scalars(select(Comparison)).one()
        assert (vote.winner, vote.vote_key, vote.tie) == (SHA_A, "p1:u1", False)
        s.add(Pool(name="after-upgrade"))
        s.add(Comparison(emotion=1, winner=SHA_B, loser=SHA_A, source="poll"))
    dispose_engines()


def test_each_migration_step_applies_in_order(settings: Settings) -> None:
    """Walk the chain one revision at a time (what an admin skipping releases gets)."""
    engine = make_engine(settings.db_url)
    script = ScriptDirectory.from_config(alembic_config(engine))
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert chain[0] == _first_revision(engine) and chain[-1] == head_revision(engine)
    for rev in chain:
        upgrade(engine, rev)
        assert current_revision(engine) == rev
    dispose_engines()


@pytest.mark.postgres
def test_head_schema_matches_the_models(pg_url: str) -> None:
    """No model change without a migration: autogenerate finds nothing left to do."""
    engine = make_engine(pg_url)
    upgrade(engine, "head")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"scorer/store.py and the migrations disagree: {diff}"
    dispose_engines()


def test_processes_starting_together_on_a_new_postgresql_database_all_migrate(pg_url: str) -> None:
    """A bot, a worker and `db upgrade` starting at once: all but one died of alembic's
    table being created twice (UniqueViolation). One migrates; the others wait and find it done."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MOODGIF_DATABASE_URL": pg_url, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    runs = [subprocess.Popen([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in runs]
    assert [rc for rc, _ in results] == [0, 0, 0], [err[-800:] for _, err in results]


# ---------------------------------------------------------------------------------------
# An upgrade killed in the middle of a migration

# Run in a child: `moodgif db upgrade`, held right after the DDL statement that names MARK
# (the test then kills it with SIGKILL, as a power cut or `kill -9` would).
_HELD_UPGRADE = """
import os, sys, time
import sqlalchemy as sa
from sqlalchemy import event

mark, flag = os.environ["TEST_HOLD_AFTER"], os.environ["TEST_HOLD_FILE"]

@event.listens_for(sa.engine.Engine, "after_cursor_execute")
def hold(conn, cursor, statement, params, context, executemany):
    if mark in statement:
        open(flag, "w").close()
        time.sleep(300)

sys.argv = ["moodgif", "db", "upgrade"]
from bot.cli import main
main()
"""


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    import os

    return {**os.environ, "MOODGIF_HOME": str(settings.home), "MOODGIF_DATABASE_URL": settings.db_url,
            "MOODGIF_LOG_LEVEL": "INFO", "PYTHONPATH": str(Path(__file__).resolve().parent.parent), **extra}


def _moodgif(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=_cli_env(settings),
                          capture_output=True, text=True, timeout=300)


def _kill_upgrade_after(settings: Settings, mark: str, flag: Path) -> None:
    import subprocess
    import sys
    import time

    env = _cli_env(settings, TEST_HOLD_AFTER=mark, TEST_HOLD_FILE=str(flag))
    proc = subprocess.Popen([sys.executable, "-c", _HELD_UPGRADE], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, f"the upgrade ended before {mark!r}: {proc.stdout.read().decode()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"the upgrade never ran {mark!r}"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=60)


def _columns(engine, table: str) -> set[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(engine).get_columns(table)}


# 0002's second column (its first statements done), and 0007's index after its column
@pytest.mark.parametrize("mark", ["ADD COLUMN slug", "CREATE INDEX ix_chat_sessions_phrase"])
def test_an_upgrade_killed_mid_migration_changes_nothing_and_runs_again(settings: Settings, tmp_path: Path,
                                                                         mark: str) -> None:
    """Python 3.11's pysqlite ran each ALTER on its own: a kill after the first ones kept the
    columns but not the revision, and every later command failed ("duplicate column name")."""
    engine = make_engine(settings.db_url)
    first = _first_revision(engine)
    upgrade(engine, first)
    _seed_first_revision(engine)
    dispose_engines()

    _kill_upgrade_after(settings, mark, tmp_path / "held")

    engine = make_engine(settings.db_url)
    assert current_revision(engine) == first
    assert "alt_text" not in _columns(engine, "gifs") and "query_key" not in _columns(engine, "chat_sessions")
    dispose_engines()
    ran = _moodgif(settings, "db", "upgrade")
    assert ran.returncode == 0, ran.stderr
    head = head_revision(engine)
    steps = len(list(ScriptDirectory.from_config(alembic_config(engine)).iterate_revisions(head, first)))
    # every command that migrates says so, and `db upgrade` says from where to where
    assert f"upgrading the database schema {first} -> {head} ({steps} steps)" in ran.stderr
    assert f"database at revision {head} (upgraded from {first}: {steps} migrations)" in ran.stdout
    assert current_revision(engine) == head
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title FROM gifs WHERE sha256 = :s"), {"s": SHA_A}).scalar_one() == "cat"
    dispose_engines()


def test_a_database_half_upgraded_by_an_older_moodgif_says_to_restore_the_backup(settings: Settings) -> None:
    """What an older build's interrupted SQLite upgrade left: 0002's first column, revision 0001."""
    engine = make_engine(settings.db_url)
    first = _first_revision(engine)
    upgrade(engine, first)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE gifs ADD COLUMN alt_text TEXT DEFAULT '' NOT NULL"))
    dispose_engines()
    for command in (["db", "upgrade"], ["pool", "list"]):
        ran = _moodgif(settings, *command)
        assert ran.returncode == 1, ran.stderr
        said = ran.stderr.strip().splitlines()[-1]
        assert said.startswith("moodgif: the database is half-upgraded: it records schema revision "
                               f"{first}"), said
        assert "moodgif restore --force FILE" in said and "cannot reach" not in said
        assert "Traceback" not in ran.stderr


def test_a_command_on_an_up_to_date_database_says_nothing_about_upgrading(settings: Settings) -> None:
    upgrade(make_engine(settings.db_url))
    dispose_engines()
    ran = _moodgif(settings, "db", "upgrade")
    assert ran.returncode == 0, ran.stderr
    assert "upgrading" not in ran.stderr and "(already the newest)" in ran.stdout



def test_an_up_to_date_sqlite_database_opens_while_another_process_writes(settings: Settings) -> None:
    """Every command's start-up runs `upgrade`: it took SQLite's write lock (BEGIN IMMEDIATE)
    even with nothing to migrate, so `pool list` waited behind a worker writing predictions,
    and failed "database is locked" behind a long write."""
    from _sqlite_writer import write_lock_held

    if not settings.db_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL migrates under an advisory lock")
    upgrade(make_engine(settings.db_url))
    dispose_engines()
    try:
        with write_lock_held(settings.db_url.removeprefix("sqlite:///")) as released:
            change = upgrade(make_engine(settings.db_url))
            returned_while_held = not released.is_set()
    finally:
        dispose_engines()
    assert change.steps == 0 and returned_while_held


def test_an_upgrade_waiting_for_another_process_says_so(settings: Settings,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A database that needs an upgrade waits for another process's write (up to 30 s): it
    waited silently, as if hung."""
    import threading
    import time

    from _sqlite_writer import write_lock_held

    if not settings.db_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL migrates under an advisory lock")
    engine = make_engine(settings.db_url)
    upgrade(engine, _first_revision(engine))
    dispose_engines()
    done: list[object] = []
    with caplog.at_level("INFO", logger="scorer.migrate"), \
            write_lock_held(settings.db_url.removeprefix("sqlite:///")):
        worker = threading.Thread(target=lambda: done.append(upgrade(make_engine(settings.db_url))))
        worker.start()
        deadline = time.monotonic() + 60
        while "waits for it" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        said_while_waiting = "waits for it" in caplog.text and not done
    worker.join(60)
    dispose_engines()
    assert said_while_waiting and done and done[0].steps > 0


# ---------------------------------------------------------------------------------------
# 0009: chat_sessions' indexes on databases made by an earlier version of 0007

SESSION_INDEXES = {"ix_chat_sessions_phrase": ["platform", "workspace", "query_key", "updated_at"],
                   "ix_chat_sessions_updated": ["updated_at"]}


def _session_indexes(engine) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    return {ix["name"]: list(ix["column_names"]) for ix in inspect(engine).get_indexes("chat_sessions")}


# What 0007 made at 79b62a3 and at 4061b4e (it was changed twice after it first shipped)
EARLY_0007 = {
    "79b62a3": ["DROP INDEX ix_chat_sessions_updated", "DROP INDEX ix_chat_sessions_phrase",
                "CREATE INDEX ix_chat_sessions_phrase ON chat_sessions (platform, workspace, query_key)"],
    "4061b4e": ["DROP INDEX ix_chat_sessions_updated"],
}


@pytest.mark.parametrize("made_by", [*EARLY_0007, "today"])
def test_0009_makes_the_session_indexes_what_0007_makes_today(settings: Settings, made_by: str) -> None:
    engine = make_engine(settings.db_url)
    upgrade(engine, "0007_phrase_key")
    with engine.begin() as conn:
        for statement in EARLY_0007.get(made_by, []):
            conn.execute(text(statement))
    upgrade(engine, "head")
    assert _session_indexes(engine) == SESSION_INDEXES
    dispose_engines()


# ---------------------------------------------------------------------------------------
# 0010: whose a pool is


def test_0010_makes_the_pools_of_an_earlier_database_the_operators(db_url: str) -> None:
    """Pools made before owners existed are the operator's (""): shared, as they were."""
    from scorer.pool import list_pools
    from scorer.pool_storage import get_or_create_pool

    engine = make_engine(db_url)
    upgrade(engine, "0009_session_indexes")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pools (name, description, created_at) "
                          "VALUES ('team', '', :now), ('cats', '', :now)"), {"now": NOW})
    upgrade(engine, "head")
    assert [(p["name"], p["owner"]) for p in list_pools(engine)] == [("cats", ""), ("team", "")]
    made = get_or_create_pool(engine, "new", "slack:T1")  # the column takes an owner
    with session_scope(engine) as s:
        assert s.scalar(select(Pool.owner).where(Pool.id == made)) == "slack:T1"
    dispose_engines()
