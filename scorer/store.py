"""The database: one SQLAlchemy 2 schema for the whole system, and engines from a URL.

SQLite (a file in the data directory, WAL mode) is the embedded default; PostgreSQL is the
choice for several processes or hosts. Large arrays (frame features) are files next to the
database (see `scorer.pipeline`), never rows. Per-GIF score vectors are small (17 float32)
and are stored as 68-byte blobs so a million of them load with one query and one
`np.frombuffer`.

The schema is created and upgraded by the Alembic migrations in `scorer/migrations/`;
`scorer.migrate.init_db` runs them to head.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from scorer.emotions import N_EMOTIONS

SHA_LEN = 64


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def pack_scores(values: np.ndarray) -> bytes:
    arr = np.asarray(values, dtype="<f4").reshape(-1)
    if arr.shape[0] != N_EMOTIONS:
        raise ValueError(f"expected {N_EMOTIONS} scores, got {arr.shape[0]}")
    return arr.tobytes()


def unpack_scores(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4", count=N_EMOTIONS)


class Base(DeclarativeBase):
    pass


class Pool(Base):
    __tablename__ = "pools"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Who added it: "" the operator (the CLI, the web admin, the demo), else the chat
    # workspace whose admin did, "<platform>:<workspace>" (scorer.pool_owners.may_see).
    owner: Mapped[str] = mapped_column(String(100), default="", server_default="")


class Gif(Base):
    """One file, stored once under its SHA-256 whatever pools it is in."""

    __tablename__ = "gifs"
    sha256: Mapped[str] = mapped_column(String(SHA_LEN), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(10), default="gif")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    n_frames: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    # The GIF's own words, kept at ingest for the word prior and topic search: a caption or
    # alt text, the URL slug ("happy-dance"), and where it came from for attribution.
    alt_text: Mapped[str] = mapped_column(Text, default="")
    slug: Mapped[str] = mapped_column(Text, default="")
    # A provider id such as "giphy:abc123", unique so an import never stores one GIF twice.
    external_id: Mapped[str | None] = mapped_column(
        String(120), nullable=True, unique=True, index=True
    )
    attribution: Mapped[dict] = mapped_column(JSON, default=dict)
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # g, pg, pg-13, r; rating_source says whether a manifest or the NSFW model set it.
    rating: Mapped[str | None] = mapped_column(String(8), nullable=True)
    rating_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    nsfw_prob: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Set when decoding failed at scoring time: the GIF is skipped, not deleted.
    score_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PoolGif(Base):
    __tablename__ = "pool_gifs"
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True)
    # Indexed on its own too: "is this GIF in any pool?" (every vote and Send) must not
    # scan the whole table (the primary key leads with pool_id).
    gif_sha: Mapped[str] = mapped_column(ForeignKey("gifs.sha256"), primary_key=True, index=True)
    source_ref: Mapped[str] = mapped_column(Text, default="")
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Refusal(Base):
    """A file that a pool ingest refused, and why."""

    __tablename__ = "refusals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id", ondelete="SET NULL"), nullable=True)
    source_ref: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ModelVersion(Base):
    """A trained head (file under models_dir) with its encoder, metrics and state."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    encoder_id: Mapped[str] = mapped_column(String(200))
    sampling: Mapped[str] = mapped_column(String(10), default="sparse")
    head_kind: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    # candidate -> active -> retired; or failed / rejected
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Prediction(Base):
    __tablename__ = "predictions"
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    gif_sha: Mapped[str] = mapped_column(ForeignKey("gifs.sha256"), primary_key=True)
    scores: Mapped[bytes] = mapped_column(LargeBinary)  # 17 x float32, see pack_scores
    # 17 x float32 standard deviations of the prediction, when the model knows them (the
    # zero-shot prior: wide where it saw no face and no words); NULL = the ranker's default.
    sd: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Comparison(Base):
    """One pairwise outcome on one emotion: the ledger every signal ends up in.

    A thumbs vote is a comparison against the emotion's reference item (winner or loser is
    the reference sha, see training.comparisons). `vote_key` makes "one vote per person per
    post" a database constraint: a changed vote updates the row with the same key.
    """

    __tablename__ = "comparisons"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    emotion: Mapped[int] = mapped_column(SmallInteger)
    winner: Mapped[str] = mapped_column(String(SHA_LEN))
    loser: Mapped[str] = mapped_column(String(SHA_LEN))
    tie: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    source: Mapped[str] = mapped_column(String(16))  # vote, send, poll, import, reaction
    who: Mapped[str] = mapped_column(String(64), default="")  # salted hash, never a raw id
    platform: Mapped[str] = mapped_column(String(16), default="")
    workspace: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"), nullable=True)
    vote_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    __table_args__ = (Index("ix_comparisons_emotion", "emotion"),)


class BTFit(Base):
    """One Bradley-Terry refit of all emotions; its per-GIF scores are BTScore rows."""

    __tablename__ = "bt_fits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    n_comparisons: Mapped[int] = mapped_column(Integer, default=0)
    last_comparison_id: Mapped[int] = mapped_column(BigInteger, default=0)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    stats: Mapped[dict] = mapped_column(JSON, default=dict)
    prior_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class BTScore(Base):
    __tablename__ = "bt_scores"
    fit_id: Mapped[int] = mapped_column(ForeignKey("bt_fits.id", ondelete="CASCADE"), primary_key=True)
    gif_sha: Mapped[str] = mapped_column(String(SHA_LEN), primary_key=True)
    theta: Mapped[bytes] = mapped_column(LargeBinary)  # 17 x float32 log-strengths
    se: Mapped[bytes] = mapped_column(LargeBinary)  # 17 x float32 standard errors
    scaled: Mapped[bytes] = mapped_column(LargeBinary)  # 17 x float32 product scale in [0, 1]
    n_comparisons: Mapped[int] = mapped_column(Integer, default=0)
    # 17 x float32 evidence per emotion in the fitted ledger: comparisons weighed as the fit
    # weighed them (a muted person adds nothing); NULL for older fits
    counts: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ChatSession(Base):
    """A preview (or a poll) shown privately to one user."""

    __tablename__ = "chat_sessions"
    # bot.learned_phrases: what people in a workspace sent for the same words
    __table_args__ = (Index("ix_chat_sessions_phrase", "platform", "workspace", "query_key", "updated_at"),
                      Index("ix_chat_sessions_updated", "updated_at"))  # forgetting old words
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default="preview")  # preview | poll
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    user_hash: Mapped[str] = mapped_column(String(64))
    query: Mapped[str] = mapped_column(Text, default="")
    # the words as bot.learned_phrases matches them; "" where no feeling was picked for them
    query_key: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The topic words of a request that named no feeling ("cat"): its `emotion` is only the
    # first GIF's clearest, so neither its Send, its judgements nor votes on its post teach it.
    topic: Mapped[str] = mapped_column(String(200), default="", server_default="")
    emotion: Mapped[int] = mapped_column(SmallInteger)
    shown: Mapped[list] = mapped_column(JSON, default=list)  # shas in order shown
    current: Mapped[list] = mapped_column(JSON, default=list)  # shas on screen now
    state: Mapped[str] = mapped_column(String(12), default="open")  # open sent cancelled switched expired answered undone
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Post(Base):
    """A GIF posted publicly from a preview; the thing people vote on."""

    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("chat_sessions.id"), nullable=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    message_ref: Mapped[str] = mapped_column(String(100), default="")  # Slack ts / Discord message id
    gif_sha: Mapped[str] = mapped_column(String(SHA_LEN))
    emotion: Mapped[int] = mapped_column(SmallInteger)
    requested_by: Mapped[str] = mapped_column(String(64), default="")  # user hash
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_posts_message", "platform", "message_ref"),)


class Impression(Base):
    """A GIF shown in a channel: what the ranker avoids repeating."""

    __tablename__ = "impressions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    gif_sha: Mapped[str] = mapped_column(String(SHA_LEN))
    shown_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    # gif_sha last: "what was posted here lately" (every request) reads the index alone.
    __table_args__ = (Index("ix_impressions_recent", "platform", "workspace", "channel",
                            "shown_at", "gif_sha"),)


class ScopedSetting(Base):
    """Per-workspace / per-channel overrides of settings (Red-DiscordBot's scopes).

    channel == "" is the workspace scope; a channel row wins over it; the global default
    is the Settings object.
    """

    __tablename__ = "scoped_settings"
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)  # {"v": ...}
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RetrainRun(Base):
    __tablename__ = "retrain_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")  # manual, schedule, admin
    status: Mapped[str] = mapped_column(String(12), default="running")  # running activated kept rejected failed skipped
    step: Mapped[str] = mapped_column(String(20), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    host: Mapped[str] = mapped_column(String(100), default="")
    bt_fit_id: Mapped[int | None] = mapped_column(ForeignKey("bt_fits.id"), nullable=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CoreJob(Base):
    """Heavy admin work asked for in chat or on the web (add a pool, retrain now): the chat
    process only queues it; the worker process (`bot.retrain_worker`) claims and runs it."""

    __tablename__ = "core_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # pool_add, retrain
    args: Mapped[dict] = mapped_column(JSON, default=dict)
    label: Mapped[str] = mapped_column(String(400), default="")  # what the admin sees
    state: Mapped[str] = mapped_column(String(12), default="queued", index=True)  # queued running done failed
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    host: Mapped[str] = mapped_column(String(100), default="")
    # Stamped by the running worker every few seconds: a stale stamp means it died.
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class JobLock(Base):
    """A named lease: SQLite's stand-in for PostgreSQL advisory locks."""

    __tablename__ = "job_locks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Meta(Base):
    """Small key-value facts of the installation (e.g. the generated user-hash salt)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


__all__ = [
    "BTFit",
    "BTScore",
    "Base",
    "ChatSession",
    "Comparison",
    "CoreJob",
    "Gif",
    "Impression",
    "JobLock",
    "Meta",
    "ModelVersion",
    "Pool",
    "PoolGif",
    "Post",
    "Prediction",
    "Refusal",
    "RetrainRun",
    "ScopedSetting",
    "UniqueConstraint",
]


# ---------------------------------------------------------------------------------------
# engines

_ENGINES: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets the bot read while the retrain job writes; busy_timeout waits out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    # The database holds the ledger and the Slack installations: owner-only, whatever the
    # umask was when it was created (SQLite gives its -wal/-shm files the same mode).
    for _seq, name, path in cur.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    if os.stat(path + suffix).st_mode & 0o077:
                        os.chmod(path + suffix, 0o600)
    cur.close()


# Request paths (a chat click, a web page) wait this long for a lock held by another
# process, then answer "busy, try again"; jobs and the CLI wait the long one.
REQUEST_BUSY_TIMEOUT_MS = 2000
LONG_BUSY_TIMEOUT_MS = 30000
_PATH = threading.local()


def busy_timeout_ms() -> int:
    return REQUEST_BUSY_TIMEOUT_MS if getattr(_PATH, "request", False) else LONG_BUSY_TIMEOUT_MS


@contextmanager
def request_path() -> Iterator[None]:
    """Mark this thread as serving a user: SQLite waits only briefly for another
    process's lock (`DatabaseBusy` then), so a held lock cannot stall the bot."""
    before = getattr(_PATH, "request", False)
    _PATH.request = True
    try:
        yield
    finally:
        _PATH.request = before


def db_error_line(exc: BaseException) -> str:
    """What the database driver said, first line only (a log line or a message, never the
    SQL and parameters SQLAlchemy appends)."""
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return said[0] if said else type(exc).__name__


def is_busy_error(exc: BaseException) -> bool:
    """SQLite's "database is locked / busy" (another process holds the write lock)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def _sqlite_checkout(dbapi_conn, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
    # Pooled connections are shared by request threads and job threads: set the wait of
    # whoever checks the connection out now (a PRAGMA costs microseconds).
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cur.close()


def finite_json(value: object) -> object:
    """`value` with every NaN or infinite float (a metric with no dev set, nothing compared)
    turned into None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def json_dumps(value: object) -> str:
    """The serializer of every JSON column: strict JSON, which PostgreSQL requires (it refuses
    the NaN and Infinity tokens Python writes by default); SQLite then stores the same."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:  # the rare row with a non-finite float: walk it only then
        return json.dumps(finite_json(value), allow_nan=False)


def make_engine(url: str) -> Engine:
    """An engine for the URL (cached per URL); SQLite files get WAL and a busy timeout."""
    if url in _ENGINES:
        return _ENGINES[url]
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               json_serializer=json_dumps)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkout", _sqlite_checkout)
    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        # A server that accepts and never answers hung every command without a word; the
        # URL's own connect_timeout wins.
        connect = {} if "connect_timeout=" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        engine = create_engine(url, pool_pre_ping=True, json_serializer=json_dumps, connect_args=connect)
    _ENGINES[url] = engine
    return engine


PG_CONNECT_TIMEOUT_S = 10


def transactional_sqlite_engine(url: str) -> Engine:
    """A private, uncached engine on a SQLite file whose transactions cover DDL: for the
    migrations only (the app's engine keeps pysqlite's usual handling).

    Python 3.11's pysqlite opens no transaction before ALTER or CREATE, so each ran on its
    own: a migration killed half way kept its first columns but not its new revision, and
    every later run failed on them ("duplicate column name"). Here pysqlite's transaction
    handling is off and SQLAlchemy's begin emits the BEGIN itself (SQLAlchemy's recipe
    "Serializable isolation / Savepoints / Transactional DDL" for pysqlite). IMMEDIATE takes
    the write lock first, so processes starting together migrate one after the other, as the
    advisory lock makes them on PostgreSQL."""
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           json_serializer=json_dumps, poolclass=NullPool)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", _no_pysqlite_transactions)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _no_pysqlite_transactions(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.isolation_level = None


def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def dispose_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


_MAKERS: dict[int, sessionmaker] = {}


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    maker = _MAKERS.get(id(engine))
    if maker is None or maker.kw.get("bind") is not engine:  # one maker per engine, not per call
        maker = _MAKERS[id(engine)] = sessionmaker(engine, expire_on_commit=False)
    session = maker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def unit_of_work(db: Engine | Session) -> Iterator[Session]:
    """The session to work in: the caller's own (its transaction: one user action is one
    unit of work, committed by whoever opened it), or, given an Engine, a fresh
    `session_scope` that commits on success."""
    if isinstance(db, Session):
        yield db
        return
    with session_scope(db) as s:
        yield s
