""""Which is more X?": a poll now and then after a request, and its answer (left, right or
neither) as one comparison in the ledger."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, Answer, PollView, Reply
from bot.flows.context import CoreContext, metric, uncounted
from bot.flows.requests import RequestFlow
from bot.ranking import poll_pair
from scorer.emotions import INDEX, NAMES
from training.comparisons import LedgerError, record_poll


class PollFlow:
    def __init__(self, ctx: CoreContext, requests: RequestFlow) -> None:
        self.ctx = ctx
        self.requests = requests  # whose `own_open` checks a poll's clicker too

    def wanted(self, emotion: str) -> bool:
        """Whether this request gets a poll: `settings.ranking.poll_share` of them (a coin flip)."""
        return emotion in INDEX and self.ctx.chance(self.ctx.settings.ranking.poll_share)

    def request_with_poll(self, db: Session, actor: Actor, text: str) -> Answer:
        """A `/gif` request's reply and, for `poll_share` of previews, a poll to show after it."""
        reply = self.requests.request(db, actor, text)
        poll = None
        if reply.kind == "preview" and reply.preview is not None and self.wanted(reply.preview.emotion):
            poll = self.poll(db, actor, INDEX[reply.preview.emotion])
        return Answer(reply, poll)

    def poll(self, db: Session, actor: Actor, emotion: int) -> Reply | None:
        """The pair whose answer tells most about the top of this emotion's ranking (active
        sorting near the top; `bot.ranking.poll_pair`), skipping pairs asked recently here.
        None when the pool has no such pair."""
        ctx = self.ctx
        scoped = ctx.scoped(db, actor)
        since = ctx.now() - dt.timedelta(hours=max(ctx.settings.ranking.repeat_window_hours, 1.0))
        asked = sess.recent_poll_pairs(db, actor.platform, actor.workspace, emotion, since)
        matrix = ctx.ranker.matrix()
        pair = poll_pair(matrix, emotion, rng=ctx.rng(),
                         pools=matrix.channel_pools(scoped.pools, actor.pool_owner),
                         ceiling=scoped.rating_ceiling,
                         avoid=asked, exclude=scoped.hidden_gifs)
        if pair is None:
            return None
        name = NAMES[emotion]
        cards = ctx.cards(db, list(pair), name)
        if len(cards) < 2:
            return None
        state = sess.create_session(
            db, kind="poll", platform=actor.platform, workspace=actor.workspace,
            channel=actor.channel, user_hash=ctx.who(actor), query="", emotion=emotion,
            shas=list(pair), now=ctx.now(), ttl_s=ctx.settings.chat.preview_ttl_s)
        return Reply(kind="poll", text=f"Quick question: which is more *{name}*?",
                     poll=PollView(poll_id=state.id, emotion=name, left=cards[0], right=cards[1]))

    def answer(self, db: Session, actor: Actor, poll_id: str, answer: str) -> Reply:
        answer = (answer or "").strip().lower()
        if answer not in {"left", "right", "neither"}:
            return Reply(kind="error", text="A poll answer is left, right or neither.")
        state = self.requests.own_open(db, actor, poll_id, kind="poll")
        if isinstance(state, Reply):
            return state
        if not sess.close_session(db, state.id, "answered", self.ctx.now()):
            return Reply(kind="closed", text="That poll was already answered.")
        try:
            record_poll(db, emotion=state.emotion, left=state.current[0], right=state.current[1],
                        answer=answer, who=self.ctx.who(actor), platform=actor.platform,
                        workspace=actor.workspace, channel=actor.channel)
        except LedgerError as exc:
            return Reply(kind="error", text=uncounted("answer", exc))
        metric("VOTES", actor.platform, "poll")
        return Reply(kind="ack", text="Thanks! That helps me learn which GIFs feel "
                     f"like {NAMES[state.emotion]}.")


__all__ = ["PollFlow"]
