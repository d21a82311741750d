"""The bot core: the one facade every adapter calls (Slack, Discord, the web playground, tests).

Adapters translate a platform event into a call here with an `Actor` and render the `Reply`
that comes back (`bot.events`). Nothing here knows a platform. Every method is async and
pushes database and numpy work to a worker thread (`asyncio.to_thread`), so a Discord
heartbeat or a Slack 3-second ack is never held up by a query or a ranking.

What a user can do, and what it becomes:

- `request("/gif happy")` -> intent -> ranking -> a private preview (Send / Shuffle / Cancel);
  help for an empty request, "did you mean" for an unsure one, a polite wait on cooldown.
- `shuffle` -> the next best GIF not yet shown in this preview nor recently in the channel.
- `send` -> a public post; the sent GIF beats every GIF skipped in this preview (ledger).
- `vote` (👍/👎 button or reaction) -> the post's GIF against the emotion's reference
  item; one vote per person per post, a changed vote replaces the old one.
- `answer_poll` -> "which is more X?" left / right / neither.
Bad input (an expired or someone else's preview, a double click, 10 kB of text, control
characters) gets a polite Reply, and nothing is ever recorded twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bot import session as sess
from bot.events import Actor, GifCard, PollView, PostView, PreviewView, Reply, credit_line
from bot.ranking import Ranked, Ranker, poll_pair, rank
from bot.topics import Reading, missing_note, rank_topic, read_request
from scorer.emotions import INDEX, N_EMOTIONS, NAMES
from scorer.settings import RATINGS, Settings
from scorer.store import (
    Gif,
    Pool,
    PoolGif,
    Post,
    RetrainRun,
    is_busy_error,
    request_path,
    session_scope,
)
from scorer.versions import active_version
from training.comparisons import LedgerError, add_send, record_poll, record_vote, user_hash

log = logging.getLogger("moodgif.bot.core")

BUSY_TEXT = "I'm busy for a moment (the database is locked by another job). Please try again."
MAX_TEXT_CHARS = 1000  # longer than any real "/gif ..." request; 10 kB gets a polite no
WATCH_MAX_CHARS = 300
WATCH_MIN_CONFIDENCE = 0.8  # an unasked offer must be a clear case
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
_LEADING_COMMAND = re.compile(r"^/?gif\b\s*", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Drop control and direction-override characters, squeeze whitespace, drop `/gif`."""
    text = unicodedata.normalize("NFC", text or "")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _LEADING_COMMAND.sub("", text).strip()


@dataclass
class Job:
    """A background admin job (pool add, retrain): its state is shown by `admin stats`."""

    id: int
    what: str
    state: str = "running"  # running done failed
    detail: str = ""
    started: float = field(default_factory=time.time)
    task: asyncio.Task | None = field(default=None, repr=False)


class BotCore:
    """One instance per process; shared by every adapter in it."""

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
        self._hashes: dict[tuple[str, str], str] = {}
        self._watch_offered: dict[tuple[str, str], float] = {}
        self._cards: OrderedDict[str, Gif] = OrderedDict()
        self._cards_lock = threading.Lock()
        self._jobs: list[Job] = []
        self._readings: OrderedDict[tuple[str, int], Reading] = OrderedDict()
        self._readings_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    @property
    def parser(self) -> Any:
        if self._parser is None:
            with self._parser_lock:
                if self._parser is None:
                    from bot.intent import get_parser

                    self._parser = get_parser(self.settings)
        return self._parser

    async def _for_user(self, fn: Callable[..., Any], *args: Any, quiet: bool = False) -> Any:
        """Run a user's request in a worker thread with the short database lock wait; a
        database locked by another process becomes a polite "busy" reply, not a stall or a
        500 (`quiet`: an unasked offer or poll is simply skipped)."""
        def run() -> Any:
            with request_path():
                return fn(*args)

        try:
            return await asyncio.to_thread(run)
        except OperationalError as exc:
            if not is_busy_error(exc):
                raise
            log.warning("database busy (locked by another process): %s answered 'busy'",
                        getattr(fn, "__name__", "request"))
            return None if quiet else Reply(kind="error", text=BUSY_TEXT)

    def _now(self) -> dt.datetime:
        return sess.to_datetime(self.clock())

    def _rng(self) -> np.random.Generator:
        with self._rand_lock:
            return np.random.default_rng(self._rand.getrandbits(64))

    def _chance(self, p: float) -> bool:
        with self._rand_lock:
            return self._rand.random() < p

    def _who(self, actor: Actor) -> str:
        key = (actor.platform, actor.user_id)
        h = self._hashes.get(key)
        if h is None:
            h = user_hash(self.engine, self.settings, actor.platform, actor.user_id)
            if len(self._hashes) > 50_000:
                self._hashes.clear()
            self._hashes[key] = h
        return h

    async def warm_up(self) -> None:
        """Load the intent models and the score matrix before the first user waits for them."""
        def work() -> None:
            parser = self.parser
            if hasattr(parser, "warm_up"):
                parser.warm_up()
            self._report_scores(self.ranker.refresh())

        await asyncio.to_thread(work)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Let background loading finish: a thread killed inside torch at interpreter exit
        aborts the process ("terminate called without an active exception")."""
        thread = getattr(self._parser, "_warm_thread", None)
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout_s)
        await asyncio.to_thread(self.ranker.wait_idle, timeout_s)
        for job in self._jobs:
            if job.task is not None and not job.task.done():
                log.info("waiting for admin job %s (%s)", job.id, job.what)
                await asyncio.wait({job.task}, timeout=timeout_s)

    def _report_scores(self, matrix: Any) -> None:
        try:
            from bot.health import get_health

            detail = f"{matrix.size} GIFs, model version {matrix.model_version_id}, fit {matrix.fit_id}"
            get_health().set_component("scores", True, detail)
        except Exception:  # metrics are best effort, never a reason to fail a request
            log.debug("health report failed", exc_info=True)

    @staticmethod
    def _metric(name: str, *labels: str, value: float = 1.0) -> None:
        try:
            from bot import health

            metric = getattr(health, name)
            if name == "SUGGEST_LATENCY":
                metric.observe(value)
            else:
                metric.labels(*labels).inc(value)
        except Exception:
            log.debug("metric %s failed", name, exc_info=True)

    # ------------------------------------------------------------------ cards
    def card(self, sha: str, emotion: str = "") -> GifCard:
        """How an adapter renders one GIF (title, size, file path, public URL if any)."""
        row = self._gif_row(sha)
        if row is None:
            raise KeyError(f"no such GIF: {sha[:16]}")
        return self._to_card(row, emotion)

    def _gif_row(self, sha: str) -> Gif | None:
        with self._cards_lock:
            row = self._cards.get(sha)
            if row is not None:
                self._cards.move_to_end(sha)
                return row
        with session_scope(self.engine) as s:
            row = s.get(Gif, sha)
        if row is not None:
            with self._cards_lock:
                self._cards[sha] = row
                while len(self._cards) > 4096:
                    self._cards.popitem(last=False)
        return row

    def _to_card(self, row: Gif, emotion: str) -> GifCard:
        from scorer.pool import gif_path

        return GifCard(sha256=row.sha256, emotion=emotion, title=row.title or "",
                       source_url=row.source_url, local_path=gif_path(self.settings, row.sha256),
                       bytes=int(row.bytes), width=int(row.width), height=int(row.height),
                       credit=credit_line(row.attribution))

    def _cards_for(self, shas: list[str], emotion: str) -> tuple[GifCard, ...]:
        out = []
        for sha in shas:
            row = self._gif_row(sha)
            if row is not None:
                out.append(self._to_card(row, emotion))
        return tuple(out)

    # ------------------------------------------------------------------ ranking
    def _recent(self, actor: Actor) -> list[str]:
        if self.settings.repeat_window_hours <= 0:
            return []
        since = self._now() - dt.timedelta(hours=self.settings.repeat_window_hours)
        return sess.recent_in_channel(self.engine, actor.platform, actor.workspace,
                                      actor.channel, since)

    def _rank(self, actor: Actor, emotion: int, k: int, scoped: dict[str, Any],
              exclude: tuple[str, ...] = (), reading: Reading | None = None) -> Ranked:
        matrix = self.ranker.matrix()
        recent = self._recent(actor)
        if reading is not None and reading.topic_only and matrix.topics is not None:
            # No feeling named: the topic's GIFs by overall appeal (bot.topics).
            shas, eligible = rank_topic(
                matrix, matrix.topics, reading.rows, k, rng=self._rng(),
                pools=scoped["pools"] or None, ceiling=scoped["rating_ceiling"],
                rate=self.settings.exploration_rate, exclude=exclude, soft_exclude=recent)
            return Ranked(shas=shas, scores=[0.0] * len(shas), means=[0.0] * len(shas),
                          eligible=eligible)
        return rank(matrix, emotion, k, rng=self._rng(), pools=scoped["pools"] or None,
                    ceiling=scoped["rating_ceiling"], exploration=self.settings.exploration,
                    rate=self.settings.exploration_rate, exclude=exclude, soft_exclude=recent,
                    candidates=reading.rows if reading is not None else None)

    def interpret(self, text: str) -> Reading:
        """How a request would be read now (feeling and topic); for hints such as Discord's
        autocomplete. Synchronous and cheap: call it from a worker thread."""
        return self._read(clean_text(text or "")[:MAX_TEXT_CHARS])

    def _read(self, query: str) -> Reading:
        """The request's feeling and topic against the current snapshot's words (cached per
        query and snapshot, so a preview's buttons re-read it for free)."""
        matrix = self.ranker.matrix()
        key = (query, id(matrix.topics))
        with self._readings_lock:
            hit = self._readings.get(key)
            if hit is not None:
                return hit
        if hasattr(self.parser, "word_roles"):
            reading = read_request(self.parser, matrix.topics, query)
        else:  # a parser without word roles (a test double) reads feelings only
            reading = Reading(self.parser.parse(query))
        with self._readings_lock:
            self._readings[key] = reading
            while len(self._readings) > 2048:
                self._readings.popitem(last=False)
        return reading

    def _preview_reply(self, state: sess.SessionState, ranked_eligible: int, *, text: str = "",
                       confidence: float = 1.0, can_shuffle: bool | None = None) -> Reply:
        emotion = NAMES[state.emotion]
        cards = self._cards_for(list(state.current), emotion)
        if can_shuffle is None:
            can_shuffle = ranked_eligible > len(state.shown)
        reading = self._read(state.query) if state.query else None
        view = PreviewView(session_id=state.id, emotion=emotion, query=state.query, cards=cards,
                           can_shuffle=can_shuffle, confidence=confidence,
                           interpretation=reading.describe() if reading else "",
                           topic=" ".join(reading.topic) if reading else "",
                           topic_only=bool(reading and reading.topic_only))
        return Reply(kind="preview", text=text, preview=view)

    # ------------------------------------------------------------------ request
    async def request(self, actor: Actor, text: str) -> Reply:
        """A `/gif ...` request: a preview, help, did-you-mean, or a polite no."""
        return await self._for_user(self._request, actor, text)

    def _request(self, actor: Actor, text: str) -> Reply:
        started = time.perf_counter()
        raw = text or ""
        if len(raw) > MAX_TEXT_CHARS:
            self._metric("REQUESTS", actor.platform, "unknown")
            return Reply(kind="error", text=(
                "That's a lot of text for a GIF request. Try a word or two, like `/gif happy`."))
        query = clean_text(raw)
        reading = self._read(query)
        intent = reading.intent
        if intent.kind == "help" or not query:
            from bot.intent import help_text

            return Reply(kind="help", text=help_text(), choices=NAMES)
        note = missing_note(reading)
        if not reading.topic_only and (intent.kind != "match" or intent.emotion not in INDEX):
            self._metric("REQUESTS", actor.platform, "unknown")
            choices = tuple(e for e, _c in intent.alternatives if e in INDEX)[:3]
            reason = intent.reason or f"I'm not sure which feeling “{query[:60]}” is."
            lead = note + " " if note else ""
            if choices:
                if intent.kind != "did_you_mean":
                    lead += reason.rstrip(".") + ". "
                return Reply(kind="did_you_mean",
                             text=f"{lead}Did you mean {_or_list(choices)}?", choices=choices)
            from bot.intent import help_text

            return Reply(kind="help", text=f"{lead}{reason}\n\n{help_text()}", choices=NAMES)
        emotion = INDEX.get(intent.emotion or "", -1)
        self._metric("REQUESTS", actor.platform, intent.emotion or "topic")
        scoped = sess.get_all_scoped(self.engine, self.settings, actor.platform, actor.workspace,
                                     actor.channel)
        wait = self.cooldown.take((actor.platform, actor.user_id), float(scoped["cooldown_s"]))
        if wait > 0:
            return Reply(kind="cooldown",
                         text=f"Easy there! You can ask for another GIF in {max(1, round(wait))} s.")
        reply = self._open_preview(actor, query, emotion, scoped, confidence=intent.confidence,
                                   text=note, reading=reading)
        if reply.kind == "empty_pool" and reading.rows is not None and emotion >= 0:
            # The topic's GIFs are all filtered out here: say so, and offer the feeling alone.
            word = " ".join(reading.topic)
            reply = self._open_preview(
                actor, query, emotion, scoped, confidence=intent.confidence,
                text=f"No {word} GIFs allowed in this channel; here's {intent.emotion}.",
                reading=Reading(intent))
        self._metric("SUGGEST_LATENCY", value=time.perf_counter() - started)
        return reply

    def _open_preview(self, actor: Actor, query: str, emotion: int, scoped: dict[str, Any], *,
                      confidence: float = 1.0, text: str = "",
                      reading: Reading | None = None) -> Reply:
        ranked = self._rank(actor, emotion, int(scoped["preview_count"]), scoped, reading=reading)
        if not ranked.shas:
            what = (" ".join(reading.topic) if reading is not None and reading.topic_only
                    else NAMES[emotion])
            return Reply(kind="empty_pool", text=(
                f"I have no GIFs for {what} in this channel yet"
                + (" (the pool is empty)." if not self.ranker.matrix().size else
                   " (its pools or rating ceiling leave none).")
                + " An admin can add a pool with `moodgif pool add` or `/gif-admin pools add`."))
        if emotion < 0:  # a topic alone: the session keeps its first GIF's clearest emotion
            emotion = self._clearest_emotion(ranked.shas[0])
        state = sess.create_session(
            self.engine, kind="preview", platform=actor.platform, workspace=actor.workspace,
            channel=actor.channel, user_hash=self._who(actor), query=query, emotion=emotion,
            shas=ranked.shas, now=self._now(), ttl_s=self.settings.preview_ttl_s)
        note = text or (f"({ranked.note})" if ranked.note else "")
        return self._preview_reply(state, ranked.eligible, text=note, confidence=confidence)

    def _clearest_emotion(self, sha: str) -> int:
        matrix = self.ranker.matrix()
        i = matrix.index.get(sha)
        if i is None or not matrix.scored:
            return INDEX["happiness"]
        return int(np.argmax(matrix.mean[:, i]))

    # ------------------------------------------------------------------ the preview's buttons
    def _own_open(self, actor: Actor, session_id: str, kind: str = "preview"
                  ) -> tuple[sess.SessionState | None, Reply | None]:
        """The session if `actor` may act on it now; else the polite Reply to give instead."""
        what = "poll" if kind == "poll" else "preview"
        state = sess.load_session(self.engine, session_id)
        if state is None or state.kind != kind:
            return None, Reply(kind="expired", text=f"That {what} is gone. Ask again with `/gif`.")
        # The same person, in the same workspace and channel: a click forged for another
        # workspace or channel must not post where the preview was never shown.
        if (state.platform != actor.platform or state.user_hash != self._who(actor)
                or state.workspace != actor.workspace or state.channel != actor.channel):
            return None, Reply(kind="forbidden", text=(
                f"That {what} belongs to someone else. Ask for your own with `/gif`."))
        if state.state != "open":
            done = {"sent": "was already sent", "cancelled": "was cancelled",
                    "answered": "was already answered"}.get(state.state, "has expired")
            return None, Reply(kind="expired", text=f"That {what} {done}.")
        if state.expired(self._now()):
            sess.close_session(self.engine, state.id, "expired", self._now())
            return None, Reply(kind="expired",
                               text=f"That {what} has expired. Ask again with `/gif`.")
        return state, None

    async def shuffle(self, actor: Actor, session_id: str) -> Reply:
        return await self._for_user(self._shuffle, actor, session_id)

    def _shuffle(self, actor: Actor, session_id: str) -> Reply:
        state, refusal = self._own_open(actor, session_id)
        if refusal:
            return refusal
        assert state is not None
        scoped = sess.get_all_scoped(self.engine, self.settings, actor.platform, actor.workspace,
                                     actor.channel)
        reading = self._read(state.query) if state.query else None
        if reading is not None and reading.rows is None:
            reading = None
        ranked = self._rank(actor, state.emotion, int(scoped["preview_count"]), scoped,
                            exclude=state.shown, reading=reading)
        if not ranked.shas:
            reply = self._preview_reply(state, 0, can_shuffle=False)
            what = " ".join(reading.topic) if reading is not None and reading.topic_only else NAMES[state.emotion]
            return Reply(kind="exhausted", preview=reply.preview, text=(
                f"That's every {what} GIF I have here. "
                "Send the one you see or cancel."))
        new_state = sess.advance_session(self.engine, state.id, ranked.shas, self._now())
        if new_state is None:  # sent or cancelled meanwhile (a click from another device)
            return Reply(kind="expired", text="That preview is closed.")
        note = f"({ranked.note})" if ranked.note else ""
        return self._preview_reply(new_state, ranked.eligible, text=note)

    async def send(self, actor: Actor, session_id: str, sha: str | None = None) -> Reply:
        return await self._for_user(self._send, actor, session_id, sha)

    def _send(self, actor: Actor, session_id: str, sha: str | None) -> Reply:
        state, refusal = self._own_open(actor, session_id)
        if refusal:
            return refusal
        assert state is not None
        chosen = sha or (state.current[0] if state.current else None)
        if chosen is None or chosen not in state.shown:
            return Reply(kind="error", text="That GIF is not in this preview.")
        who = self._who(actor)
        # No feeling was asked for (a topic-only request): the send says nothing about which
        # GIF is more <emotion>, so it is not put in the ledger.
        topic_only = bool(state.query) and self._read(state.query).topic_only
        added = 0

        def comparisons(s: Any, post_id: int) -> None:  # in the post's transaction
            nonlocal added
            if topic_only:
                return
            try:
                added = add_send(s, emotion=state.emotion, sent=chosen,
                                 skipped=sess.skipped_for(state, chosen), who=who,
                                 platform=actor.platform, workspace=actor.workspace,
                                 channel=actor.channel, post_id=post_id)
            except LedgerError as exc:  # e.g. the GIF left the pool meanwhile: post anyway
                log.warning("send on post %s not recorded: %s", post_id, exc)

        post_id = sess.send_session(self.engine, state, chosen, self._now(), also=comparisons)
        if post_id is None:  # a double click: the first click already posted it
            return Reply(kind="expired", text="That preview was already sent.")
        if added:
            self._metric("VOTES", actor.platform, "send", value=added)
        emotion = NAMES[state.emotion]
        card = self._cards_for([chosen], emotion)
        if not card:
            return Reply(kind="error", text="That GIF is no longer available.")
        return Reply(kind="posted", post=PostView(post_id=post_id, card=card[0], emotion=emotion,
                                                  requested_by=actor.user_id))

    async def cancel(self, actor: Actor, session_id: str) -> Reply:
        return await self._for_user(self._cancel, actor, session_id)

    def _cancel(self, actor: Actor, session_id: str) -> Reply:
        state, refusal = self._own_open(actor, session_id)
        if refusal:
            return refusal if refusal.kind == "forbidden" else Reply(kind="cancelled")
        assert state is not None
        sess.close_session(self.engine, state.id, "cancelled", self._now())
        return Reply(kind="cancelled")

    async def attach_message(self, post_id: int, message_ref: str) -> None:
        """The adapter tells the core the platform's id of the public post (for reactions)."""
        await asyncio.to_thread(sess.attach_message, self.engine, int(post_id), str(message_ref))

    # ------------------------------------------------------------------ feedback
    async def vote(self, actor: Actor, *, post_id: int | None = None,
                   message_ref: str | None = None, up: bool | None,
                   source: str = "vote") -> Reply:
        """👍 (up=True) / 👎 (False) / withdrawn (None), from a button or a reaction
        (`source="reaction"`). Votes are not rate-limited beyond one per person per post."""
        return await self._for_user(self._vote, actor, post_id, message_ref, up, source)

    def _vote(self, actor: Actor, post_id: int | None, message_ref: str | None,
              up: bool | None, source: str) -> Reply:
        if post_id is not None and not 0 < post_id < 2**63:  # a forged button value
            return Reply(kind="expired", text="I can't find that GIF post any more.")
        post = sess.find_post(self.engine, post_id=post_id, platform=actor.platform,
                              message_ref=message_ref)
        if post is None or post.platform != actor.platform or post.workspace != actor.workspace:
            return Reply(kind="expired", text="I can't find that GIF post any more.")
        try:
            outcome = record_vote(self.engine, emotion=int(post.emotion), gif=post.gif_sha, up=up,
                                  who=self._who(actor), post_id=int(post.id),
                                  platform=actor.platform, workspace=actor.workspace,
                                  channel=actor.channel, source=source)
        except LedgerError as exc:
            return Reply(kind="ack", text=f"That vote could not be counted: {exc}.")
        if outcome in {"recorded", "replaced"}:
            self._metric("VOTES", actor.platform, source)
        text = {
            "recorded": "Thanks! Noted " + ("👍" if up else "👎") + ".",
            "replaced": "Changed your vote to " + ("👍" if up else "👎") + ".",
            "removed": "Your vote was removed.",
            "unchanged": "Already counted." if up is not None else "",
        }[outcome]
        return Reply(kind="ack", text=text)

    async def maybe_poll(self, actor: Actor, emotion: str) -> Reply | None:
        """A "which is more X?" poll for `settings.poll_share` of requests (None otherwise)."""
        if emotion not in INDEX or not self._chance(self.settings.poll_share):
            return None
        return await self._for_user(self._poll, actor, INDEX[emotion], quiet=True)

    def _poll(self, actor: Actor, emotion: int) -> Reply | None:
        scoped = sess.get_all_scoped(self.engine, self.settings, actor.platform, actor.workspace,
                                     actor.channel)
        # The pair whose answer tells most about the top of this emotion's ranking (active
        # sorting near the top; bot.ranking.poll_pair), skipping pairs asked recently here.
        since = self._now() - dt.timedelta(hours=max(self.settings.repeat_window_hours, 1.0))
        asked = sess.recent_poll_pairs(self.engine, actor.platform, actor.workspace, emotion,
                                       since)
        pair = poll_pair(self.ranker.matrix(), emotion, rng=self._rng(),
                         pools=scoped["pools"] or None, ceiling=scoped["rating_ceiling"],
                         avoid=asked)
        if pair is None:
            return None
        left, right = pair
        state = sess.create_session(
            self.engine, kind="poll", platform=actor.platform, workspace=actor.workspace,
            channel=actor.channel, user_hash=self._who(actor), query="", emotion=emotion,
            shas=[left, right], now=self._now(), ttl_s=self.settings.preview_ttl_s)
        name = NAMES[emotion]
        cards = self._cards_for([left, right], name)
        if len(cards) < 2:
            return None
        return Reply(kind="poll", text=f"Quick question: which is more *{name}*?",
                     poll=PollView(poll_id=state.id, emotion=name, left=cards[0], right=cards[1]))

    async def answer_poll(self, actor: Actor, poll_id: str, answer: str) -> Reply:
        return await self._for_user(self._answer_poll, actor, poll_id, answer)

    def _answer_poll(self, actor: Actor, poll_id: str, answer: str) -> Reply:
        answer = (answer or "").strip().lower()
        if answer not in {"left", "right", "neither"}:
            return Reply(kind="error", text="A poll answer is left, right or neither.")
        state, refusal = self._own_open(actor, poll_id, kind="poll")
        if refusal:
            return refusal
        assert state is not None
        if not sess.close_session(self.engine, state.id, "answered", self._now()):
            return Reply(kind="expired", text="That poll was already answered.")
        left, right = state.current[0], state.current[1]
        try:
            record_poll(self.engine, emotion=state.emotion, left=left, right=right, answer=answer,
                        who=self._who(actor), platform=actor.platform,
                        workspace=actor.workspace, channel=actor.channel)
            self._metric("VOTES", actor.platform, "poll")
        except LedgerError as exc:
            return Reply(kind="ack", text=f"That answer could not be counted: {exc}.")
        return Reply(kind="ack", text="Thanks! That helps me learn what feels "
                     f"{NAMES[state.emotion]}.")

    # ------------------------------------------------------------------ watched channels
    async def watch(self, actor: Actor, text: str) -> Reply | None:
        """In a channel that opted in, a private offer when a message clearly carries an
        emotion; at most once per person per `watch_cooldown_min`. None = stay quiet."""
        if not text or len(text) > WATCH_MAX_CHARS or text.lstrip().startswith("/"):
            return None
        return await self._for_user(self._watch, actor, text, quiet=True)

    def _watch(self, actor: Actor, text: str) -> Reply | None:
        scoped = sess.get_all_scoped(self.engine, self.settings, actor.platform, actor.workspace,
                                     actor.channel)
        if not scoped["watch"]:
            return None
        key = (actor.platform, actor.user_id)
        last = self._watch_offered.get(key)
        if last is not None and self.clock() - last < self.settings.watch_cooldown_min * 60:
            return None
        query = clean_text(text)
        intent = self.parser.parse(query)
        if (intent.kind != "match" or intent.emotion not in INDEX
                or intent.confidence < max(WATCH_MIN_CONFIDENCE, self.settings.intent_threshold)):
            return None
        if len(self._watch_offered) > 100_000:  # forget old offers so memory stays bounded
            self._watch_offered.clear()
        self._watch_offered[key] = self.clock()
        reply = self._open_preview(actor, query, INDEX[intent.emotion], scoped,
                                   confidence=intent.confidence,
                                   text=f"Sounds like *{intent.emotion}*. Want to send a GIF?")
        return reply if reply.kind == "preview" else None

    # ------------------------------------------------------------------ admin
    async def admin(self, actor: Actor, command: str, args: list[str]) -> Reply:
        """Admin commands (see `ADMIN_HELP`); forbidden unless `actor.is_admin`."""
        if not actor.is_admin:
            return Reply(kind="forbidden", text="Only admins can change the GIF settings.")
        command = (command or "help").strip().lower()
        args = [a for a in (args or []) if a]
        try:
            if command in {"pools", "pool"}:
                sub = args[0].lower() if args else "list"
                if sub == "list":
                    return Reply(kind="ack", text=await asyncio.to_thread(self._pools_text))
                if sub == "add" and len(args) >= 3:
                    return self._start_pool_add(args[1], " ".join(args[2:]))
                return Reply(kind="error", text="Usage: pools list | pools add NAME FOLDER|MANIFEST|URL-LIST|giphy:WORDS")
            if command in {"rating", "ceiling"}:
                if not args:
                    return Reply(kind="error", text=f"Usage: rating {'|'.join(RATINGS)} [channel]")
                here = len(args) > 1 and args[1].lower() in {"channel", "here"}
                value = await asyncio.to_thread(
                    sess.set_scoped, self.engine, actor.platform, actor.workspace,
                    actor.channel if here else "", "rating_ceiling", args[0])
                return Reply(kind="ack", text=f"Rating ceiling for this "
                             f"{'channel' if here else 'workspace'} is now {value}.")
            if command == "channel":
                return await asyncio.to_thread(self._channel_admin, actor, args)
            if command == "retrain":
                return self._start_retrain()
            if command == "stats":
                return Reply(kind="ack", text=await asyncio.to_thread(self._stats_text))
            return Reply(kind="help", text=ADMIN_HELP)
        except sess.ScopedSettingError as exc:
            return Reply(kind="error", text=str(exc))

    def _channel_admin(self, actor: Actor, args: list[str]) -> Reply:
        aliases = {"pools": "pools", "pool": "pools", "watch": "watch", "preview": "preview_count",
                   "preview_count": "preview_count", "cooldown": "cooldown_s",
                   "cooldown_s": "cooldown_s", "rating": "rating_ceiling",
                   "rating_ceiling": "rating_ceiling"}
        if not args or args[0].lower() == "show":
            values = sess.get_all_scoped(self.engine, self.settings, actor.platform,
                                         actor.workspace, actor.channel)
            lines = [f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                     + (" (every pool)" if k == "pools" and not v else "")
                     for k, v in values.items()]
            return Reply(kind="ack", text="This channel:\n" + "\n".join(lines))
        key = aliases.get(args[0].lower())
        if key is None or len(args) < 2:
            return Reply(kind="error", text="Usage: channel show | channel pools NAME[,NAME] | "
                         "channel watch on|off | channel preview 1|3 | channel cooldown SECONDS | "
                         "channel rating CEILING | channel KEY reset")
        raw: Any = None if args[1].lower() in {"reset", "default"} else " ".join(args[1:])
        value = sess.set_scoped(self.engine, actor.platform, actor.workspace, actor.channel, key,
                                raw)
        shown = "the default" if value is None else (
            ", ".join(value) or "every pool") if isinstance(value, list) else value
        return Reply(kind="ack", text=f"{key} for this channel is now {shown}.")

    def _pools_text(self) -> str:
        with session_scope(self.engine) as s:
            rows = s.execute(
                select(Pool.name, func.count(PoolGif.gif_sha))
                .join(PoolGif, PoolGif.pool_id == Pool.id, isouter=True)
                .group_by(Pool.name).order_by(Pool.name)).all()
        matrix = self.ranker.matrix()
        if not rows:
            return "No pools yet. Add one with `pools add NAME FOLDER|MANIFEST|URL-LIST`."
        lines = [f"{name}: {n} GIFs, {int(matrix.pools[name].sum()) if name in matrix.pools else 0}"
                 " ranked" for name, n in rows]
        return "Pools:\n" + "\n".join(lines)

    def _stats_text(self) -> str:
        from training.comparisons import stats

        st = stats(self.engine)
        with session_scope(self.engine) as s:
            posts = s.scalar(select(func.count()).select_from(Post)) or 0
            mv = active_version(s)
            run = s.execute(select(RetrainRun.id, RetrainRun.status, RetrainRun.finished_at)
                            .order_by(RetrainRun.id.desc()).limit(1)).first()
        matrix = self.ranker.matrix()
        by_source = ", ".join(f"{k} {v}" for k, v in st["by_source"].items()) or "none yet"
        lines = [
            f"GIFs ranked: {matrix.size} ({matrix.n_bt} with votes)",
            f"posts: {posts}; comparisons: {st['total']} ({by_source}) from {st['people']} people",
            f"active model: {f'#{mv.id} {mv.name}' if mv else 'none (not scored yet)'}",
            f"last retrain: {f'#{run[0]} {run[1]}' if run else 'never'}",
        ]
        lines += [f"job {j.id}: {j.what}: {j.state}{(' - ' + j.detail) if j.detail else ''}"
                  for j in self._jobs[-5:]]
        return "\n".join(lines)

    # background jobs -------------------------------------------------------
    def _start_job(self, what: str, fn: Callable[[], str]) -> Job:
        job = Job(id=len(self._jobs) + 1, what=what)

        async def runner() -> None:
            try:
                job.detail = await asyncio.to_thread(fn)
                job.state = "done"
            except Exception as exc:
                log.exception("admin job %s failed", what)
                job.state, job.detail = "failed", str(exc)[:300]
            await asyncio.to_thread(self.ranker.refresh)

        job.task = asyncio.get_running_loop().create_task(runner())
        self._jobs.append(job)
        return job

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def _start_pool_add(self, name: str, source: str) -> Reply:
        from scorer.admin_sources import SourceNotAllowed, check_admin_source

        settings, engine = self.settings, self.engine
        # A chat or web admin is not the machine's operator: URLs, giphy: or the operator's
        # allowed folders only, refused with one message whether or not a path exists.
        try:
            allowed = check_admin_source(settings, source)
        except SourceNotAllowed as exc:
            log.info("admin pools add refused: source not allowed")
            return Reply(kind="error", text=str(exc))
        source = allowed.source

        def work() -> str:
            from scorer.pipeline import score_pool
            from scorer.pool import ingest

            report = ingest(settings, engine, name, source, confine=allowed.roots)
            # The zero-shot prior too, its words read by this bot's own intent parser.
            scored = score_pool(settings, engine, pool=name, prior=True,
                                text_model=self.parser.distribution)
            return f"{_summary(report)}; {_summary(scored)}"

        job = self._start_job(f"add pool {name} from {source}", work)
        return Reply(kind="ack", text=(f"Adding pool {name} from {source} and scoring it "
                                       f"(job {job.id}). `stats` shows how it goes."))

    def _start_retrain(self) -> Reply:
        settings, engine = self.settings, self.engine

        def work() -> str:
            from training import retrain

            fn = getattr(retrain, "run_retrain", None) or retrain.retrain
            return _summary(fn(settings, engine, trigger="admin"))

        job = self._start_job("retrain", work)
        return Reply(kind="ack", text=f"Retraining now (job {job.id}). `stats` shows how it goes.")


ADMIN_HELP = """Admin commands:
pools list | pools add NAME FOLDER|MANIFEST|URL-LIST|giphy:WORDS|giphy:trending|giphy:id:ID,...
rating g|pg|pg-13|r [channel]   (workspace-wide unless "channel")
channel show | channel pools NAME[,NAME]|all | channel watch on|off
channel preview 1|3 | channel cooldown SECONDS | channel rating CEILING | channel KEY reset
retrain   (refit from the votes, retrain, rescore; activates only if not worse)
stats"""


def _or_list(items: tuple[str, ...]) -> str:
    quoted = [f"*{x}*" for x in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _summary(report: Any) -> str:
    if report is None:
        return "done"
    if hasattr(report, "status") and hasattr(report, "message"):  # a RetrainOutcome
        return f"{report.status}: {report.message}"
    for attr in ("summary", "describe"):
        fn = getattr(report, attr, None)
        if callable(fn):
            return str(fn())
    return str(report)[:300]


__all__ = ["ADMIN_HELP", "N_EMOTIONS", "BotCore", "clean_text"]
