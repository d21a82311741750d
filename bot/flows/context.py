"""What every flow shares: settings, the database, the clock, the score matrix, the intent
parser, and the per-process caches (GIF cards, request readings).

`CoreContext.for_user` is the one way a flow serves a person: it runs the flow's function in
a worker thread, in ONE database transaction (a `Session` handed down to every query and
write of that action, committed once at the end), with the request path's short lock wait.
A database locked by another process becomes a polite "busy" reply, not a stall or a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import JSON, String, bindparam, cast, literal_column, null, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, GifCard, Reply
from bot.flows.cards import CardCache
from bot.flows.readings import ReadingCache
from bot.flows.switches import SWITCH_SURE

# One length limit for a request: the parser reads no further, the core refuses longer.
from bot.intent import MAX_CHARS as MAX_TEXT_CHARS
from bot.intent import drop_terminal_codes
from bot.learned_phrases import is_sure, learned_feeling, memory_since, phrase_key, read_as_learned
from bot.phrase_book import PhraseBook, reads_alike
from bot.ranking import Ranker
from bot.scoped_settings import SCOPED_ROWS, resolve_rows, scope_params
from bot.topics import Reading
from scorer.pool_owners import OPERATOR
from scorer.settings import ChannelSettings, Settings
from scorer.store import Impression, is_busy_error, request_path, session_scope
from training.comparisons import NotPooled, user_hash

log = logging.getLogger("moodgif.bot.core")

BUSY_TEXT = "I'm busy for a moment (the database is locked by another job). Please try again."
# Controls, zero-width and direction overrides, and lone surrogates (no database stores them)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_LEADING_COMMAND = re.compile(r"^/?gif(?=\s|$)\s*", re.IGNORECASE)  # not "/gif-admin"

# What a request or shuffle reads first, in one statement (on PostgreSQL one round trip, not
# two): the channel's scoped settings rows (part "s") and the GIFs posted in it recently
# (part "r", bot.session.RECENT_GIFS; GROUP BY, not DISTINCT: json has no equality).
_SCOPED_AND_RECENT = union_all(
    SCOPED_ROWS.add_columns(literal_column("'s'").label("part")),
    select(Impression.gif_sha, cast(null(), String), cast(null(), JSON),
           literal_column("'r'").label("part"))
    .where(Impression.platform == bindparam("platform"),
           Impression.workspace == bindparam("workspace"),
           Impression.channel == bindparam("channel"), Impression.shown_at >= bindparam("since"))
    .group_by(Impression.gif_sha),
)


def clean_text(text: str) -> str:
    """Drop control and direction-override characters, squeeze whitespace, drop `/gif`."""
    text = unicodedata.normalize("NFC", text or "")
    text = _CONTROL.sub("", drop_terminal_codes(text))
    text = _SPACES.sub(" ", text).strip()
    return _LEADING_COMMAND.sub("", text).strip()


def _learnable(reading: Reading) -> bool:
    """Whether people's Sends may change this reading: not where the parser is sure of a
    feeling word ("happy", "so mad"), which stands whatever they sent, nor help."""
    return not is_sure(reading, SWITCH_SURE) and reading.intent.kind in ("match", "did_you_mean", "unknown")


def uncounted(what: str, exc: Exception) -> str:
    """Why a vote or poll answer was not counted, in the user's words (the ledger's own
    reason names GIF ids and is for the log)."""
    log.info("%s not counted: %s", what, exc)
    if isinstance(exc, NotPooled):
        return f"That {what} was not counted: that GIF is no longer in any pool here."
    return f"That {what} could not be counted."


def metric(name: str, *labels: str, value: float = 1.0) -> None:
    """Count on a Prometheus metric; best effort, never a reason to fail a request."""
    try:
        from bot import health

        if name == "SUGGEST_LATENCY":
            health.SUGGEST_LATENCY.observe(value)
        elif name == "REQUESTS":
            health.REQUESTS.labels(*labels).inc(value)
        elif name == "VOTES":
            health.VOTES.labels(*labels).inc(value)
        elif name == "SENDS":
            health.SENDS.labels(*labels).inc(value)
        else:
            raise KeyError(name)
    except Exception:
        log.debug("metric %s failed", name, exc_info=True)


class CoreContext:
    """One per process, shared by every flow of a `BotCore`."""

    def __init__(self, settings: Settings, engine: Engine, *, intent_parser: Any = None,
                 clock: Callable[[], float] | None = None, ranker: Ranker | None = None,
                 seed: int | None = None) -> None:
        self.settings = settings
        self.engine = engine
        if clock is None:  # the database's clock: hosts sharing it agree on session times
            from bot.dbclock import DbClock

            clock = DbClock(engine)
        self.clock = clock
        self.ranker = ranker or Ranker(engine, background=True)
        self.cooldown = sess.Cooldown(clock)
        self._parser = intent_parser
        self._parser_lock = threading.Lock()
        self._rand = random.Random(seed)
        self._rand_lock = threading.Lock()
        # One generator for every ranking (numpy's Generator locks its bit generator per
        # call, so worker threads may share it): seeding a new one per request
        # (SeedSequence) cost more than the request's draws
        self._np_rng = np.random.default_rng(self._rand.getrandbits(64))
        self._cards = CardCache()
        self._readings = ReadingCache()
        self.phrases = PhraseBook(self._learned_keys, self._likeness_vectors, lambda key: self.parser.parse(key))

    # ------------------------------------------------------------------ plumbing
    @property
    def parser(self) -> Any:
        if self._parser is None:
            with self._parser_lock:
                if self._parser is None:
                    from bot.intent import get_parser

                    self._parser = get_parser(self.settings)
        return self._parser

    def warm_thread(self) -> Any:
        """The parser's background model loading, if one was started."""
        return getattr(self._parser, "_warm_thread", None)

    async def for_user(self, fn: Callable[..., Any], *args: Any, quiet: bool = False) -> Any:
        """`fn(db, *args)` in a worker thread, as one unit of work (`quiet`: an unasked offer
        or poll is simply skipped when the database is busy)."""
        try:
            return await asyncio.to_thread(self.unit, fn, *args)
        except OperationalError as exc:
            if not is_busy_error(exc):
                raise
            log.warning("database busy (locked by another process): %s answered 'busy'",
                        getattr(fn, "__name__", "request"))
            return None if quiet else Reply(kind="error", text=BUSY_TEXT)

    def unit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(db, *args)` in one transaction, with the request path's short lock wait. A
        double click that lost a race to a unique key is run once more: it then sees the
        winner's row (one vote per person per post)."""
        with request_path():
            for attempt in range(2):
                try:
                    with session_scope(self.engine) as db:
                        return fn(db, *args)
                except IntegrityError:
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def now(self) -> dt.datetime:
        return sess.to_datetime(self.clock())

    def rng(self) -> np.random.Generator:
        return self._np_rng

    def chance(self, p: float) -> bool:
        with self._rand_lock:
            return self._rand.random() < p

    def who(self, actor: Actor) -> str:
        """The actor's salted hash. Not memoised: the salt is read once per process
        (`training.comparisons`), and a hash then costs about 5 us."""
        return user_hash(self.engine, self.settings, actor.platform, actor.user_id)

    def report_intent(self, ready: bool, detail: str) -> None:
        """/readyz's "intent": not ready while the sentence model loads at start."""
        try:
            from bot.health import get_health

            get_health().set_component("intent", ready, detail)
        except Exception:  # health is best effort, never a reason to fail
            log.debug("health report failed", exc_info=True)

    def report_scores(self, matrix: Any) -> None:
        try:
            from bot.health import get_health

            detail = (f"{matrix.size} GIFs, model version {matrix.model_version_id}, "
                      f"fit {matrix.fit_id}")
            get_health().set_component("scores", True, detail)
        except Exception:  # metrics are best effort, never a reason to fail a request
            log.debug("health report failed", exc_info=True)

    # ------------------------------------------------------------------ cards
    def cards(self, db: Session | None, shas: Sequence[str], emotion: str) -> tuple[GifCard, ...]:
        """How adapters render these GIFs, in order (GIFs no longer stored are left out).
        Cards are cached: a GIF's file, size and credit never change under its sha256."""
        return self._cards.cards(db, self.engine, self.settings, shas, emotion)

    # ------------------------------------------------------------------ reading a request
    def read(self, query: str, viewer: str = OPERATOR) -> Reading:
        """The request's feeling and topic against the current snapshot's words (cached per
        query and snapshot, so a preview's buttons re-read it for free), as `viewer`
        (`Actor.pool_owner`) may see them: words only other workspaces' GIFs have read as words
        no GIF has, or every answer and hint would tell of those pools."""
        matrix = self.ranker.matrix()
        return self._readings.read(query, matrix.topics, lambda: self.parser, viewer,
                                   matrix.visible_rows(viewer))

    def teaches(self, key: str) -> bool:
        """Whether people's Sends of these words change how they are read (`_learnable`)."""
        return _learnable(self.read(key))

    def read_here(self, db: Session, actor: Actor, query: str, scoped: ChannelSettings) -> Reading:
        """`read`, with the feeling as the asker or people in this workspace sent the same
        words before (bot.learned_phrases), or other words that read alike (bot.phrase_book),
        where the reading admits doubt."""
        reading = self.read(query, actor.pool_owner)
        since = memory_since(self.settings, self.now())
        if not scoped.learn_phrases or since is None or not _learnable(reading):
            return reading
        key = phrase_key(query)
        latest = sess.latest_sends_for(db, actor.platform, actor.workspace, key, since)
        like = ""
        if not latest:  # other words for something people here sent (bot.phrase_book)
            near = self.phrases.nearest(actor.platform, actor.workspace,
                                        lambda: self._likeness_vectors([query]), key)
            if near is not None and reads_alike(reading.intent, near.first):
                like = near.key
                latest = sess.latest_sends_for(db, actor.platform, actor.workspace, like, since)
        learned = learned_feeling(latest, self.who(actor), reading, sure=SWITCH_SURE)
        if learned is None:
            return reading
        return read_as_learned(reading, dataclasses.replace(learned, like=like) if like else learned)

    def _likeness_vectors(self, texts: list[str]) -> Any:
        """The parser's likeness vectors (bot.phrase_book); None with one that has none."""
        likeness_vectors = getattr(self.parser, "likeness_vectors", None)
        return likeness_vectors(texts) if likeness_vectors is not None else None

    def _learned_keys(self, platform: str, workspace: str) -> list[str]:
        since = memory_since(self.settings, self.now())
        if since is None:
            return []
        with session_scope(self.engine) as db:
            return sess.phrase_keys(db, platform, workspace, since)

    def scoped(self, db: Session, actor: Actor) -> ChannelSettings:
        """Every scoped setting for the actor's channel (one query)."""
        return sess.get_all_scoped(db, self.settings, actor.platform, actor.workspace,
                                   actor.channel)

    def recent_since(self) -> dt.datetime | None:
        """Posts since when the ranker does not offer again; None: no repeat window."""
        hours = self.settings.ranking.repeat_window_hours
        return self.now() - dt.timedelta(hours=hours) if hours > 0 else None

    def scoped_and_recent(self, db: Session, actor: Actor) -> tuple[ChannelSettings, list[str]]:
        """`scoped` and the channel's recently posted GIFs (bot.session.recent_in_channel),
        read by one statement."""
        since = self.recent_since()
        if since is None:
            return self.scoped(db, actor), []
        params = {**scope_params(actor.platform, actor.workspace, actor.channel), "since": since}
        rows, recent = [], []
        for a, b, v, part in db.connection().execute(_SCOPED_AND_RECENT, params):
            if part == "s":
                rows.append((a, b, v))
            else:
                recent.append(a)
        return resolve_rows(self.settings, rows), recent


__all__ = ["BUSY_TEXT", "MAX_TEXT_CHARS", "CoreContext", "clean_text", "metric"]
