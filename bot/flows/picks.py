"""A person picks the feeling the bot did not lead with: a preview's switch or its "Another
feeling…" menu (`switch`), or a question's button or menu, "did you mean" or the 17 feelings
for words not read at all (`choose`). Either way a preview opens for the same words as the
feeling picked, and its Send teaches the workspace's words (`bot.learned_phrases`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, Reply
from bot.flows.context import CoreContext
from bot.flows.requests import RequestFlow
from scorer.emotions import INDEX


class PickFlow:
    def __init__(self, ctx: CoreContext, requests: RequestFlow) -> None:
        self.ctx, self.requests = ctx, requests

    def switch(self, db: Session, actor: Actor, session_id: str, emotion: str) -> Reply:
        """The preview's request read as another feeling (one of its switches, or any of the
        17): this preview closes and one for `emotion` opens, same words and topic. Not a
        new request, so no cooldown; a Send then records comparisons under `emotion`."""
        state = self.requests.own_open(db, actor, session_id)
        if isinstance(state, Reply):
            return state
        if emotion not in INDEX:
            return _unknown_feeling(emotion)
        scoped, recent = self.ctx.scoped_and_recent(db, actor)
        # "switched", not "cancelled": its GIFs were passed over for the feeling, not for
        # themselves, so the retrain's judgements (training/judgements.py) leave them out
        if not sess.close_session(db, state.id, "switched", self.ctx.now()):
            return Reply(kind="closed", text="That preview is closed.")  # another click got there first
        reading = self.ctx.read_here(db, actor, state.query, scoped) if state.query else None
        return self.requests.open_preview(db, actor, state.query, INDEX[emotion], scoped,
                                          reading=reading, recent=recent)

    def choose(self, db: Session, actor: Actor, ask_id: str, emotion: str) -> Reply:
        """A question's button: a preview of `emotion` for the words asked about. A question
        that has expired or is gone answers as `/gif <emotion>` would; one already answered
        (a second click: "closed") says so, since its words went with the first."""
        if emotion not in INDEX:
            return _unknown_feeling(emotion)
        state = self.requests.own_open(db, actor, ask_id, kind="ask")
        if isinstance(state, Reply):
            return self.requests.request(db, actor, emotion) if state.kind == "expired" else state
        scoped, recent = self.ctx.scoped_and_recent(db, actor)  # the question took the cooldown token
        if not sess.close_session(db, state.id, "answered", self.ctx.now()):
            return Reply(kind="closed", text="That question was already answered.")
        reading = self.ctx.read_here(db, actor, state.query, scoped)
        return self.requests.open_preview(db, actor, state.query, INDEX[emotion], scoped,
                                          reading=reading, recent=recent)


def _unknown_feeling(emotion: str) -> Reply:
    return Reply(kind="error", text=f"I don't know the feeling “{emotion[:40]}”.")


__all__ = ["PickFlow"]
