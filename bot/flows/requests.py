"""A person asks for a GIF: `/gif <text>` -> a private preview, and the preview's buttons
(Shuffle, Send, Cancel). Offers nobody typed `/gif` for are in `bot.flows.offers`.

Every public function here takes the action's `Session` first (`CoreContext.for_user`
opens it): the preview's reads and its one write share one transaction, and a Send's
close, post, impression and comparisons commit together.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, PostView, PreviewView, Reply
from bot.flows.context import MAX_TEXT_CHARS, CoreContext, clean_text, metric
from bot.ranking import Ranked, rank
from bot.topics import Reading, missing_note, rank_topic
from scorer.emotions import INDEX, NAMES
from scorer.settings import ChannelSettings
from training.comparisons import LedgerError, add_send

log = logging.getLogger("moodgif.bot.core")

TOO_LONG = "That's a lot of text for a GIF request. Try a word or two, like `/gif happy`."


class RequestFlow:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ ranking
    def recent(self, db: Session, actor: Actor) -> list[str]:
        since = self.ctx.recent_since()
        if since is None:
            return []
        return sess.recent_in_channel(db, actor.platform, actor.workspace, actor.channel, since)

    def rank(self, scoped: ChannelSettings, emotion: int, k: int, *, recent: list[str],
             exclude: tuple[str, ...] = (), reading: Reading | None = None,
             exploration: str | None = None) -> Ranked:
        ctx = self.ctx
        matrix = ctx.ranker.matrix()
        pools, ceiling = scoped.pools or None, scoped.rating_ceiling
        if reading is not None and reading.topic_only and matrix.topics is not None:
            # No feeling named: the topic's GIFs by overall appeal (bot.topics).
            shas, eligible = rank_topic(
                matrix, matrix.topics, reading.rows, k, rng=ctx.rng(), pools=pools,
                ceiling=ceiling, rate=ctx.settings.ranking.exploration_rate, exclude=exclude,
                soft_exclude=recent)
            return Ranked(shas=shas, scores=[0.0] * len(shas), means=[0.0] * len(shas),
                          eligible=eligible)
        return rank(matrix, emotion, k, rng=ctx.rng(), pools=pools, ceiling=ceiling,
                    exploration=exploration or ctx.settings.ranking.exploration,
                    rate=ctx.settings.ranking.exploration_rate, exclude=exclude, soft_exclude=recent,
                    candidates=reading.rows if reading is not None else None)

    def _preview_reply(self, db: Session, state: sess.SessionState, eligible: int, *,
                       text: str = "", confidence: float = 1.0,
                       can_shuffle: bool | None = None) -> Reply:
        emotion = NAMES[state.emotion]
        cards = self.ctx.cards(db, list(state.current), emotion)
        if can_shuffle is None:
            can_shuffle = eligible > len(state.shown)
        reading = self.ctx.read(state.query) if state.query else None
        view = PreviewView(session_id=state.id, emotion=emotion, query=state.query, cards=cards,
                           can_shuffle=can_shuffle, confidence=confidence,
                           interpretation=reading.describe() if reading else "",
                           topic=" ".join(reading.topic) if reading else "",
                           topic_only=bool(reading and reading.topic_only))
        return Reply(kind="preview", text=text, preview=view)

    # ------------------------------------------------------------------ request
    def request(self, db: Session, actor: Actor, text: str) -> Reply:
        """A `/gif ...` request: a preview, help, did-you-mean, or a polite no."""
        started = time.perf_counter()
        raw = text or ""
        if len(raw) > MAX_TEXT_CHARS:
            metric("REQUESTS", actor.platform, "unknown")
            return Reply(kind="error", text=TOO_LONG)
        query = clean_text(raw)
        reading = self.ctx.read(query)
        intent = reading.intent
        if intent.kind == "help" or not query:
            from bot.intent import help_text

            return Reply(kind="help", text=help_text(), choices=NAMES)
        if not reading.topic_only and (intent.kind != "match" or intent.emotion not in INDEX):
            metric("REQUESTS", actor.platform, "unknown")
            return _not_understood(query, reading)
        emotion = INDEX.get(intent.emotion or "", -1)
        metric("REQUESTS", actor.platform, intent.emotion or "topic")
        scoped, recent = self.ctx.scoped_and_recent(db, actor)
        wait = self.ctx.cooldown.take((actor.platform, actor.user_id), float(scoped.cooldown_s))
        if wait > 0:
            return Reply(kind="cooldown", text=(
                f"Easy there! You can ask for another GIF in {max(1, round(wait))} s."))
        reply = self.open_preview(db, actor, query, emotion, scoped, confidence=intent.confidence,
                                  text=missing_note(reading), reading=reading, recent=recent)
        if reply.kind == "empty_pool" and reading.rows is not None and emotion >= 0:
            # The topic's GIFs are all filtered out here: say so, and offer the feeling alone.
            reply = self.open_preview(
                db, actor, query, emotion, scoped, confidence=intent.confidence,
                text=f"No {' '.join(reading.topic)} GIFs allowed in this channel; "
                     f"here's {intent.emotion}.", reading=Reading(intent), recent=recent)
        metric("SUGGEST_LATENCY", value=time.perf_counter() - started)
        return reply

    def open_preview(self, db: Session, actor: Actor, query: str, emotion: int,
                     scoped: ChannelSettings, *, confidence: float = 1.0, text: str = "",
                     reading: Reading | None = None, recent: list[str] | None = None) -> Reply:
        """`recent`: the channel's recent GIFs if the caller read them (else read here)."""
        ranked = self.rank(scoped, emotion, int(scoped.preview_count),
                           recent=self.recent(db, actor) if recent is None else recent,
                           reading=reading)
        if not ranked.shas:
            what = (" ".join(reading.topic) if reading is not None and reading.topic_only
                    else NAMES[emotion])
            return Reply(kind="empty_pool", text=(
                f"I have no GIFs for {what} in this channel yet"
                + (" (the pool is empty)." if not self.ctx.ranker.matrix().size else
                   " (its pools or rating ceiling leave none).")
                + " An admin can add a pool with `moodgif pool add` or `/gif-admin pools add`."))
        if emotion < 0:  # a topic alone: the session keeps its first GIF's clearest emotion
            emotion = self._clearest_emotion(ranked.shas[0])
        state = sess.create_session(
            db, kind="preview", platform=actor.platform, workspace=actor.workspace,
            channel=actor.channel, user_hash=self.ctx.who(actor), query=query, emotion=emotion,
            shas=ranked.shas, now=self.ctx.now(), ttl_s=self.ctx.settings.chat.preview_ttl_s)
        note = text or (f"({ranked.note})" if ranked.note else "")
        return self._preview_reply(db, state, ranked.eligible, text=note, confidence=confidence)

    def _clearest_emotion(self, sha: str) -> int:
        matrix = self.ctx.ranker.matrix()
        i = matrix.index.get(sha)
        if i is None or not matrix.scored:
            return INDEX["happiness"]
        return int(np.argmax(matrix.mean[:, i]))

    # ------------------------------------------------------------------ the preview's buttons
    def own_open(self, db: Session, actor: Actor, session_id: str, kind: str = "preview"
                 ) -> tuple[sess.SessionState | None, Reply | None]:
        """The session if `actor` may act on it now; else the polite Reply to give instead."""
        what = "poll" if kind == "poll" else "preview"
        state = sess.load_session(db, session_id, lock=True)  # its callers advance or close it
        if state is None or state.kind != kind:
            return None, Reply(kind="expired", text=f"That {what} is gone. Ask again with `/gif`.")
        # The same person, in the same workspace and channel: a click forged for another
        # workspace or channel must not post where the preview was never shown.
        if (state.platform != actor.platform or state.user_hash != self.ctx.who(actor)
                or state.workspace != actor.workspace or state.channel != actor.channel):
            return None, Reply(kind="forbidden", text=(
                f"That {what} belongs to someone else. Ask for your own with `/gif`."))
        if state.state != "open":
            done = {"sent": "was already sent", "cancelled": "was cancelled",
                    "answered": "was already answered"}.get(state.state, "has expired")
            return None, Reply(kind="expired", text=f"That {what} {done}.")
        if state.expired(self.ctx.now()):
            sess.close_session(db, state.id, "expired", self.ctx.now())
            return None, Reply(kind="expired",
                               text=f"That {what} has expired. Ask again with `/gif`.")
        return state, None

    def shuffle(self, db: Session, actor: Actor, session_id: str) -> Reply:
        state, refusal = self.own_open(db, actor, session_id)
        if refusal:
            return refusal
        assert state is not None
        scoped, recent = self.ctx.scoped_and_recent(db, actor)
        reading = self.ctx.read(state.query) if state.query else None
        if reading is not None and reading.rows is None:
            reading = None
        ranked = self.rank(scoped, state.emotion, int(scoped.preview_count),
                           recent=recent, exclude=state.shown, reading=reading)
        if not ranked.shas:
            reply = self._preview_reply(db, state, 0, can_shuffle=False)
            what = (" ".join(reading.topic) if reading is not None and reading.topic_only
                    else NAMES[state.emotion])
            return Reply(kind="exhausted", preview=reply.preview, text=(
                f"That's every {what} GIF I have here. Send the one you see or cancel."))
        new_state = sess.advance_session(db, state.id, ranked.shas, self.ctx.now(), loaded=state)
        if new_state is None:  # sent or cancelled meanwhile (a click from another device)
            return Reply(kind="expired", text="That preview is closed.")
        note = f"({ranked.note})" if ranked.note else ""
        return self._preview_reply(db, new_state, ranked.eligible, text=note)

    def send(self, db: Session, actor: Actor, session_id: str, sha: str | None) -> Reply:
        state, refusal = self.own_open(db, actor, session_id)
        if refusal:
            return refusal
        assert state is not None
        chosen = sha or (state.current[0] if state.current else None)
        if chosen is None or chosen not in state.shown:
            return Reply(kind="error", text="That GIF is not in this preview.")
        post_id = sess.send_session(db, state, chosen, self.ctx.now())
        if post_id is None:  # a double click: the first click already posted it
            return Reply(kind="expired", text="That preview was already sent.")
        self._record_send(db, actor, state, chosen, post_id)
        emotion = NAMES[state.emotion]
        card = self.ctx.cards(db, [chosen], emotion)
        if not card:
            return Reply(kind="error", text="That GIF is no longer available.")
        return Reply(kind="posted", post=PostView(post_id=post_id, card=card[0], emotion=emotion,
                                                  requested_by=actor.user_id))

    def _record_send(self, db: Session, actor: Actor, state: sess.SessionState, chosen: str,
                     post_id: int) -> None:
        """The sent GIF beats every GIF skipped in the preview, in the post's transaction.
        A topic-only request named no feeling: its send says nothing about which GIF is
        more <emotion>, so it is not put in the ledger."""
        if state.query and self.ctx.read(state.query).topic_only:
            return
        try:
            added = add_send(db, emotion=state.emotion, sent=chosen,
                             skipped=sess.skipped_for(state, chosen), who=self.ctx.who(actor),
                             platform=actor.platform, workspace=actor.workspace,
                             channel=actor.channel, post_id=post_id)
        except LedgerError as exc:  # e.g. the GIF left the pool meanwhile: post anyway
            log.warning("send on post %s not recorded: %s", post_id, exc)
            return
        if added:
            metric("VOTES", actor.platform, "send", value=added)

    def cancel(self, db: Session, actor: Actor, session_id: str) -> Reply:
        state, refusal = self.own_open(db, actor, session_id)
        if refusal:
            return refusal if refusal.kind == "forbidden" else Reply(kind="cancelled")
        assert state is not None
        sess.close_session(db, state.id, "cancelled", self.ctx.now())
        return Reply(kind="cancelled")


def _not_understood(query: str, reading: Reading) -> Reply:
    """Did-you-mean choices when the parser has some, else help; with the topic's note."""
    from bot.intent import help_text

    intent = reading.intent
    note = missing_note(reading)
    choices = tuple(e for e, _c in intent.alternatives if e in INDEX)[:3]
    reason = intent.reason or f"I'm not sure which feeling “{query[:60]}” is."
    lead = note + " " if note else ""
    if choices:
        if intent.kind != "did_you_mean":
            lead += reason.rstrip(".") + ". "
        return Reply(kind="did_you_mean", text=f"{lead}Did you mean {_or_list(choices)}?",
                     choices=choices)
    return Reply(kind="help", text=f"{lead}{reason}\n\n{help_text()}", choices=NAMES)


def _or_list(items: tuple[str, ...]) -> str:
    quoted = [f"*{x}*" for x in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


__all__ = ["RequestFlow"]
