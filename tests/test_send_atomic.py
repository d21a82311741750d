"""Send is one transaction: the post, its impression and its comparisons commit together."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_core import Env

from scorer.store import ChatSession, Comparison, Post, session_scope
from training import comparisons


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


async def test_a_crash_between_post_and_comparisons_leaves_neither(env: Env, monkeypatch) -> None:
    alice = env.actor()
    r = await env.core.request(alice, "happy")
    sid = r.preview.session_id
    await env.core.shuffle(alice, sid)  # two GIFs seen: a Send adds one comparison

    def crash(*_a, **_k):  # the process dies after the post row, before the comparisons
        raise RuntimeError("killed mid-send")

    monkeypatch.setattr(comparisons, "_values", crash)
    with pytest.raises(RuntimeError, match="killed mid-send"):
        await env.core.send(alice, sid)
    with session_scope(env.engine) as s:
        assert s.query(Post).count() == 0
        assert s.get(ChatSession, sid).state == "open"  # the user can press Send again
    assert env.comparisons() == []

    monkeypatch.undo()
    sent = await env.core.send(alice, sid)
    assert sent.kind == "posted"
    with session_scope(env.engine) as s:
        post = s.scalars(select(Post)).one()
        rows = list(s.scalars(select(Comparison)))
    assert rows and all(c.post_id == post.id and c.source == "send" for c in rows)


async def test_every_write_of_a_send_is_in_one_transaction(env: Env) -> None:
    from sqlalchemy import event

    alice = env.actor()
    sid = (await env.core.request(alice, "happy")).preview.session_id
    await env.core.shuffle(alice, sid)
    commits = [0]
    writes: list[tuple[int, str]] = []  # (commits seen before the statement, statement)

    def on_commit(conn) -> None:  # type: ignore[no-untyped-def]
        commits[0] += 1

    def on_execute(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append((commits[0], statement.split("(")[0][:40]))

    event.listen(env.engine, "commit", on_commit)
    event.listen(env.engine, "before_cursor_execute", on_execute)
    try:
        assert (await env.core.send(alice, sid)).kind == "posted"
    finally:
        event.remove(env.engine, "commit", on_commit)
        event.remove(env.engine, "before_cursor_execute", on_execute)
    tables = " ".join(w for _, w in writes)
    assert "posts" in tables and "comparisons" in tables and "chat_sessions" in tables
    assert len({c for c, _ in writes}) == 1, writes  # no commit between two writes
