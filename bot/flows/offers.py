"""Offers nobody typed `/gif` for: a watched channel's unasked private preview, and
`moodgif suggest`'s read-only answer. Both rank through `RequestFlow`; the watch opens its
preview there too, so its buttons are the same as a request's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, Reply
from bot.flows.context import CoreContext, clean_text
from bot.flows.requests import RequestFlow
from bot.intent import LOGREG_MIN_WORDS, TOO_LONG, Intent, too_long
from bot.ranking import Ranked
from bot.topics import Reading
from scorer.emotions import INDEX
from scorer.pool_owners import OPERATOR

WATCH_MAX_CHARS = 300
WATCH_MIN_CONFIDENCE = 0.8  # an unasked offer must be a clear case
# A strict channel (`channel strict on`) also needs the sentence model to find a feeling more
# likely than none: flat chat then draws half as many offers or fewer, and about one line in
# a hundred loses a right offer (docs/bench/intent.md, eighteenth to twenty-fourth rounds).
WATCH_STRICT_FEELING = 0.5


@dataclass(frozen=True)
class Suggestion:
    """`moodgif suggest`'s answer: the reading and the ranked GIFs, nothing written."""

    query: str
    reading: Reading
    emotion: int  # -1: no feeling named (a topic alone) or none understood
    ranked: Ranked | None  # None when the text maps to no emotion or topic


class OfferFlow:
    def __init__(self, ctx: CoreContext, requests: RequestFlow) -> None:
        self.ctx, self.requests = ctx, requests
        self._watch_offered: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ watched channels
    def watch(self, db: Session, actor: Actor, text: str) -> Reply | None:
        """An unasked private offer when a watched channel's message clearly carries an
        emotion; at most once per person per `watch_cooldown_min`. None = stay quiet."""
        ctx = self.ctx
        if not worth_watching(text):
            return None
        scoped = ctx.scoped(db, actor)
        if not scoped.watch:
            return None
        key = (actor.platform, actor.user_id)
        last = self._watch_offered.get(key)
        if last is not None and ctx.clock() - last < ctx.settings.chat.watch_cooldown_min * 60:
            return None
        query = clean_text(text)
        intent = ctx.parser.parse(query)
        if not clearly_felt(intent, query, ctx.settings.chat.intent_threshold):
            return None
        if scoped.watch_strict and ctx.parser.feeling_share(query) < WATCH_STRICT_FEELING:
            return None
        if len(self._watch_offered) > 100_000:  # forget old offers so memory stays bounded
            self._watch_offered.clear()
        self._watch_offered[key] = ctx.clock()
        reply = self.requests.open_preview(db, actor, query, INDEX[intent.emotion], scoped,
                                  confidence=intent.confidence,
                                  text=f"Sounds like *{intent.emotion}*. Want to send a GIF?")
        return reply if reply.kind == "preview" else None

    # ------------------------------------------------------------------ moodgif suggest
    def suggest(self, db: Session, actor: Actor | None, text: str, k: int,
                explore: bool = False) -> Suggestion:
        """The top `k` GIFs for a request as the bot reads it, with the bot's defaults (the
        rating ceiling from settings; a channel's own pools, ceiling and recent posts when
        `actor` names one). Writes nothing: no preview, no cooldown."""
        if too_long(text):  # what a chat request this long gets
            return Suggestion("", Reading(Intent(None, 0.0, [], TOO_LONG, "unknown")), -1, None)
        query = clean_text(text or "")
        if actor is not None:  # read as that workspace's words are read there
            scoped, recent = self.ctx.scoped_and_recent(db, actor)
            reading = self.ctx.read_here(db, actor, query, scoped)
        else:
            scoped, recent = sess.get_all_scoped(db, self.ctx.settings, "", "", ""), []
            reading = self.ctx.read(query)
        intent = reading.intent
        emotion = INDEX.get(intent.emotion or "", -1) if intent.kind == "match" else -1
        if emotion < 0 and not reading.topic_only:
            return Suggestion(query, reading, -1, None)
        viewer = actor.pool_owner if actor is not None else OPERATOR
        ranked = self.requests.rank(scoped, emotion, k, viewer=viewer, recent=recent,
                                    reading=reading, exploration=None if explore else "none")
        return Suggestion(query, reading, emotion, ranked)


def clearly_felt(intent: Intent, query: str, threshold: float) -> bool:
    """Whether a watched message's reading is clear enough for an unasked offer: sure, and not
    a line of one to three words that only the sentence model read ("standup in 5" votes
    contentment at 100 %: with no feeling word or emoji, a few words are no clear case)."""
    if intent.kind != "match" or intent.emotion not in INDEX:
        return False
    if intent.confidence < max(WATCH_MIN_CONFIDENCE, threshold):
        return False
    return not (intent.is_guess and len(query.split()) < LOGREG_MIN_WORDS)


def worth_watching(text: str) -> bool:
    """Whether a channel message may carry a request at all (checked before any thread hop:
    a watched channel sends every message here)."""
    return bool(text) and len(text) <= WATCH_MAX_CHARS and not text.lstrip().startswith("/")


__all__ = ["WATCH_MAX_CHARS", "WATCH_MIN_CONFIDENCE", "WATCH_STRICT_FEELING", "OfferFlow", "Suggestion",
           "clearly_felt", "worth_watching"]
