"""The sender takes a Send back (Undo): the core tells the adapter which post to delete, and
the Send stops counting (its comparisons, its preview's words). Through BotCore on real
databases; the adapters' buttons are tested with Slack and Discord."""

from __future__ import annotations

import pytest
from test_core import Env

from bot.flows.feedback import UNDO_MINUTES
from scorer.store import ChatSession, session_scope
from training.judgements import preview_judgements


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


async def _shuffle_and_send(env: Env, who: str, words: str) -> int:
    actor = env.actor(who)
    r = await env.core.request(actor, words)
    r = await env.core.shuffle(actor, r.preview.session_id)  # one skipped GIF: a comparison
    posted = await env.core.send(actor, r.preview.session_id)
    assert posted.kind == "posted"
    await env.core.attach_message(posted.post.post_id, f"C1:{posted.post.post_id}.0001")
    return posted.post.post_id


async def test_the_sender_takes_a_send_back_and_it_teaches_nothing(settings, engine) -> None:
    env = Env(settings, engine)  # on SQLite and on PostgreSQL
    alice, bob = env.actor("alice"), env.actor("bob")
    post_id = await _shuffle_and_send(env, "alice", "happy")
    await env.core.vote(bob, post_id=post_id, up=True)
    await env.core.vote(alice, post_id=post_id, up=True)  # the sender's own 👍 goes with the Send
    assert {c.source for c in env.comparisons()} == {"send", "vote"}
    assert len([c for c in env.comparisons() if c.source == "vote"]) == 2
    assert preview_judgements(env.engine, set(env.pool.shas))  # the sent GIF over the bar, ...

    assert (await env.core.undo(bob, post_id)).kind == "forbidden"  # not Bob's to take back
    undone = await env.core.undo(alice, post_id)
    assert undone.kind == "undone" and undone.message_ref == f"C1:{post_id}.0001"
    assert {c.source for c in env.comparisons()} == {"vote"}  # Bob's vote happened; the Send did not
    with session_scope(env.engine) as s:
        assert {row.state for row in s.query(ChatSession)} == {"undone"}
    assert preview_judgements(env.engine, set(env.pool.shas)) == []  # the decision is withdrawn whole
    again = await env.core.undo(alice, post_id)
    assert again.kind == "expired" and "already" in again.text
    # a click that raced the Undo (a button still on someone's screen, a reaction) counts nothing
    late = await env.core.vote(env.actor("carol"), post_id=post_id, up=True)
    assert late.kind == "expired" and "took it back" in late.text
    changed = await env.core.vote(bob, post_id=post_id, up=False)
    assert changed.kind == "expired"
    assert [c.source for c in env.comparisons()] == ["vote"]  # Bob's first vote, unchanged
    withdrawn = await env.core.vote(bob, post_id=post_id, up=None)  # his reaction removed
    assert withdrawn.kind == "ack" and env.comparisons() == []  # a withdrawal still withdraws


async def test_undo_has_a_time_limit_and_refuses_forged_posts(env: Env) -> None:
    post_id = await _shuffle_and_send(env, "alice", "happy")
    for forged in (0, -1, 2**63, post_id + 1000):
        assert (await env.core.undo(env.actor("alice"), forged)).kind == "expired"
    env.now[0] += UNDO_MINUTES * 60 + 1
    late = await env.core.undo(env.actor("alice"), post_id)
    assert late.kind == "expired" and "within" in late.text
    assert {c.source for c in env.comparisons()} == {"send"}


async def test_a_taken_back_send_does_not_teach_the_workspace_its_words(env: Env) -> None:
    for who in ("alice", "bob"):
        actor = env.actor(who)
        r = await env.core.request(actor, "ugh")
        r = await env.core.switch(actor, r.preview.session_id, "contempt")
        posted = await env.core.send(actor, r.preview.session_id)
        if who == "bob":
            assert (await env.core.undo(actor, posted.post.post_id)).kind == "undone"
    # one Send left: not enough people for the workspace's pick, so the parser's reading stands
    assert (await env.core.request(env.actor("carol"), "ugh")).preview.emotion == "anger"
