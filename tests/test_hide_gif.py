"""An admin hides a GIF from a workspace: `hide last` (the GIF just posted in the channel) or
`hide SHA`; it is then never offered there, in previews, shuffles, topics or polls, and
`unhide` brings it back. Through BotCore on a real database."""

from __future__ import annotations

import dataclasses

import pytest
from test_core import HAPPY, Env

from bot.flows.admin import HIDE_USAGE, HideGif, ListHidden, UnhideGif, parse_admin


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


def test_the_words_an_admin_types() -> None:
    assert parse_admin("hide", []) == HideGif("last") == parse_admin("hide", ["last"])
    assert parse_admin("hide", ["ABCDEF0123"]) == HideGif("abcdef0123")
    assert parse_admin("hidden", []) == ListHidden() == parse_admin("hide", ["list"])
    assert parse_admin("unhide", ["all"]) == UnhideGif("all")
    for bad in (["abc"], ["zzzzzzzzzz"], []):
        assert parse_admin("unhide", bad).usage == HIDE_USAGE


async def test_a_hidden_gif_is_never_offered_in_that_workspace_again(settings, engine) -> None:
    env = Env(settings, engine, repeat_window_hours=0.0)  # on SQLite and on PostgreSQL
    alice, ada = env.actor("alice"), env.actor("ada", admin=True)
    best = env.best(HAPPY, 1)[0]
    r = await env.core.request(alice, "happy")
    assert r.preview.cards[0].sha256 == best
    assert (await env.core.send(alice, r.preview.session_id)).kind == "posted"
    assert (await env.core.admin(alice, "hide", [])).kind == "forbidden"

    hidden = await env.core.admin(ada, "hide", ["last"])
    assert hidden.text.startswith("Hidden: ") and best[:12] in hidden.text
    assert best[:12] in (await env.core.admin(ada, "hidden", [])).text
    assert "hidden: 1 in this workspace" in (await env.core.admin(ada, "channel", ["show"])).text
    for who in ("alice", "bob"):  # every channel and person of the workspace
        r = await env.core.request(env.actor(who, channel="random"), "happy")
        assert r.preview.cards[0].sha256 == env.best(HAPPY, 2)[1]
        seen = {r.preview.cards[0].sha256}
        while (r := await env.core.shuffle(env.actor(who, channel="random"), r.preview.session_id)).kind == "preview":
            seen.add(r.preview.cards[0].sha256)
        assert best not in seen and len(seen) == len(env.pool.shas) - 1
    other = dataclasses.replace(alice, workspace="T2")
    assert (await env.core.request(other, "happy")).preview.cards[0].sha256 == best  # another workspace

    assert "No hidden GIF starts with" in (await env.core.admin(ada, "unhide", ["00000000"])).text
    assert (await env.core.admin(ada, "unhide", [best[:10]])).text == "Shown again: 1 GIF."
    assert (await env.core.request(alice, "happy")).preview.cards[0].sha256 == best
    assert (await env.core.admin(ada, "hidden", [])).text == "No GIF is hidden in this workspace."


async def test_hiding_by_sha_and_what_cannot_be_hidden(env: Env) -> None:
    ada = env.actor("ada", admin=True)
    assert (await env.core.admin(ada, "hide", [])).text == "No GIF was posted in this channel yet."
    assert "or more than one does" in (await env.core.admin(ada, "hide", ["ffffffffffff"])).text
    sha = env.pool.shas[3]
    assert sha[:12] in (await env.core.admin(ada, "hide", [sha[:12]])).text
    await env.core.admin(ada, "hide", [env.pool.shas[4][:12]])
    assert (await env.core.admin(ada, "unhide", ["all"])).text == "Shown again: 2 GIFs."


async def test_a_poll_never_shows_a_hidden_gif(sqlite_settings, sqlite_engine) -> None:
    env = Env(sqlite_settings, sqlite_engine, poll_share=1.0)
    ada, alice = env.actor("ada", admin=True), env.actor("alice")
    hidden = set(env.pool.shas[: len(env.pool.shas) - 4])
    for sha in hidden:
        await env.core.admin(ada, "hide", [sha[:16]])
    shown = []
    for _ in range(10):
        poll = await env.core.maybe_poll(alice, "happiness")
        assert poll is not None and poll.poll is not None  # asked about the GIFs left
        shown += [poll.poll.left.sha256, poll.poll.right.sha256]
    assert not set(shown) & hidden


async def test_a_gif_hidden_or_rated_out_while_its_preview_is_open_is_not_sent(env: Env) -> None:
    from sqlalchemy import update

    from scorer.store import Gif, session_scope

    alice, ada = env.actor("alice"), env.actor("ada", admin=True)
    r = await env.core.request(alice, "happy")
    shown = r.preview.cards[0].sha256
    await env.core.admin(ada, "hide", [shown[:16]])
    refused = await env.core.send(alice, r.preview.session_id)
    assert refused.kind == "error" and "Shuffle for another" in refused.text
    after = await env.core.shuffle(alice, r.preview.session_id)  # the preview is still open
    assert after.kind == "preview" and after.preview.cards[0].sha256 != shown
    assert (await env.core.send(alice, r.preview.session_id)).kind == "posted"

    r = await env.core.request(env.actor("bob"), "happy")
    rated = r.preview.cards[0].sha256
    with session_scope(env.engine) as s:
        s.execute(update(Gif).where(Gif.sha256 == rated).values(rating="pg-13"))
    env.core.ranker.refresh()
    await env.core.admin(ada, "rating", ["pg"])
    assert (await env.core.send(env.actor("bob"), r.preview.session_id)).kind == "error"
