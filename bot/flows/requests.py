"""A person asks for a GIF: `/gif <text>` -> a private preview, and the preview's buttons
(Shuffle, Send, Cancel). Offers nobody typed `/gif` for are in `bot.flows.offers`; a feeling
picked instead of the one led with (a switch, a question's button) is `bot.flows.picks`; what a
preview offers besides its GIF is `bot.flows.switches`.

Every public function here takes the action's `Session` first (`CoreContext.for_user`
opens it): the preview's reads and its one write share one transaction, and a Send's
close, post, impression and comparisons commit together.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, PostView, PreviewView, Reply
from bot.flows.context import CoreContext, clean_text, metric
from bot.flows.switches import more_feelings, switches_for
from bot.intent import TOO_LONG, readable_text, too_long
from bot.learned_phrases import phrase_key
from bot.ranking import Ranked, rank
from bot.score_matrix import ScoreMatrix
from bot.topics import Reading, TopicIndex, missing_note, rank_topic
from scorer.emotions import INDEX, NAMES
from scorer.settings import RATINGS, ChannelSettings, rating_allowed
from training.comparisons import LedgerError, add_send

log = logging.getLogger("moodgif.bot.core")



class RequestFlow:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ ranking
    def recent(self, db: Session, actor: Actor) -> list[str]:
        since = self.ctx.recent_since()
        if since is None:
            return []
        return sess.recent_in_channel(db, actor.platform, actor.workspace, actor.channel, since)

    def rank(self, scoped: ChannelSettings, emotion: int, k: int, *, viewer: str,
             recent: list[str], exclude: tuple[str, ...] = (), reading: Reading | None = None,
             exploration: str | None = None) -> Ranked:
        """`viewer`: whose pools may be ranked (`Actor.pool_owner`; "" the operator's view)."""
        return _rank(self.ctx, scoped, emotion, k, viewer=viewer, recent=recent, exclude=exclude,
                     reading=reading, exploration=exploration)

    # ------------------------------------------------------------------ request
    def request(self, db: Session, actor: Actor, text: str) -> Reply:
        """A `/gif ...` request: a preview, help, did-you-mean, or a polite no."""
        started = time.perf_counter()
        raw = text or ""
        if too_long(raw):
            metric("REQUESTS", actor.platform, "unknown")
            return Reply(kind="error", text=TOO_LONG)
        query = clean_text(raw)
        scoped, recent = self.ctx.scoped_and_recent(db, actor)
        reading = self.ctx.read_here(db, actor, query, scoped)
        unmatched = _unmatched_reply(actor.platform, query, reading)
        if unmatched is not None and not _asks_about(query, reading, unmatched):
            _count_unread(actor.platform, query, reading)
            return unmatched  # help, or nothing read: never rate-limited
        # A question ("did you mean") is a request too: it takes the cooldown token, and the
        # pick that answers it opens its preview without taking another (bot.flows.picks).
        wait = self.wait_reply(actor, scoped)
        if wait is not None:
            return wait
        if unmatched is not None:  # counted only now: a request the cooldown turned away is none
            _count_unread(actor.platform, query, reading)
            return self._ask(db, actor, query, unmatched)
        metric("REQUESTS", actor.platform, reading.intent.emotion or "topic")
        reply = self._open_for_reading(db, actor, query, reading, scoped, recent)
        metric("SUGGEST_LATENCY", value=time.perf_counter() - started)
        return reply

    def wait_reply(self, actor: Actor, scoped: ChannelSettings) -> Reply | None:
        """A new preview takes one of the person's cooldown tokens: "ask again in N s" when
        there is none left, else None."""
        wait = self.ctx.cooldown.take((actor.platform, actor.user_id), float(scoped.cooldown_s))
        return _cooldown_reply(wait) if wait > 0 else None

    def _ask(self, db: Session, actor: Actor, query: str, reply: Reply) -> Reply:
        """A "did you mean" (or the feelings offered for words not read at all: "yeet") keeps
        the words it asks about (a session of kind "ask"), so the feeling picked opens a preview
        for them: same topic, and a Send says what they meant."""
        state = sess.create_session(
            db, kind="ask", platform=actor.platform, workspace=actor.workspace,
            channel=actor.channel, user_hash=self.ctx.who(actor), query=query, emotion=-1, shas=(),
            now=self.ctx.now(), ttl_s=self.ctx.settings.chat.preview_ttl_s)
        return dataclasses.replace(reply, ask_id=state.id,
                                   more_choices=tuple(n for n in NAMES if n not in reply.choices))

    def _open_for_reading(self, db: Session, actor: Actor, query: str, reading: Reading,
                          scoped: ChannelSettings, recent: list[str]) -> Reply:
        intent = reading.intent
        emotion = INDEX.get(intent.emotion or "", -1)
        reply = self.open_preview(db, actor, query, emotion, scoped, confidence=intent.confidence,
                                  text=missing_note(reading), reading=reading, recent=recent)
        if reply.kind == "empty_pool" and reading.rows is not None and emotion >= 0:
            # The topic's GIFs are all filtered out here (its channel's pools, ceiling or hidden
            # GIFs: another workspace's alone read as no topic at all): say so, and offer the
            # feeling alone.
            reply = self.open_preview(db, actor, query, emotion, scoped,
                                      confidence=intent.confidence, text=_topic_filtered_note(reading),
                                      reading=dataclasses.replace(reading, rows=None), recent=recent)
        return reply

    def open_preview(self, db: Session, actor: Actor, query: str, emotion: int,
                     scoped: ChannelSettings, *, confidence: float = 1.0, text: str = "",
                     reading: Reading | None = None, recent: list[str] | None = None) -> Reply:
        """`reading`: how the request was read (its topic narrows the ranking; the preview
        says it and offers its other feelings); read here when not given. `recent`: the
        channel's recent GIFs if the caller read them (else read here)."""
        if reading is None and query:
            reading = self.ctx.read(query, actor.pool_owner)
        # a Send from this preview says which feeling the person wanted for these words
        key = phrase_key(query) if emotion >= 0 and scoped.learn_phrases else ""
        ranked = self.rank(scoped, emotion, int(scoped.preview_count), viewer=actor.pool_owner,
                           recent=self.recent(db, actor) if recent is None else recent,
                           reading=reading)
        if not ranked.shas:
            matrix = self.ctx.ranker.matrix()
            gone = [name for name in scoped.pools if not matrix.sees(actor.pool_owner, name)]
            return _empty_pool_reply(_subject(reading, emotion), pool_empty=not matrix.size, gone=gone)
        topic = ""
        if emotion < 0:  # a topic alone: its first GIF's clearest emotion stands in, and the
            # topic marks it so that nothing learns that feeling from it
            emotion = _clearest_emotion(self.ctx.ranker.matrix(), ranked.shas[0])
            topic = (" ".join(reading.topic) if reading is not None else "") or "no feeling named"
        state = sess.create_session(
            db, kind="preview", platform=actor.platform, workspace=actor.workspace,
            channel=actor.channel, user_hash=self.ctx.who(actor), query=query, emotion=emotion,
            shas=ranked.shas, now=self.ctx.now(), ttl_s=self.ctx.settings.chat.preview_ttl_s,
            query_key=key, topic=topic)
        return _preview_reply(self.ctx, db, state, ranked.eligible, reading,
                              text=text or _ranked_note(ranked), confidence=confidence)

    # ------------------------------------------------------------------ the preview's buttons
    def own_open(self, db: Session, actor: Actor, session_id: str, kind: str = "preview"
                 ) -> sess.SessionState | Reply:
        """The session if `actor` may act on it now; else the polite Reply to give instead."""
        what = {"poll": "poll", "ask": "question"}.get(kind, "preview")
        state = sess.load_session(db, session_id, lock=True)  # its callers advance or close it
        if state is None or state.kind != kind:
            return Reply(kind="expired", text=f"That {what} is gone. Ask again with `/gif`.")
        if not _shown_to(state, actor, self.ctx.who):
            return Reply(kind="forbidden", text=(
                f"That {what} belongs to someone else. Ask for your own with `/gif`."))
        if state.state != "open":
            return _closed_reply(what, state.state)
        if state.expired(self.ctx.now()):
            sess.close_session(db, state.id, "expired", self.ctx.now())
            return Reply(kind="expired", text=f"That {what} has expired. Ask again with `/gif`.")
        return state

    def shuffle(self, db: Session, actor: Actor, session_id: str) -> Reply:
        state = self.own_open(db, actor, session_id)
        if isinstance(state, Reply):
            return state
        scoped, recent = self.ctx.scoped_and_recent(db, actor)
        reading = self.ctx.read_here(db, actor, state.query, scoped) if state.query else None
        if reading is not None and reading.emotion not in (None, NAMES[state.emotion]):
            plain = self.ctx.read(state.query, actor.pool_owner)
            if plain.emotion == NAMES[state.emotion]:
                # the workspace's reading of these words moved since this preview opened (others
                # sent them as another feeling): a Shuffle is no pick, so it must not say one
                reading = plain
        ranked = self.rank(scoped, state.emotion, int(scoped.preview_count), viewer=actor.pool_owner,
                           recent=recent, exclude=state.shown, reading=reading)
        if not ranked.shas:
            last = _preview_reply(self.ctx, db, state, 0, reading, can_shuffle=False)
            return _exhausted_reply(_subject(reading, state.emotion), last)
        new_state = sess.advance_session(db, state.id, ranked.shas, self.ctx.now(), loaded=state)
        if new_state is None:  # sent or cancelled meanwhile (a click from another device)
            return Reply(kind="closed", text="That preview is closed.")
        return _preview_reply(self.ctx, db, new_state, ranked.eligible, reading,
                              text=_ranked_note(ranked))

    def send(self, db: Session, actor: Actor, session_id: str, sha: str | None) -> Reply:
        state = self.own_open(db, actor, session_id)
        if isinstance(state, Reply):
            return state
        chosen = sha or (state.current[0] if state.current else None)
        if chosen is None or chosen not in state.shown:
            return Reply(kind="error", text="That GIF is not in this preview.")
        if not self._still_allowed(db, actor, chosen):
            return Reply(kind="error", text=(
                "An admin has hidden that GIF here, or lowered the rating it must meet, since this "
                "preview opened: Shuffle for another."))
        post_id = sess.send_session(db, state, chosen, self.ctx.now())
        if post_id is None:  # a double click: the first click already posted it
            return Reply(kind="closed", text="That preview was already sent.")
        _record_send(self.ctx, db, actor, state, chosen, post_id)
        metric("SENDS", actor.platform, "posted")
        self.ctx.phrases.stale(actor.platform, actor.workspace)  # its words may teach now
        return _posted_reply(self.ctx, db, actor, state.emotion, chosen, post_id, topic=state.topic)

    def _still_allowed(self, db: Session, actor: Actor, sha: str) -> bool:
        """A preview lives for minutes: an admin's `hide` or a lower rating ceiling set
        meanwhile counts at Send too (a GIF that left the snapshot is not judged here)."""
        scoped = self.ctx.scoped(db, actor)
        if sha in scoped.hidden_gifs:
            return False
        matrix = self.ctx.ranker.matrix()
        row = matrix.index.get(sha)
        return row is None or rating_allowed(RATINGS[int(matrix.rating[row])], scoped.rating_ceiling)

    def unsend(self, db: Session, actor: Actor, post_id: int) -> bool:
        """The platform refused the post a Send made: take it back whole, the preview open."""
        if not sess.unpost_send(db, post_id):
            return False
        metric("SENDS", actor.platform, "taken_back")
        self.ctx.phrases.stale(actor.platform, actor.workspace)  # its words taught nothing
        return True

    def cancel(self, db: Session, actor: Actor, session_id: str) -> Reply:
        state = self.own_open(db, actor, session_id)
        if isinstance(state, Reply):  # gone or closed: cancelled anyway; someone else's: said so
            return state if state.kind == "forbidden" else Reply(kind="cancelled")
        sess.close_session(db, state.id, "cancelled", self.ctx.now())
        return Reply(kind="cancelled")


# ---------------------------------------------------------------------- ranking
def _rank(ctx: CoreContext, scoped: ChannelSettings, emotion: int, k: int, *, viewer: str,
          recent: list[str], exclude: tuple[str, ...], reading: Reading | None,
          exploration: str | None) -> Ranked:
    matrix = ctx.ranker.matrix()
    pools, ceiling = matrix.channel_pools(scoped.pools, viewer), scoped.rating_ceiling
    rate = ctx.settings.ranking.exploration_rate
    exclude = (*exclude, *scoped.hidden_gifs)  # an admin's `hide`: never offered here
    if reading is not None and reading.topic_only and matrix.topics is not None:
        if (exploration or ctx.settings.ranking.exploration) == "none":
            rate = 0.0  # the best-liked first, as `suggest` without --explore promises
        return _rank_by_appeal(matrix, matrix.topics, reading, k, rng=ctx.rng(), pools=pools,
                               ceiling=ceiling, rate=rate, exclude=exclude, recent=recent)
    return rank(matrix, emotion, k, rng=ctx.rng(), pools=pools, ceiling=ceiling,
                exploration=exploration or ctx.settings.ranking.exploration,
                rate=rate, exclude=exclude, soft_exclude=recent,
                candidates=reading.rows if reading is not None else None)


def _rank_by_appeal(matrix: ScoreMatrix, topics: TopicIndex, reading: Reading, k: int, *,
                    rng: np.random.Generator, pools: Sequence[str] | None, ceiling: str, rate: float,
                    exclude: tuple[str, ...], recent: list[str]) -> Ranked:
    """No feeling named: the topic's GIFs by overall appeal (bot.topics), which is also
    their score (the posterior mean of each one's clearest feeling)."""
    shas, eligible = rank_topic(matrix, topics, reading.rows, k, rng=rng, pools=pools,
                                ceiling=ceiling, rate=rate, exclude=exclude, soft_exclude=recent)
    appeal = [float(topics.appeal[matrix.index[sha]]) if topics.appeal.size else 0.0 for sha in shas]
    return Ranked(shas=shas, scores=appeal, means=appeal, eligible=eligible)


def _clearest_emotion(matrix: ScoreMatrix, sha: str) -> int:
    i = matrix.index.get(sha)
    if i is None or not matrix.scored:
        return INDEX["happiness"]
    return int(np.argmax(matrix.mean[:, i]))


def _subject(reading: Reading | None, emotion: int) -> str:
    """What the person asked for, in words: the topic if they named no feeling."""
    if reading is not None and reading.topic_only:
        return " ".join(reading.topic)
    return NAMES[emotion]


def _ranked_note(ranked: Ranked) -> str:
    return f"({ranked.note})" if ranked.note else ""


# ---------------------------------------------------------------------- sessions and the ledger
def _shown_to(state: sess.SessionState, actor: Actor, who: Callable[[Actor], str]) -> bool:
    """The same person, in the same workspace and channel: a click forged for another
    workspace or channel must not post where the preview was never shown. `who` is called
    only when the platform matches, as hashing may read the salt."""
    return (state.platform == actor.platform and state.user_hash == who(actor)
            and state.workspace == actor.workspace and state.channel == actor.channel)


def _record_send(ctx: CoreContext, db: Session, actor: Actor, state: sess.SessionState,
                 chosen: str, post_id: int) -> None:
    """The sent GIF beats every GIF skipped in the preview, in the post's transaction.
    A topic-only request named no feeling: its send says nothing about which GIF is
    more <emotion>, so it is not put in the ledger."""
    if state.topic:
        return
    try:
        added = add_send(db, emotion=state.emotion, sent=chosen,
                         skipped=sess.skipped_for(state, chosen), who=ctx.who(actor),
                         platform=actor.platform, workspace=actor.workspace,
                         channel=actor.channel, post_id=post_id)
    except LedgerError as exc:  # e.g. the GIF left the pool meanwhile: post anyway
        log.warning("send on post %s not recorded: %s", post_id, exc)
        return
    if added:
        metric("VOTES", actor.platform, "send", value=added)


# ---------------------------------------------------------------------- replies
def _preview_reply(ctx: CoreContext, db: Session, state: sess.SessionState, eligible: int,
                   reading: Reading | None, *, text: str = "", confidence: float = 1.0,
                   can_shuffle: bool | None = None) -> Reply:
    """`reading`: how the session's request was read (None for a session without words)."""
    emotion = NAMES[state.emotion]
    cards = ctx.cards(db, list(state.current), emotion)
    if can_shuffle is None:
        can_shuffle = eligible > len(state.shown)
    interpretation = reading.describe() if reading else ""
    if reading is not None and not reading.topic_only and reading.emotion != emotion:
        # a switch, or a "did you mean" pick (a reading with no feeling of its own)
        interpretation = (interpretation + "; you" if interpretation else "You") + f" picked {emotion}"
    switches = switches_for(reading, emotion)
    view = PreviewView(session_id=state.id, emotion=emotion, query=state.query, cards=cards,
                       can_shuffle=can_shuffle, confidence=confidence,
                       interpretation=interpretation,
                       topic=" ".join(reading.topic) if reading else "",
                       topic_only=bool(reading and reading.topic_only),
                       alternatives=switches,
                       more_feelings=more_feelings(reading, emotion, switches))
    return Reply(kind="preview", text=text, preview=view)


def _posted_reply(ctx: CoreContext, db: Session, actor: Actor, emotion_index: int, chosen: str,
                  post_id: int, topic: str = "") -> Reply:
    emotion = NAMES[emotion_index]
    card = ctx.cards(db, [chosen], emotion)
    if not card:
        return Reply(kind="error", text="That GIF is no longer available.")
    return Reply(kind="posted", post=PostView(post_id=post_id, card=card[0], emotion=emotion,
                                              requested_by=actor.user_id, topic=topic))


def _cooldown_reply(wait: float) -> Reply:
    return Reply(kind="cooldown", text=(
        f"Easy there! You can ask for another GIF in {max(1, round(wait))} s."))


def _empty_pool_reply(what: str, *, pool_empty: bool, gone: list[str] | None = None) -> Reply:
    # The advice names `/gif-admin` only: its syntax differs between Slack and Discord, and
    # each platform's help shows its own.
    if gone:  # limited to pools removed since: say so, not "add a pool"
        return Reply(kind="empty_pool", text=(
            f"I have no GIFs for {what} in this channel: it is limited to pools that no longer "
            f"exist ({', '.join(gone)}). An admin can pick others, or all of them again, with "
            "`/gif-admin channel`."))
    return Reply(kind="empty_pool", text=(
        f"I have no GIFs for {what} in this channel yet"
        + (" (the pool is empty)." if pool_empty else
           " (its pools, rating ceiling or hidden GIFs leave none).")
        + " An admin can add a pool or change this channel's with `/gif-admin`."))


def _topic_filtered_note(reading: Reading) -> str:
    return (f"No {' '.join(reading.topic)} GIFs allowed in this channel; "
            f"here's {reading.intent.emotion}.")


def _exhausted_reply(what: str, last: Reply) -> Reply:
    """The preview as it was, with nothing left to shuffle to."""
    return Reply(kind="exhausted", preview=last.preview, text=(
        f"That's every {what} GIF I have here. Send the one you see or cancel."))


_CLOSED_BY_A_CLICK = ("sent", "cancelled", "answered", "switched")


def _closed_reply(what: str, state: str) -> Reply:
    done = {"sent": "was already sent", "cancelled": "was cancelled",
            "answered": "was already answered",
            "switched": "was switched to another feeling: use the newer one"}.get(state, "has expired")
    return Reply(kind="closed" if state in _CLOSED_BY_A_CLICK else "expired", text=f"That {what} {done}.")


def _unmatched_reply(platform: str, query: str, reading: Reading) -> Reply | None:
    """Help, or did-you-mean, when the request names no feeling we know and no topic;
    None when it can be ranked."""
    intent = reading.intent
    if intent.kind == "help" or not query:
        from bot.intent import help_text

        return Reply(kind="help", text=help_text(), choices=NAMES)
    if not reading.topic_only and (intent.kind != "match" or intent.emotion not in INDEX):
        return _not_understood(query, reading)
    return None


def _count_unread(platform: str, query: str, reading: Reading) -> None:
    """A request answered without a GIF (did-you-mean, or help for words not read) counts
    as "unknown"; an empty one, or one asking for the list of emotions, is no GIF request."""
    if query and reading.intent.kind != "help":
        metric("REQUESTS", platform, "unknown")


def _asks_about(query: str, reading: Reading, reply: Reply) -> bool:
    """Whether an answer asks which feeling some words mean, so the pick should open a
    preview for them: a "did you mean", or the 17 feelings for words not read at all."""
    if reply.kind == "did_you_mean":
        return True
    words = phrase_key(readable_text(query))  # mentions, links or code alone are no words
    return reply.kind == "help" and reading.intent.kind == "unknown" and bool(words)


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
