"""Feedback on a public post: 👍/👎 from a button or a reaction, and the platform's id of the
post (`attach`) that reactions are matched by. One vote per person per post."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, Reply
from bot.flows.context import CoreContext, metric
from training.comparisons import LedgerError, record_vote

_GONE = "I can't find that GIF post any more."


class FeedbackFlow:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    def vote(self, db: Session, actor: Actor, post_id: int | None, message_ref: str | None,
             up: bool | None, source: str) -> Reply:
        """👍 (up=True) / 👎 (False) / withdrawn (None) on the post, against the emotion's
        reference item (`training.comparisons.record_vote`)."""
        if post_id is not None and not 0 < post_id < 2**63:  # a forged button value
            return Reply(kind="expired", text=_GONE)
        post = sess.find_post(db, post_id=post_id, platform=actor.platform,
                              message_ref=message_ref)
        if post is None or post.platform != actor.platform or post.workspace != actor.workspace:
            return Reply(kind="expired", text=_GONE)
        try:
            outcome = record_vote(db, emotion=int(post.emotion), gif=post.gif_sha, up=up,
                                  who=self.ctx.who(actor), post_id=int(post.id),
                                  platform=actor.platform, workspace=actor.workspace,
                                  channel=actor.channel, source=source, post=post)
        except LedgerError as exc:
            return Reply(kind="ack", text=f"That vote could not be counted: {exc}.")
        if outcome in {"recorded", "replaced"}:
            metric("VOTES", actor.platform, source)
        thumb = "👍" if up else "👎"
        text = {
            "recorded": f"Thanks! Noted {thumb}.",
            "replaced": f"Changed your vote to {thumb}.",
            "removed": "Your vote was removed.",
            "unchanged": "Already counted." if up is not None else "",
        }[outcome]
        return Reply(kind="ack", text=text)

    def attach(self, db: Session, post_id: int, message_ref: str) -> bool:
        """The platform's id of the public post (for reactions): a Slack channel:ts, a
        Discord message id."""
        return sess.attach_message(db, int(post_id), str(message_ref))


__all__ = ["FeedbackFlow"]
