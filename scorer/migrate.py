"""Alembic, driven from code: the migrations ship inside the package (scorer/migrations)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from scorer.store import make_engine, transactional_sqlite_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


# Every command migrates at start, so a bot, a worker and `db upgrade` starting together on
# one PostgreSQL database raced to create alembic's table (a UniqueViolation traceback for
# all but one). The lock lasts the migration's transaction; the others then find it done.
MIGRATE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"moodgif:migrate").digest()[:8], "big", signed=True)


class SchemaHalfApplied(Exception):
    """The database holds part of a migration its revision does not record: an older moodgif,
    whose SQLite migrations were not one transaction, was stopped in the middle of one."""


@dataclass(frozen=True)
class SchemaChange:
    """What one `upgrade` did: from which revision to which, in how many migrations."""

    before: str | None
    after: str | None
    steps: int

    def describe(self) -> str:
        if self.before is None:
            return f"creating the database schema at {self.after} ({self._steps_said()})"
        return f"upgrading the database schema {self.before} -> {self.after} ({self._steps_said()})"

    def _steps_said(self) -> str:
        return "1 step" if self.steps == 1 else f"{self.steps} steps"


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one real transaction that the migrations' DDL is part of: all of a
    migration or none of it, whenever the process is killed. Only one process at a time
    holds it (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE)."""
    private = None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        _say_if_sqlite_busy(engine.url.database)
        private = transactional_sqlite_engine(engine.url.render_as_string(hide_password=False))
    try:
        with (private or engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            yield conn
    finally:
        if private is not None:
            private.dispose()


def _say_if_sqlite_busy(path: str) -> None:
    """One line when another process holds the write lock, so an upgrade that waits for it
    (SQLite's busy wait, up to 30 s) is not a silent hang."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            log.info("another process is writing to %s: the schema upgrade waits for it (up to 30 s)", path)
    finally:
        conn.close()


def upgrade(engine: Engine, revision: str = "head") -> SchemaChange:
    """Migrate to `revision`, logging one line when there is anything to do."""
    cfg = alembic_config(engine)
    current = _already_at(engine, cfg, revision)
    if current is not None:  # every command's start-up: no write lock just to find that out
        return SchemaChange(current, current, 0)
    with migration_connection(engine) as conn:  # read again under the lock: another may have migrated
        change = _planned_change(conn, cfg, revision)
        if change.steps:
            log.info("%s", change.describe())
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, revision)
        except DBAPIError as exc:
            if _already_there(exc):
                raise SchemaHalfApplied(_half_applied_advice(change, exc)) from exc
            raise
    return change


def _already_at(engine: Engine, cfg: Config, revision: str) -> str | None:
    """The database's revision when it is `revision` already (a plain read, no lock); None
    when there is work to do, or an answer only alembic's upgrade gives (a newer schema)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    target = ScriptDirectory.from_config(cfg).get_revision(revision)
    return current if current is not None and target is not None and target.revision == current else None


def _planned_change(conn: Connection, cfg: Config, revision: str) -> SchemaChange:
    script = ScriptDirectory.from_config(cfg)
    before = MigrationContext.configure(conn).get_current_revision()
    target = script.get_revision(revision)
    after = target.revision if target is not None else None
    if after == before or after is None:
        return SchemaChange(before, before, 0)
    try:
        steps = list(script.iterate_revisions(after, before or "base"))
    except RevisionError:
        # already past it (alembic's upgrade does nothing), or a revision this code lacks
        # (alembic's upgrade says so, as bot.cli expects)
        return SchemaChange(before, before, 0)
    return SchemaChange(before, after, len(steps))


def _already_there(exc: DBAPIError) -> bool:
    said = str(exc.orig).lower()
    return "duplicate column" in said or "already exists" in said


def _half_applied_advice(change: SchemaChange, exc: DBAPIError) -> str:
    first = str(exc.orig).strip().splitlines()[0]
    return (f"the database is half-upgraded: it records schema revision {change.before}, but part of "
            f"the next migration is already in it ({first}). An older moodgif's SQLite upgrade "
            "stopped in the middle leaves this, as does a schema changed by hand. Restore the "
            "backup taken before the upgrade with `moodgif restore --force FILE`, then run "
            "`moodgif db upgrade`")


def init_db(url: str) -> Engine:
    """Create or upgrade the schema to the newest migration and return the engine."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def is_known_revision(engine: Engine, revision: str) -> bool:
    """Whether this code has the migration `revision` (a newer moodgif's is unknown here)."""
    try:
        return ScriptDirectory.from_config(alembic_config(engine)).get_revision(revision) is not None
    except (CommandError, RevisionError):
        return False
