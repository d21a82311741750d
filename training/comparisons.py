"""The comparisons ledger: every signal users give, as one pairwise outcome on one emotion.

Each row of the `comparisons` table is `(emotion, winner, loser, tie, weight, source, who,
where, when)`. The sources:

- **send** — a user shuffled past some GIFs and sent one: the sent GIF beats each skipped one.
- **vote** — a 👍/👎 on a posted GIF is a comparison against the emotion's *reference item*
  (`reference_id(emotion)`): 👍 = the GIF beats the reference, 👎 = the reference beats it.
  The reference is one more item in the Bradley-Terry fit, so thumbs and pairs fit one model.
  One vote per person per post (the `vote_key` unique column): a changed vote replaces the
  old row, a withdrawn vote deletes it.
- **poll** — "which is more X?": left, right, or neither (a tie row).
- **import** — GIFGIF-style `(metric, left, right, choice)` rows.

`who` is always a salted SHA-256 (`user_hash`), never a raw platform user id: every writer
checks that it looks like one. Bad input raises `LedgerError` (a `ValueError`) with the
reason, is logged, and leaves nothing half-written (each call is one transaction).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scorer.emotions import INDEX, N_EMOTIONS, NAMES
from scorer.settings import Settings
from scorer.store import (
    Comparison,
    Gif,
    Pool,
    PoolGif,
    Post,
    session_scope,
    unit_of_work,
    utcnow,
)

log = logging.getLogger("moodgif.training.comparisons")

REFERENCE_PREFIX = "ref:"
# A post older than this no longer takes votes: late reactions on old messages are noise
# from scrolling, not a judgement of the GIF in its moment.
VOTE_WINDOW = dt.timedelta(days=30)
SOURCES = ("vote", "send", "poll", "import", "reaction")
# The request path's statements, built once and run on the action's connection (Core, no
# ORM flush or identity map): building a statement costs more than SQLite takes to answer it
_IN_POOL = (select(PoolGif.gif_sha).where(PoolGif.gif_sha.in_(bindparam("shas", expanding=True)))
            .distinct())
_INSERT_COMPARISON = Comparison.__table__.insert()
_POST_FOR_VOTE = select(Post.gif_sha, Post.emotion, Post.created_at).where(
    Post.id == bindparam("id"))
_VOTE_BY_KEY = select(Comparison.id, Comparison.winner, Comparison.loser).where(
    Comparison.vote_key == bindparam("key"))
_REPLACE_VOTE = (update(Comparison.__table__).where(Comparison.__table__.c.id == bindparam("_id"))
                 .values(winner=bindparam("winner"), loser=bindparam("loser"),
                         created_at=bindparam("created_at")))
_REMOVE_VOTE = delete(Comparison.__table__).where(Comparison.__table__.c.id == bindparam("_id"))
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_ITEM_LEN = 64  # comparisons.winner / loser are String(64)


class LedgerError(ValueError):
    """A signal that cannot be recorded; the message says why. Nothing was written."""


class NotPooled(LedgerError):
    """A comparison names a GIF that is in no pool (any more): nothing to rank it in."""


# ---------------------------------------------------------------------------------------
# reference items and user hashes


def reference_id(emotion: int) -> str:
    """The per-emotion reference item that thumbs votes are compared against."""
    _check_emotion(emotion)
    return REFERENCE_PREFIX + NAMES[emotion]


def is_reference(item: str) -> bool:
    return item.startswith(REFERENCE_PREFIX)


_SALTS: dict[str, str] = {}


def _salt(engine: Engine, settings: Settings) -> str:
    """The salt (scorer/salt.py: an environment secret or a 0600 file, never the database)."""
    from scorer.salt import load_salt

    if settings.chat.user_hash_salt:
        return settings.chat.user_hash_salt
    key = f"{engine.url}|{settings.home}"
    if key not in _SALTS:
        _SALTS[key] = load_salt(engine, settings)
    return _SALTS[key]


def user_hash(engine: Engine, settings: Settings, platform: str, user_id: str) -> str:
    """Salted SHA-256 (hex) of a platform user id; the only form of `who` the ledger keeps.

    The salt is `settings.chat.user_hash_salt`, or one generated once per installation and kept
    in `$MOODGIF_HOME/user_hash_salt` (scorer/salt.py), so the same person hashes the same
    across processes and restarts, and no copy of the database can re-identify anyone.
    """
    if not user_id:
        raise LedgerError("empty user id")
    salt = _salt(engine, settings)
    return hashlib.sha256(f"{salt}\x00{platform}\x00{user_id}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# validation


def _fail(reason: str) -> LedgerError:
    log.warning("ledger: refused: %s", reason)
    return LedgerError(reason)


def _check_emotion(emotion: int) -> None:
    if isinstance(emotion, bool) or not isinstance(emotion, int | np.integer):
        raise _fail(f"emotion must be an index 0..{N_EMOTIONS - 1}, not {emotion!r}")
    if not 0 <= int(emotion) < N_EMOTIONS:
        raise _fail(f"unknown emotion index {emotion}; expected 0..{N_EMOTIONS - 1}")


def _check_who(who: str) -> None:
    if who and not _HASH_RE.match(who):
        raise _fail("who must be a user_hash() value (64 hex digits), never a raw user id")


def _check_in_pool(s: Session, gifs: Iterable[str]) -> None:
    wanted = {g for g in gifs}
    for g in wanted:
        if not g or len(g) > _MAX_ITEM_LEN or is_reference(g):
            raise _fail(f"not a GIF id: {g!r}")
    found = set(s.connection().execute(_IN_POOL, {"shas": list(wanted)}).scalars())
    missing = sorted(wanted - found)
    if missing:
        reason = f"GIF not in any pool: {', '.join(m[:16] for m in missing)}"
        log.warning("ledger: refused: %s", reason)
        raise NotPooled(reason)


def _values(emotion: int, winner: str, loser: str, *, source: str, who: str, platform: str,
            workspace: str, channel: str, tie: bool = False, weight: float = 1.0,
            post_id: int | None = None, vote_key: str | None = None) -> dict:
    """One ledger row's columns (created_at: the column's default)."""
    return {"emotion": int(emotion), "winner": winner, "loser": loser, "tie": tie,
            "weight": weight, "source": source, "who": who, "platform": platform[:16],
            "workspace": workspace[:64], "channel": channel[:64], "post_id": post_id,
            "vote_key": vote_key}


# ---------------------------------------------------------------------------------------
# writers


def record_send(engine: Engine, *, emotion: int, sent: str, skipped: Sequence[str], who: str,
                platform: str = "", workspace: str = "", channel: str = "",
                post_id: int | None = None) -> int:
    """The sent GIF beats each GIF the user skipped (shuffled past); returns rows added."""
    with session_scope(engine) as s:
        return add_send(s, emotion=emotion, sent=sent, skipped=skipped, who=who,
                        platform=platform, workspace=workspace, channel=channel, post_id=post_id)


def add_send(s: Session, *, emotion: int, sent: str, skipped: Sequence[str], who: str,
             platform: str = "", workspace: str = "", channel: str = "",
             post_id: int | None = None) -> int:
    """``record_send`` inside the caller's transaction (the bot's Send: the post and its
    comparisons commit together). Checks everything before adding a row, so a
    ``LedgerError`` leaves the transaction untouched."""
    _check_emotion(emotion)
    _check_who(who)
    losers = list(dict.fromkeys(g for g in skipped if g != sent))
    _check_in_pool(s, [sent, *losers])
    if losers:
        s.connection().execute(_INSERT_COMPARISON, [
            _values(emotion, sent, loser, source="send", who=who, platform=platform,
                    workspace=workspace, channel=channel, post_id=post_id) for loser in losers])
    return len(losers)


def record_vote(db: Engine | Session, *, emotion: int, gif: str, up: bool | None, who: str,
                post_id: int, platform: str = "", workspace: str = "", channel: str = "",
                source: str = "vote", window: dt.timedelta | None = VOTE_WINDOW,
                post: Any = None) -> str:
    """A 👍 (up=True) / 👎 (up=False) on a post, or its removal (up=None).

    One vote per person per post: returns "recorded", "replaced" (the person changed their
    vote), "removed" or "unchanged". The post must exist, show this GIF on this emotion and
    be younger than `window`. Given the caller's Session, a double click racing this one to
    the unique `vote_key` raises IntegrityError: the caller's unit of work retries the action
    (`bot.flows.context`); given an Engine, the retry is here. `post`: the post's row as
    the caller's transaction just read it (its gif_sha, emotion, created_at), not read again.
    """
    _check_emotion(emotion)
    if not who:
        raise _fail("a vote needs a voter (who)")
    _check_who(who)
    if source not in SOURCES:
        raise _fail(f"unknown source {source!r}")
    if post is not None and int(post.id) != int(post_id):
        raise _fail(f"vote on post {post_id} given the row of post {post.id}")
    vote = _Vote(emotion, gif, up, who, post_id, platform, workspace, channel, source, window,
                 post)
    if isinstance(db, Session):
        return vote.apply(db)
    for attempt in range(2):
        try:
            with session_scope(db) as s:
                return vote.apply(s)
        except IntegrityError:
            # A double click raced us to the unique vote_key; the second pass sees the row.
            if attempt:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class _Vote:
    emotion: int
    gif: str
    up: bool | None
    who: str
    post_id: int
    platform: str
    workspace: str
    channel: str
    source: str
    window: dt.timedelta | None
    known: Any = None  # the post's row, read by the caller in this transaction

    def apply(self, s: Session) -> str:
        conn = s.connection()
        post = (self.known if self.known is not None
                else conn.execute(_POST_FOR_VOTE, {"id": self.post_id}).first())
        if post is None:
            raise _fail(f"vote on a post that does not exist: {self.post_id}")
        if post.gif_sha != self.gif or post.emotion != self.emotion:
            raise _fail(f"vote on post {self.post_id} names another GIF or emotion than the post")
        if self.window is not None and post.created_at < utcnow() - self.window:
            raise _fail(f"vote on an expired post {self.post_id} (older than {self.window})")
        _check_in_pool(s, [self.gif])
        key = f"{self.post_id}:{self.who}"
        old = conn.execute(_VOTE_BY_KEY, {"key": key}).first()
        if self.up is None:
            if old is None:
                return "unchanged"
            conn.execute(_REMOVE_VOTE, {"_id": old.id})
            return "removed"
        ref = reference_id(self.emotion)
        winner, loser = (self.gif, ref) if self.up else (ref, self.gif)
        if old is None:
            conn.execute(_INSERT_COMPARISON, _values(
                self.emotion, winner, loser, source=self.source, who=self.who,
                platform=self.platform, workspace=self.workspace, channel=self.channel,
                post_id=self.post_id, vote_key=key))
            return "recorded"
        if old.winner == winner and old.loser == loser:
            return "unchanged"
        conn.execute(_REPLACE_VOTE, {"_id": old.id, "winner": winner, "loser": loser,
                                     "created_at": utcnow()})
        return "replaced"


def record_poll(db: Engine | Session, *, emotion: int, left: str, right: str, answer: str, who: str,
                platform: str = "", workspace: str = "", channel: str = "") -> int:
    """A "which is more X?" answer: left, right, or neither (a tie). Returns rows added (1)."""
    _check_emotion(emotion)
    _check_who(who)
    if left == right:
        raise _fail("a poll compares two different GIFs")
    answer = answer.strip().lower()
    if answer not in {"left", "right", "neither"}:
        raise _fail(f"poll answer must be left, right or neither, not {answer!r}")
    winner, loser = (right, left) if answer == "right" else (left, right)
    with unit_of_work(db) as s:
        _check_in_pool(s, [left, right])
        s.connection().execute(_INSERT_COMPARISON, _values(
            emotion, winner, loser, source="poll", who=who, platform=platform,
            workspace=workspace, channel=channel, tie=answer == "neither"))
    return 1


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    ties: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (f"{self.rows} rows read, {self.added} comparisons added ({self.ties} ties), "
                f"{self.skipped_total} skipped" + (f" ({parts})" if parts else ""))


def _pool_aliases(s: Session) -> dict[str, str]:
    """Names an import may use for a pooled GIF: its SHA-256, or its source file's stem.

    The GIFGIF images come named `<giphy_id>.gif`, so a pool ingested from that folder
    is addressable by the GIPHY ids of the vote dump. So is a GIF imported from GIPHY:
    by its provider id ("giphy:abc123") and by the bare id ("abc123").
    """
    aliases: dict[str, str] = {}
    for sha, ref in s.execute(select(PoolGif.gif_sha, PoolGif.source_ref)):
        aliases[sha] = sha
        if ref:
            stem = PurePath(ref.split("?", 1)[0]).stem
            if stem and stem not in aliases:
                aliases[stem] = sha
    pooled = select(PoolGif.gif_sha).distinct()
    for sha, ext in s.execute(select(Gif.sha256, Gif.external_id).where(
            Gif.external_id.is_not(None), Gif.sha256.in_(pooled))):
        aliases[ext] = sha
        aliases.setdefault(ext.split(":", 1)[-1], sha)
    return aliases


def import_pairs(engine: Engine, rows: Iterable[Sequence[str]], source: str = "import",
                 batch: int = 5000, platform: str = "") -> ImportReport:
    """Add GIFGIF-style `(metric, left, right, choice)` rows; bad rows are counted and skipped.

    `choice` is left or right (a decision) or anything else (neither, a tie row). A GIF is
    named by its SHA-256 or the stem of its pooled file name; GIFs in no pool are skipped.
    `platform` tags the rows (e.g. "gifgif"), so a dataset import can be replaced whole.
    """
    if source not in SOURCES:
        raise LedgerError(f"unknown source {source!r}")
    report = ImportReport()
    with session_scope(engine) as s:
        aliases = _pool_aliases(s)
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            with session_scope(engine) as s:
                s.execute(Comparison.__table__.insert(), pending)
            pending.clear()

    for raw in rows:
        report.rows += 1
        parsed = _import_row(raw, aliases)
        if isinstance(parsed, str):
            report.skipped[parsed] += 1
            continue
        emotion, winner, loser, tie = parsed
        pending.append({"emotion": emotion, "winner": winner, "loser": loser, "tie": tie,
                        "weight": 1.0, "source": source, "who": "", "platform": platform,
                        "workspace": "", "channel": "", "post_id": None, "vote_key": None,
                        "created_at": utcnow()})
        report.added += 1
        report.ties += tie
        if len(pending) >= batch:
            flush()
    flush()
    if report.skipped:
        log.debug("import: %s", report.summary())  # the caller reports its own, whole-file tally
    return report


def _import_row(raw: Sequence[str], aliases: dict[str, str]) -> tuple[int, str, str, bool] | str:
    """One imported row as (emotion, winner, loser, tie), or why it is skipped."""
    if len(raw) < 4:
        return "malformed row"
    metric, left, right, choice = (str(x).strip() for x in raw[:4])
    emotion = INDEX.get(metric.lower())
    if emotion is None:
        return "unknown emotion"
    if not left or not right:
        return "empty id"
    a, b = aliases.get(left), aliases.get(right)
    if a is None or b is None:
        return "GIF not in any pool"
    if a == b:
        return "same GIF on both sides"
    choice = choice.lower()
    winner, loser = (b, a) if choice == "right" else (a, b)
    return emotion, winner, loser, choice not in {"left", "right"}


# ---------------------------------------------------------------------------------------
# readers


@dataclass
class LedgerArrays:
    """The ledger as arrays for Bradley-Terry: winner/loser index into `ids`."""

    ids: list[str]
    emotion: np.ndarray  # int16 (M,)
    winner: np.ndarray  # int64 (M,)
    loser: np.ndarray  # int64 (M,)
    tie: np.ndarray  # bool (M,)
    weight: np.ndarray  # float64 (M,)
    max_id: int  # highest comparison id read (0 when empty): the fit's watermark
    # bool (M,): the row is a "sent beats skipped" pair (None: not known)
    is_send: np.ndarray | None = None
    # object (M,): the person (user hash) behind each row, "" for none (None: not known)
    who: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.emotion.shape[0])

    @property
    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.ids)}


def intern_item(item: str, index: dict[str, int], ids: list[str]) -> int:
    """The item's column in a ledger's arrays, appending it to `ids` the first time."""
    at = index.get(item)
    if at is None:
        at = index[item] = len(ids)
        ids.append(item)
    return at


def pooled_gifs(engine: Engine, pool: str | None = None) -> set[str]:
    """SHA-256 of every GIF in any pool (or in the named one)."""
    with session_scope(engine) as s:
        q = select(PoolGif.gif_sha).distinct()
        if pool is not None:
            q = q.join(Pool, Pool.id == PoolGif.pool_id).where(Pool.name == pool)
        return set(s.scalars(q))


@dataclass
class _LedgerRows:
    """The usable comparisons of one ledger read, column by column, and what was skipped."""

    known_gifs: set[str]
    index: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    em: list[int] = field(default_factory=list)
    win: list[int] = field(default_factory=list)
    lose: list[int] = field(default_factory=list)
    tie: list[bool] = field(default_factory=list)
    wt: list[float] = field(default_factory=list)
    sends: list[bool] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    thumbs: list[tuple[int, str, bool]] = field(default_factory=list)  # (row, who, up) of 👍/👎
    info: dict = field(default_factory=lambda: {
        "rows": 0, "used": 0, "skipped_unknown_gif": 0, "skipped_bad_emotion": 0,
        "by_source": Counter(), "ties": 0})
    max_id: int = 0

    def add(self, cid: int, e: int, w: str, l_: str, t: bool, weight: float | None,
            src: str, who: str | None) -> None:
        info = self.info
        info["rows"] += 1
        self.max_id = max(self.max_id, int(cid))
        if not 0 <= e < N_EMOTIONS:
            info["skipped_bad_emotion"] += 1
            return
        if not ((w in self.known_gifs or is_reference(w)) and (l_ in self.known_gifs or is_reference(l_))):
            info["skipped_unknown_gif"] += 1
            return
        self.em.append(e)
        self.win.append(intern_item(w, self.index, self.ids))
        self.lose.append(intern_item(l_, self.index, self.ids))
        self.tie.append(bool(t))
        self.wt.append(float(weight if weight is not None else 1.0))
        self.sends.append(src == "send")
        self.people.append(who or "")
        if src in THUMB_SOURCES and who and (is_reference(w) or is_reference(l_)):
            self.thumbs.append((len(self.em) - 1, who, is_reference(l_)))
        info["by_source"][src] += 1
        info["ties"] += bool(t)

    def arrays(self) -> tuple[LedgerArrays, dict]:
        """The arrays, with one-note voters' thumbs weighed down, and the read's counts."""
        info = self.info
        info["used"] = len(self.em)
        info["by_source"] = dict(info["by_source"])
        weights = np.asarray(self.wt, dtype=np.float64)
        info["muted_voters"] = _weigh_thumbs_by_variation(weights, self.thumbs)
        return LedgerArrays(
            ids=self.ids,
            emotion=np.asarray(self.em, dtype=np.int16),
            winner=np.asarray(self.win, dtype=np.int64),
            loser=np.asarray(self.lose, dtype=np.int64),
            tie=np.asarray(self.tie, dtype=bool),
            weight=weights,
            max_id=self.max_id,
            is_send=np.asarray(self.sends, dtype=bool),
            who=np.asarray(self.people, dtype=object),
        ), info


def load_ledger(engine: Engine, *, known_gifs: set[str] | None = None,
                items: Sequence[str] | None = None,
                up_to_id: int | None = None) -> tuple[LedgerArrays, dict]:
    """Read every comparison as arrays; rows naming a GIF in no pool are counted and skipped.

    `known_gifs` defaults to every pooled GIF; reference items are always known. `items`
    fixes the leading item order (e.g. the pool's GIFs, so GIFs nobody compared yet still
    get a slot); items met in the ledger but not listed are appended. `up_to_id` reads a
    stable snapshot while new votes keep arriving.
    """
    rows = _LedgerRows(pooled_gifs(engine) if known_gifs is None else known_gifs)
    for item in items or ():
        intern_item(item, rows.index, rows.ids)
    q = select(Comparison.id, Comparison.emotion, Comparison.winner, Comparison.loser,
               Comparison.tie, Comparison.weight, Comparison.source, Comparison.who
               ).order_by(Comparison.id)
    if up_to_id is not None:
        q = q.where(Comparison.id <= up_to_id)
    with engine.connect() as conn:
        for row in conn.execute(q):
            rows.add(*row)
    arrays, info = rows.arrays()
    if info["skipped_unknown_gif"]:
        log.info("ledger: %d comparisons name a GIF in no pool; skipped",
                 info["skipped_unknown_gif"])
    return arrays, info


THUMB_SOURCES = ("vote", "reaction")
# A voter's thumbs count fully once at least this share of them go the other way; below it
# their weight shrinks in proportion (after THUMB_MIN_VOTES thumbs, so newcomers count fully).
THUMB_MIN_MINORITY = 0.1
THUMB_MIN_VOTES = 8


def _weigh_thumbs_by_variation(weights: np.ndarray, thumbs: list[tuple[int, str, bool]]) -> int:
    """Scale each voter's 👍/👎 by how much they vary; returns how many voters were muted.

    A person whose thumbs always go one way (every GIF 👎, or every GIF 👍) says nothing
    about which GIF is better, yet each of their votes moves one GIF against the reference
    item, and posted GIFs are the top of the ranking: ten always-👎 users measurably pulled the
    best GIFs down (docs/learning-loop.md). Their weight is their minority share over
    THUMB_MIN_MINORITY, capped at 1, so a mixed voter counts fully and a one-note voter
    fades out. Sends and polls are not affected.
    """
    if not thumbs:
        return 0
    per_user: dict[str, list[int]] = {}
    ups: Counter[str] = Counter()
    for row, who, up in thumbs:
        per_user.setdefault(who, []).append(row)
        ups[who] += bool(up)
    muted = 0
    for who, rows in per_user.items():
        n = len(rows)
        if n < THUMB_MIN_VOTES:
            continue
        minority = min(ups[who], n - ups[who]) / n
        scale = min(1.0, minority / THUMB_MIN_MINORITY)
        if scale < 1.0:
            weights[rows] *= scale
            muted += 1
    return muted


def latest_id(engine: Engine) -> int:
    """The highest comparison id (0 when the ledger is empty)."""
    with session_scope(engine) as s:
        return int(s.scalar(select(func.max(Comparison.id))) or 0)


def count_since(engine: Engine, after_id: int) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).where(Comparison.id > after_id)) or 0)


def stats(db: Engine | Session, workspace: tuple[str, str] | None = None) -> dict:
    """Counts by source and by emotion, for the admin pages and `moodgif retrain history`;
    of one (platform, workspace)'s comparisons when given (a chat admin's `stats`)."""
    where = ([Comparison.platform == workspace[0], Comparison.workspace == workspace[1]]
             if workspace is not None else [])
    with unit_of_work(db) as s:
        by_source = dict(s.execute(
            select(Comparison.source, func.count()).where(*where).group_by(Comparison.source)).all())
        by_emotion_raw = dict(s.execute(
            select(Comparison.emotion, func.count()).where(*where).group_by(Comparison.emotion)).all())
        ties = int(s.scalar(select(func.count()).where(Comparison.tie.is_(True), *where)) or 0)
        voters = int(s.scalar(select(func.count(func.distinct(Comparison.who)))
                              .where(Comparison.who != "", *where)) or 0)
        last = s.scalar(select(func.max(Comparison.created_at)).where(*where))
        max_id = int(s.scalar(select(func.max(Comparison.id)).where(*where)) or 0)
    by_emotion = {NAMES[e]: int(n) for e, n in sorted(by_emotion_raw.items()) if 0 <= e < N_EMOTIONS}
    return {
        "total": int(sum(by_source.values())),
        "by_source": {k: int(v) for k, v in sorted(by_source.items())},
        "by_emotion": by_emotion,
        "ties": ties,
        "people": voters,
        "last_at": last.isoformat() if last else None,
        "max_id": max_id,
    }
