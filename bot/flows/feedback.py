"""Feedback on a public post: 👍/👎 from a button or a reaction, and the platform's id of the
post (`attach`) that reactions are matched by. One vote per person per post. And the
sender's Undo: a Send taken back within `UNDO_MINUTES`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, Reply
from bot.flows.context import CoreContext, metric, uncounted
from training.comparisons import LedgerError, record_vote

_GONE = "I can't find that GIF post any more."
# A Send can be taken back for this long: Undo is for "wrong GIF", not for editing history;
# later, a channel's moderators delete the message as they would any other.
UNDO_MINUTES = 60


_TAKEN_BACK = "The person who sent that GIF took it back, so it takes no votes."


def _taken_back(db: Session, session_id: str) -> bool:
    """The post's Send was undone (`session.take_back_send`)."""
    state = sess.load_session(db, session_id)
    return state is not None and state.state == "undone"


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
        asked = sess.load_session(db, post.session_id) if post.session_id else None
        if asked is not None and asked.state == "undone" and up is not None:
            # no new vote on a taken-back GIF; withdrawing one cast before the Undo still works
            return Reply(kind="expired", text=_TAKEN_BACK)
        if asked is not None and asked.topic:
            # Its feeling label was a stand-in (the request named none): a vote says the GIF
            # fits the topic, not that it is more of that feeling, so it teaches nothing.
            return Reply(kind="ack", text="" if up is None else (
                "Thanks! This GIF answered a topic, not a feeling, so votes on it are not counted."))
        try:
            outcome = record_vote(db, emotion=int(post.emotion), gif=post.gif_sha, up=up,
                                  who=self.ctx.who(actor), post_id=int(post.id),
                                  platform=actor.platform, workspace=actor.workspace,
                                  # the post's channel: a Discord reaction names the thread
                                  # it was made in, not the channel whose settings hold there
                                  channel=post.channel, source=source, post=post)
        except LedgerError as exc:
            return Reply(kind="error", text=uncounted("vote", exc))
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

    def undo(self, db: Session, actor: Actor, post_id: int) -> Reply:
        """The sender takes their Send back: the adapter deletes the public post
        (`Reply.message_ref`), and the Send teaches nothing (`session.take_back_send`)."""
        if not 0 < post_id < 2**63:  # a forged button value
            return Reply(kind="expired", text=_GONE)
        post = sess.find_post(db, post_id=post_id)
        if post is None or post.platform != actor.platform or post.workspace != actor.workspace:
            return Reply(kind="expired", text=_GONE)
        if post.requested_by != self.ctx.who(actor):
            return Reply(kind="forbidden", text="Only the person who sent that GIF can take it back.")
        if self.ctx.now() - post.created_at > dt.timedelta(minutes=UNDO_MINUTES):
            return Reply(kind="expired", text=(
                f"A GIF can be taken back within {UNDO_MINUTES} minutes of sending it; "
                "a moderator of the channel can still delete it."))
        if post.session_id and _taken_back(db, post.session_id):
            return Reply(kind="expired", text="That GIF was already taken back.")
        sess.take_back_send(db, int(post.id), post.session_id, self.ctx.now(), sender=post.requested_by)
        return Reply(kind="undone", text="Taken back: the GIF is gone, and that Send teaches nothing.",
                     message_ref=post.message_ref or "")

    def attach(self, db: Session, post_id: int, message_ref: str) -> bool:
        """The platform's id of the public post (for reactions): a Slack channel:ts, a
        Discord message id."""
        return sess.attach_message(db, int(post_id), str(message_ref))


__all__ = ["UNDO_MINUTES", "FeedbackFlow"]
