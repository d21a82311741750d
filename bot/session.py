"""Previews, polls, posts and feedback: the state behind the buttons, and the scoped settings.

Everything here is synchronous and talks to the database; `bot.core.BotCore` calls it from
worker threads. State lives in the database (`chat_sessions`, `posts`, `impressions`), not
in process memory, so a preview survives a restart and any bot process can serve a click.

- A **preview** is a `chat_sessions` row of kind "preview": who asked (a salted user hash),
  where, for which emotion, every GIF shown so far (`shown`) and those on screen (`current`).
  It is open until sent, cancelled or `preview_ttl_s` passes. The open -> sent step is one
  conditional UPDATE, so a double click on Send posts once.
- A **post** is a GIF sent publicly from a preview; people vote on it.
- A **poll** is a `chat_sessions` row of kind "poll" with the two GIFs in `current`.
- **Scoped settings** (a channel row beats a workspace row beats the global setting) are
  `bot.scoped_settings`; their functions are re-exported here for the chat flows.
- **Cooldown**: an in-memory per (platform, user) token bucket, one token per
  `cooldown_s`; it only limits new requests, never votes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.orm import Session

from bot.scoped_settings import (  # noqa: F401 (re-exported: the chat flows' one import)
    ScopedSettingError,
    get_all_scoped,
    get_scoped,
    list_scoped,
    parse,
    set_scoped,
)
from scorer.store import ChatSession, Comparison, Impression, Post, unit_of_work

# Every function takes the caller's Session (one user action = one transaction, committed by
# the caller: `bot.flows`) or an Engine (a transaction of its own: tests, housekeeping).
Db = Engine | Session

# Plain Core INSERTs, built once: every request or Send writes these rows, and the ORM's
# bulk-insert path (statement building, cache keys, the mapper's bookkeeping) costs more
# than SQLite takes to store them.
_INSERT_SESSION = ChatSession.__table__.insert()
_INSERT_POST = Post.__table__.insert().returning(Post.__table__.c.id)
_INSERT_IMPRESSION = Impression.__table__.insert()

# Built once: every request runs it, and building a statement costs more than SQLite
# takes to answer it (bind parameters carry the values).
RECENT_GIFS = select(Impression.gif_sha).where(
    Impression.platform == bindparam("platform"), Impression.workspace == bindparam("workspace"),
    Impression.channel == bindparam("channel"), Impression.shown_at >= bindparam("since"),
).distinct()


# ---------------------------------------------------------------------------------------
# cooldown


class Cooldown:
    """Per-key token bucket: one token per `interval` seconds, at most `burst` saved up."""

    def __init__(self, clock: Callable[[], float], burst: float = 1.0) -> None:
        self.clock = clock
        self.burst = burst
        self._state: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str], interval: float) -> float:
        """Take a token: 0.0 when allowed, else the seconds to wait (nothing is taken)."""
        if interval <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) / interval)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                if len(self._state) > 100_000:  # forget idle users so memory stays bounded
                    self._forget_idle(now, interval)
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) * interval

    def _forget_idle(self, now: float, interval: float) -> None:
        for k, (_tokens, at) in list(self._state.items()):
            if now - at > interval * self.burst:
                del self._state[k]


# ---------------------------------------------------------------------------------------
# previews, polls and posts


def to_datetime(t: float) -> dt.datetime:
    """A clock() value as the naive-UTC datetime the store keeps."""
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None)


def new_id() -> str:
    return secrets.token_urlsafe(12)  # 16 URL-safe characters: fits custom_id / action values


@dataclass(frozen=True)
class SessionState:
    id: str
    kind: str
    platform: str
    workspace: str
    channel: str
    user_hash: str
    query: str
    emotion: int
    shown: tuple[str, ...]
    current: tuple[str, ...]
    state: str
    expires_at: dt.datetime
    topic: str = ""  # a request that named no feeling: its topic words (ChatSession.topic)

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at


def _state(row: ChatSession | Row) -> SessionState:
    return SessionState(row.id, row.kind, row.platform, row.workspace, row.channel, row.user_hash,
                        row.query, int(row.emotion), tuple(row.shown or ()),
                        tuple(row.current or ()), row.state, row.expires_at, row.topic or "")


def create_session(db: Db, *, kind: str, platform: str, workspace: str, channel: str,
                   user_hash: str, query: str, emotion: int, shas: Sequence[str],
                   now: dt.datetime, ttl_s: float, query_key: str = "", topic: str = "") -> SessionState:
    """`query_key`: the words as `bot.learned_phrases` matches them, where a Send would say
    which feeling a person wanted for them; "" where it would not (a topic alone, a poll).
    `topic`: the topic words of a request that named no feeling (its emotion is a stand-in)."""
    state = SessionState(new_id(), kind, platform[:16], workspace[:64], channel[:64], user_hash,
                         query[:500], int(emotion), tuple(shas), tuple(shas), "open",
                         now + dt.timedelta(seconds=ttl_s), topic[:200])
    with unit_of_work(db) as s:
        s.connection().execute(_INSERT_SESSION, [{
            "id": state.id, "kind": kind, "platform": state.platform, "workspace": state.workspace,
            "channel": state.channel, "user_hash": user_hash, "query": state.query,
            "query_key": query_key, "topic": state.topic,
            "emotion": state.emotion, "shown": list(shas), "current": list(shas),
            "state": "open", "created_at": now, "updated_at": now,
            "expires_at": state.expires_at}])
    return state


_LOAD_SESSION = select(*ChatSession.__table__.c).where(ChatSession.id == bindparam("id"))
_LOAD_SESSION_LOCKED = _LOAD_SESSION.with_for_update()
# SQLite's stand-in for FOR UPDATE: a write that changes nothing, made before the read
_TOUCH_SESSION = (update(ChatSession.__table__).where(ChatSession.id == bindparam("sid"))
                  .values(state=ChatSession.__table__.c.state))
_ADVANCE_SESSION = (update(ChatSession.__table__)
                    .where(ChatSession.id == bindparam("sid"), ChatSession.state == "open")
                    .values(shown=bindparam("shown"), current=bindparam("current"),
                            updated_at=bindparam("now")))
# open -> another state, only while open: a double click on Send posts once
_CLOSE_SESSION = (update(ChatSession.__table__)
                  .where(ChatSession.id == bindparam("sid"), ChatSession.state == "open")
                  .values(state=bindparam("to_state"), updated_at=bindparam("now")))


def load_session(db: Db, session_id: str, *, lock: bool = False) -> SessionState | None:
    """The session; `lock`: the row stays locked to the end of the caller's transaction
    (what a click that will write to it asks for). PostgreSQL locks the row (FOR UPDATE);
    SQLite ignores FOR UPDATE, so there a write comes first: it takes the database's write
    lock before the read, and a second click waits for the first to commit (two quick
    Shuffles once showed the same GIF, and Send posted one no longer on screen)."""
    if not isinstance(session_id, str) or not 0 < len(session_id) <= 32:
        return None
    with unit_of_work(db) as s:
        conn = s.connection()
        if lock and conn.dialect.name == "sqlite":
            conn.execute(_TOUCH_SESSION, {"sid": session_id})
        row = conn.execute(_LOAD_SESSION_LOCKED if lock else _LOAD_SESSION,
                           {"id": session_id}).first()
        return _state(row) if row is not None else None


def advance_session(db: Db, session_id: str, new: Sequence[str], now: dt.datetime, *,
                    loaded: SessionState | None = None) -> SessionState | None:
    """Shuffle: put `new` on screen and add it to `shown`, only while the session is open
    (the row locked while it is read and written: two clicks do not lose each other's GIFs).
    `loaded`: the session as this transaction read it with `load_session(lock=True)`."""
    with unit_of_work(db) as s:
        conn = s.connection()
        old = loaded if loaded is not None else load_session(s, session_id, lock=True)
        if old is None or old.state != "open":
            return None
        shown = [*old.shown, *[x for x in new if x not in old.shown]]
        res = conn.execute(_ADVANCE_SESSION, {"sid": session_id, "shown": shown,
                                              "current": list(new), "now": now})
        if (res.rowcount or 0) != 1:
            return None
        return dataclasses.replace(old, shown=tuple(shown), current=tuple(new))


def close_session(db: Db, session_id: str, to_state: str, now: dt.datetime) -> bool:
    """open -> to_state in one conditional UPDATE; False if someone else got there first."""
    with unit_of_work(db) as s:
        res = s.connection().execute(_CLOSE_SESSION,
                                     {"sid": session_id, "to_state": to_state, "now": now})
        return (res.rowcount or 0) == 1


def send_session(db: Db, session: SessionState, sha: str, now: dt.datetime,
                 also: Callable[[Session, int], None] | None = None) -> int | None:
    """Close an open preview as sent and create its post, in one transaction.

    ``also(s, post_id)`` adds more rows to that transaction (the Send's comparisons), so a
    crash in between leaves neither. Returns the new post id, or None when the preview was
    no longer open (a double click on Send, or a click racing a cancel): then nothing is
    written.
    """
    with unit_of_work(db) as s:
        res = s.connection().execute(_CLOSE_SESSION,
                                     {"sid": session.id, "to_state": "sent", "now": now})
        if (res.rowcount or 0) != 1:
            return None
        post_id = _add_post(s, session, sha, now)
        if also is not None:
            also(s, post_id)
        return post_id


def skipped_for(session: SessionState, sent: str) -> list[str]:
    """Every GIF the user saw in this preview and did not send: each loses to the sent one."""
    return [g for g in session.shown if g != sent]


def _add_post(s: Session, session: SessionState, sha: str, now: dt.datetime) -> int:
    where = {"platform": session.platform, "workspace": session.workspace,
             "channel": session.channel, "gif_sha": sha}
    conn = s.connection()
    post_id = conn.execute(_INSERT_POST, {
        **where, "session_id": session.id, "emotion": session.emotion,
        "requested_by": session.user_hash, "created_at": now}).scalar_one()
    conn.execute(_INSERT_IMPRESSION, [{**where, "shown_at": now}])
    return int(post_id)


def take_back_send(db: Db, post_id: int, session_id: str | None, now: dt.datetime,
                   sender: str = "") -> int:
    """A Send its sender took back: its comparisons leave the ledger and its preview is
    "undone", which neither the learned words (`latest_sends_for`: Sends only) nor the send
    bar's judgements (`training.judgements`: sent or cancelled previews) read: the whole
    decision is withdrawn. The post row stays: votes cast before the Undo were people's
    judgements of the GIF and stay too; later ones are refused (`FeedbackFlow.vote`). Returns
    the comparisons removed. The `sender`'s own 👍/👎 on the post goes too: the page that took
    the Send back no longer shows the post, so they could not withdraw it."""
    with unit_of_work(db) as s:
        res = s.execute(delete(Comparison).where(Comparison.post_id == post_id, Comparison.source == "send"))
        if sender:
            s.execute(delete(Comparison).where(Comparison.post_id == post_id, Comparison.who == sender,
                                               Comparison.source.in_(("vote", "reaction"))))
        if session_id:
            s.execute(update(ChatSession).where(ChatSession.id == session_id, ChatSession.state == "sent")
                      .values(state="undone", updated_at=now))
        return int(res.rowcount or 0)


def unpost_send(db: Db, post_id: int) -> bool:
    """A Send the platform refused to post (the bot is not in the channel, an outage): it
    never happened. Its comparisons, post and impression go, and its preview is open again,
    so the person can Send once the bot may post (a vote or the learned words never see it).
    Returns whether the post was there to take back."""
    with unit_of_work(db) as s:
        post = s.get(Post, post_id)
        if post is None:
            return False
        s.execute(delete(Comparison).where(Comparison.post_id == post_id))
        s.execute(delete(Impression).where(
            Impression.platform == post.platform, Impression.workspace == post.workspace,
            Impression.channel == post.channel, Impression.gif_sha == post.gif_sha,
            Impression.shown_at == post.created_at))
        if post.session_id:
            s.execute(update(ChatSession).where(ChatSession.id == post.session_id, ChatSession.state == "sent")
                      .values(state="open"))
        s.delete(post)
        return True


def attach_message(db: Db, post_id: int, message_ref: str) -> bool:
    with unit_of_work(db) as s:
        res = s.execute(update(Post).where(Post.id == post_id).values(message_ref=message_ref[:100]))
        return (res.rowcount or 0) == 1


_POST_BY_ID = select(*Post.__table__.c).where(Post.id == bindparam("id"))
_POST_BY_REF = (select(*Post.__table__.c)
                .where(Post.platform == bindparam("platform"), Post.message_ref == bindparam("ref"))
                .order_by(Post.id.desc()).limit(1))


def find_post(db: Db, *, post_id: int | None = None, platform: str = "",
              message_ref: str | None = None) -> Row | None:
    """The post's row (its columns as attributes), by id or by the platform's message id."""
    with unit_of_work(db) as s:
        if post_id is not None:
            return s.connection().execute(_POST_BY_ID, {"id": post_id}).first()
        if message_ref:
            return s.connection().execute(
                _POST_BY_REF, {"platform": platform[:16], "ref": message_ref[:100]}).first()
    return None


def recent_in_channel(db: Db, platform: str, workspace: str, channel: str,
                      since: dt.datetime) -> list[str]:
    """GIFs posted in this channel since `since`: the ranker does not offer them again."""
    with unit_of_work(db) as s:
        return list(s.connection().execute(RECENT_GIFS, {
            "platform": platform[:16], "workspace": workspace[:64], "channel": channel[:64],
            "since": since}).scalars())


# Built once: requests the parser is unsure of run it. Newest first, so the first row per
# person is their latest Send; ix_chat_sessions_phrase ends in updated_at, so the newest
# `limit` rows of a phrase sent a million times are read from the index in order, not sorted.
_PHRASE_SENDS = (select(ChatSession.user_hash, ChatSession.emotion)
                 .where(ChatSession.platform == bindparam("platform"),
                        ChatSession.workspace == bindparam("workspace"),
                        ChatSession.query_key == bindparam("key"), ChatSession.kind == "preview",
                        ChatSession.state == "sent", ChatSession.updated_at >= bindparam("since"))
                 .order_by(ChatSession.updated_at.desc()).limit(bindparam("limit")))


def latest_sends_for(db: Db, platform: str, workspace: str, key: str, since: dt.datetime,
                     limit: int = 200) -> dict[str, int]:
    """Each person's latest sent feeling for these words in this workspace since `since`
    (user hash -> emotion index), from the newest `limit` Sends."""
    if not key:
        return {}
    latest: dict[str, int] = {}
    with unit_of_work(db) as s:
        for user_hash, emotion in s.connection().execute(_PHRASE_SENDS, {
                "platform": platform[:16], "workspace": workspace[:64], "key": key,
                "since": since, "limit": limit}):
            latest.setdefault(user_hash, int(emotion))
    return latest


def phrase_sends(db: Db, platform: str, workspace: str, since: dt.datetime,
                 limit: int = 50_000) -> list[tuple[str, str, int]]:
    """(key, user hash, emotion) of the workspace's newest `limit` keyed Sends since `since`,
    newest first: what `bot.learned_phrases.workspace_phrases` lists for an admin."""
    q = (select(ChatSession.query_key, ChatSession.user_hash, ChatSession.emotion)
         .where(ChatSession.platform == platform[:16], ChatSession.workspace == workspace[:64],
                ChatSession.query_key != "", ChatSession.kind == "preview", ChatSession.state == "sent",
                ChatSession.updated_at >= since)
         .order_by(ChatSession.updated_at.desc()).limit(limit))
    with unit_of_work(db) as s:
        return [(k, u, int(e)) for k, u, e in s.execute(q)]


def phrase_keys(db: Db, platform: str, workspace: str, since: dt.datetime,
                sends: int = 5_000) -> list[str]:
    """The keys of the workspace's newest `sends` keyed Sends since `since`, newest first and
    each once: what `bot.phrase_book` finds a request's paraphrase among."""
    return list(dict.fromkeys(k for k, _, _ in phrase_sends(db, platform, workspace, since, sends)))


def active_workspaces(db: Db, since: dt.datetime, limit: int = 50) -> list[tuple[str, str, int, dt.datetime]]:
    """(platform, workspace, previews, last active) of the workspaces with previews since
    `since`, the most recently active first: the web admin's list of workspaces."""
    last = func.max(ChatSession.updated_at)
    with unit_of_work(db) as s:
        rows = s.execute(select(ChatSession.platform, ChatSession.workspace, func.count(), last)
                         .where(ChatSession.updated_at >= since, ChatSession.kind == "preview")
                         .group_by(ChatSession.platform, ChatSession.workspace)
                         .order_by(last.desc()).limit(limit)).all()
    return [(p, w, int(n), at) for p, w, n, at in rows]


def forget_phrase(db: Db, platform: str, workspace: str, key: str) -> int:
    """Unkey every session of these words in this workspace: its Sends no longer teach."""
    if not key:
        return 0
    with unit_of_work(db) as s:
        res = s.execute(update(ChatSession).where(
            ChatSession.platform == platform[:16], ChatSession.workspace == workspace[:64],
            ChatSession.query_key == key).values(query_key=""))
        return int(res.rowcount or 0)


def last_post_in(db: Db, platform: str, workspace: str, channel: str) -> str | None:
    """The GIF most recently posted in this channel (an admin's `hide last`)."""
    with unit_of_work(db) as s:
        return s.execute(select(Post.gif_sha).where(
            Post.platform == platform[:16], Post.workspace == workspace[:64], Post.channel == channel[:64],
        ).order_by(Post.id.desc()).limit(1)).scalar()


def recent_poll_pairs(db: Db, platform: str, workspace: str, emotion: int,
                      since: dt.datetime, limit: int = 500) -> list[tuple[str, str]]:
    """The GIF pairs this workspace was polled about on `emotion` since `since` (newest first):
    the poll picker skips them so one pair is not asked again and again between retrains."""
    with unit_of_work(db) as s:
        rows = s.execute(
            select(ChatSession.current).where(
                ChatSession.kind == "poll", ChatSession.platform == platform[:16],
                ChatSession.workspace == workspace[:64], ChatSession.emotion == emotion,
                ChatSession.created_at >= since,
            ).order_by(ChatSession.created_at.desc()).limit(limit)
        ).all()
    return [(c[0], c[1]) for (c,) in rows if c and len(c) == 2]


def expire_old_sessions(db: Db, now: dt.datetime) -> int:
    """Mark open sessions past their time as expired (housekeeping; clicks check anyway)."""
    with unit_of_work(db) as s:
        res = s.execute(update(ChatSession).where(ChatSession.state == "open",
                                                  ChatSession.expires_at <= now)
                        .values(state="expired", updated_at=now))
        return int(res.rowcount or 0)


def forget_old_words(db: Db, before: dt.datetime, since: dt.datetime | None = None) -> int:
    """Blank the words (`query`, `query_key`) of sessions closed before `before` (and, when
    given, not before `since`: the previous call's `before`, so each call reads only the new
    slice of `ix_chat_sessions_updated`). A closed session needs its words for nothing but
    `bot.learned_phrases`, which reads no further back than this."""
    cond = [ChatSession.updated_at < before, ChatSession.state != "open",
            (ChatSession.query != "") | (ChatSession.query_key != "")]
    if since is not None:
        cond.append(ChatSession.updated_at >= since)
    with unit_of_work(db) as s:
        res = s.execute(update(ChatSession).where(*cond).values(query="", query_key=""))
        return int(res.rowcount or 0)


def forget_impressions(db: Db, before: dt.datetime) -> int:
    with unit_of_work(db) as s:
        res = s.execute(delete(Impression).where(Impression.shown_at < before))
        return int(res.rowcount or 0)
