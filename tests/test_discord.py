"""The Discord adapter end to end, offline: the real discord.py command tree, DynamicItem
buttons and cog listeners, fed with raw gateway payloads; responses captured through a fake
webhook adapter (tests/fake_discord.py); the real bot core on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from _adapter_core import Clock, give_words, ledger, make_core, posts, sources
from fake_discord import (
    APP_ID,
    CHANNEL,
    GUILD,
    MANAGE_GUILD,
    DiscordDriver,
    FakeDiscord,
    FakeDiscordServer,
    buttons,
    select_options,
)

from bot import session as sess
from bot.adapters import discord as discord_adapter
from bot.adapters import discord_connect, discord_views
from bot.core import BotCore
from bot.health import get_health
from scorer.store import ChatSession, session_scope

ALICE = (950_000_000_000_000_001, "alice")
BOB = (950_000_000_000_000_002, "bob")
CAROL = (950_000_000_000_000_003, "carol")
EPHEMERAL = 64


@dataclass
class Stack:
    d: DiscordDriver
    fake: FakeDiscord
    core: BotCore
    engine: Any
    clock: Clock
    settings: Any


async def _stack(settings: Any, engine: Any, *, watch: bool = False) -> Stack:
    core, settings, clock = make_core(settings, engine, public_url="https://gifs.example.org")
    fake = FakeDiscord()
    bot = discord_adapter.build_bot(core, settings, intents=discord_adapter.wanted_intents(watch))
    driver = DiscordDriver(bot, fake)
    await driver.setup()
    return Stack(driver, fake, core, engine, clock, settings)


@pytest.fixture
async def stack(sqlite_settings, sqlite_engine) -> AsyncIterator[Stack]:
    st = await _stack(sqlite_settings, sqlite_engine)
    yield st
    await st.d.close()


def words(value: str) -> list[dict[str, Any]]:
    return [{"name": "words", "type": 3, "value": value}]


def embed_images(payload: dict[str, Any]) -> list[str]:
    return [e["image"]["url"] for e in payload.get("embeds", []) if e.get("image")]


async def test_gif_preview_shuffle_send_vote_and_reaction_reach_the_ledger(stack: Stack) -> None:
    d, fake, engine = stack.d, stack.fake, stack.engine

    # /gif happy: an ephemeral "thinking" answer at once, then the preview in its place
    token = await d.slash("gif", words("happy"), user=ALICE)
    callback, edit = fake.calls
    assert callback.kind == "callback" and callback.payload["type"] == 5
    assert callback.payload["data"]["flags"] & EPHEMERAL
    assert edit.kind == "edit_original" and edit.token == token
    (first_file,) = edit.files  # a local pool file under the upload limit: attached
    assert embed_images(edit.payload) == [f"attachment://{first_file}"]
    ids = buttons(edit.payload)
    assert [i.split(":")[1] for i in ids] == ["send", "shuffle", "cancel"]
    preview = fake.originals[token]

    # Shuffle: the same message now shows another GIF
    click = await d.click(preview, ids[1], user=ALICE)
    assert fake.calls[-2].payload["type"] == 6  # deferred update of the clicked message
    shuffled = fake.calls[-1]
    assert shuffled.kind == "edit_original" and shuffled.token == click
    assert shuffled.files and shuffled.files != [first_file]

    # Send: a public post (embed, GIF file, requested by, 👍/👎), the preview goes away
    await d.click(fake.originals[click], buttons(shuffled.payload)[0], user=ALICE)
    (post,) = fake.calls_of("followup")
    assert not post.payload.get("flags", 0) & EPHEMERAL
    assert "<@950000000000000001>" in post.payload["embeds"][0]["description"]
    assert post.files and embed_images(post.payload) == [f"attachment://{post.files[0]}"]
    vote_ids = buttons(post.payload)
    assert [i.split(":")[2] for i in vote_ids] == ["up", "down"]
    sent_note = fake.calls[-1]  # the preview now says it is out, with Undo and Dismiss
    assert sent_note.kind == "edit_original" and sent_note.payload["content"] == "Sent ✓"
    assert [i.split(":")[1] for i in buttons(sent_note.payload)] == ["undo", "dismiss"]
    (_pid, platform, ref, sent_sha) = posts(engine)[0]
    assert (platform, ref) == ("discord", str(post.message_id))
    assert post.files == [f"{sent_sha}.gif"]
    assert ledger(engine)[0][0:2] == ("send", sent_sha)

    # 👍 button by Bob: a vote and a private thank-you
    await d.click(fake.messages[post.message_id], vote_ids[0], user=BOB)
    thanks = fake.calls[-1]
    assert thanks.kind == "followup" and thanks.payload["flags"] & EPHEMERAL and "👍" in thanks.payload["content"]
    assert sources(engine)["vote"] == 1

    # reactions on the post: 👍 (any skin tone) counts, 🎉 does not; removal withdraws
    assert post.message_id is not None
    await d.react(post.message_id, "🎉", user=CAROL)
    await d.react(post.message_id, "👍🏽", user=CAROL)
    assert sources(engine)["reaction"] == 1
    votes = [row for row in ledger(engine) if row[0] in ("vote", "reaction")]
    assert all(w == sent_sha for _s, w, _l, _t, _who in votes) and len({r[4] for r in votes}) == 2
    await d.react(post.message_id, "👍", user=CAROL, add=False)
    assert sources(engine) == {"send": 1, "vote": 1}
    # the bot's own reactions never count
    await d.react(post.message_id, "👎", user=(APP_ID, "moodgif"))
    assert sources(engine) == {"send": 1, "vote": 1}


async def test_a_reaction_in_a_thread_counts_for_the_posts_channel(stack: Stack) -> None:
    """A raw reaction event names the thread it was made in: the vote once recorded the
    thread's id as its channel, not the channel whose settings hold there."""
    from scorer.store import Comparison, session_scope

    d, fake = stack.d, stack.fake
    token = await d.slash("gif", words("happy"), user=ALICE)
    await d.click(fake.originals[token], buttons(fake.calls[-1].payload)[0], user=ALICE)
    (post,) = fake.calls_of("followup")
    assert post.message_id is not None
    await d.react(post.message_id, "👍", user=BOB, channel=CHANNEL + 555)
    with session_scope(stack.engine) as s:
        channels = {c.source: c.channel for c in s.query(Comparison)}
    assert channels == {"reaction": str(CHANNEL)}  # not the thread's id


async def test_the_cores_bold_is_bold_on_discord(stack: Stack) -> None:
    """The core writes Slack's *bold*; Discord shows one star as italics, so "Did you mean
    *amusement*?" lost its emphasis there."""
    await stack.d.slash("gif", words("lol wow"), user=ALICE)
    content = stack.fake.calls[-1].payload["content"]
    assert "Did you mean **amusement**, **surprise** or **excitement**?" in content, content


async def test_buttons_still_work_after_a_restart(sqlite_settings, sqlite_engine) -> None:
    st = await _stack(sqlite_settings, sqlite_engine)
    token = await st.d.slash("gif", words("happy"), user=ALICE)
    preview = st.fake.originals[token]
    await st.d.close()
    # a brand-new bot object (as after a restart) with nothing in memory but the code
    bot = discord_adapter.build_bot(st.core, st.settings)
    d2 = DiscordDriver(bot, st.fake)
    await d2.setup()
    try:
        await d2.click(preview, buttons(preview)[0], user=ALICE)
        assert st.fake.calls_of("followup") and posts(st.engine)
    finally:
        await d2.close()


async def test_someone_elses_preview_and_cooldown_get_polite_private_answers(stack: Stack) -> None:
    d, fake = stack.d, stack.fake
    token = await d.slash("gif", words("happy"), user=ALICE)
    preview = fake.originals[token]
    await d.click(preview, buttons(preview)[0], user=BOB)
    note = fake.calls[-1]
    assert note.kind == "followup" and note.payload["flags"] & EPHEMERAL
    assert "someone else" in note.payload["content"]
    assert posts(stack.engine) == []
    # a second request at once: the cooldown answer, privately
    await d.slash("gif", words("sad"), user=ALICE)
    assert "Easy there" in fake.calls[-1].payload["content"]
    stack.clock.advance(60)
    await d.slash("gif", words("sad"), user=ALICE)
    assert buttons(fake.calls[-1].payload)


async def test_empty_gif_gives_choices_and_autocomplete_suggests_emotions(stack: Stack) -> None:
    d, fake = stack.d, stack.fake
    token = await d.slash("gif", [], user=ALICE)
    choices = buttons(fake.calls[-1].payload)
    assert len(choices) == 17 and "mg:pick:happiness" in choices
    await d.click(fake.originals[token], "mg:pick:relief", user=ALICE)
    assert fake.calls[-1].kind == "edit_original" and buttons(fake.calls[-1].payload)[0].startswith("mg:send:")

    await d.slash("gif", [{"name": "words", "type": 3, "value": "hap", "focused": True}],
                  user=ALICE, autocomplete=True)
    answer = fake.calls[-1].payload
    assert answer["type"] == 8
    assert "happiness" in [c["value"] for c in answer["data"]["choices"]]


async def test_gif_admin_needs_manage_server(stack: Stack) -> None:
    d, fake = stack.d, stack.fake
    cmd = discord_adapter.AdminCog.admin
    assert cmd.guild_only and cmd.default_permissions == discord.Permissions(manage_guild=True)
    stats = [{"name": "stats", "type": 1, "options": []}]
    await d.slash("gif-admin", stats, user=BOB)
    assert fake.calls[-1].payload["content"] == (
        "Only members with the Manage Server permission can use `/gif-admin`.")  # what it takes
    assert "comparisons" not in fake.calls[-1].payload["content"]
    await d.slash("gif-admin", stats, user=BOB, perms=MANAGE_GUILD)
    assert "comparisons" in fake.calls[-1].payload["content"]
    await d.slash("gif-admin", [{"name": "channel", "type": 1, "options": [
        {"name": "key", "type": 3, "value": "watch"}, {"name": "value", "type": 3, "value": "on"}]}],
        user=BOB, perms=MANAGE_GUILD)
    assert sess.get_scoped(stack.engine, stack.settings, "discord", str(GUILD), str(CHANNEL), "watch") is True
    await d.slash("gif-admin", [{"name": "phrases", "type": 1, "options": []}], user=BOB, perms=MANAGE_GUILD)
    assert "No words read the server's way yet" in fake.calls[-1].payload["content"]
    await d.slash("gif-admin", [{"name": "phrases", "type": 1, "options": [
        {"name": "forget", "type": 3, "value": "monday again"}]}], user=BOB, perms=MANAGE_GUILD)
    assert "Nothing was learned for “monday again”" in fake.calls[-1].payload["content"]
    await d.slash("gif-admin", [{"name": "hide", "type": 1, "options": []}], user=BOB, perms=MANAGE_GUILD)
    assert fake.calls[-1].payload["content"] == "No GIF was posted in this channel yet."
    await d.slash("gif-admin", [{"name": "unhide", "type": 1, "options": [
        {"name": "gif", "type": 3, "value": "all"}]}], user=BOB, perms=MANAGE_GUILD)
    assert fake.calls[-1].payload["content"] == "No GIF is hidden in this server."
    # usage and hints in Discord's own syntax, never Slack's typed one
    admin = {"user": BOB, "perms": MANAGE_GUILD}
    await d.slash("gif-admin", [{"name": "pools", "type": 1, "options": [
        {"name": "action", "type": 3, "value": "add"}, {"name": "name", "type": 3, "value": "team"}]}], **admin)
    assert fake.calls[-1].payload["content"].startswith("Usage: `/gif-admin pools action:list`")
    await d.slash("gif-admin", [{"name": "channel", "type": 1, "options": [
        {"name": "key", "type": 3, "value": "watch"}]}], **admin)
    assert "`/gif-admin channel key:KEY value:VALUE`" in fake.calls[-1].payload["content"]
    await d.slash("gif-admin", [{"name": "rating", "type": 1, "options": [
        {"name": "ceiling", "type": 3, "value": "pg"}]}], **admin)
    assert fake.calls[-1].payload["content"] == "Rating ceiling for this server is now pg."
    await d.slash("gif-admin", [{"name": "hide", "type": 1, "options": [
        {"name": "gif", "type": 3, "value": "zz"}]}], **admin)
    assert fake.calls[-1].payload["content"].startswith("Usage: `/gif-admin hide gif:last|SHA|list`")
    assert discord_views.admin_wording("Hidden: x (0123456789ab). (`unhide 0123456789ab` undoes it)") == (
        "Hidden: x (0123456789ab). (`/gif-admin unhide gif:0123456789ab` undoes it)")


async def test_a_channels_settings_hold_in_its_threads(stack: Stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A thread is its channel's: a rating ceiling (or pools, watch...) set for #general
    is not escaped by asking in a thread of #general, where anyone may start one."""
    from sqlalchemy import update

    from scorer.store import Gif

    d, fake = stack.d, stack.fake
    with session_scope(stack.engine) as s:
        s.execute(update(Gif).values(rating="pg-13"))
    stack.core.ranker.refresh()
    admin = {"user": BOB, "perms": MANAGE_GUILD}
    await d.slash("gif-admin", [{"name": "rating", "type": 1, "options": [
        {"name": "ceiling", "type": 3, "value": "g"}, {"name": "scope", "type": 3, "value": "channel"}]}], **admin)
    assert fake.calls[-1].payload["content"] == "Rating ceiling for this channel is now g."
    thread = CHANNEL + 555
    base = d._base

    def in_thread(kind: int, user: tuple[int, str], perms: discord.Permissions) -> dict[str, Any]:
        data = base(kind, user, perms)
        data["channel_id"] = str(thread)
        data["channel"] = {"id": str(thread), "type": 11, "guild_id": str(GUILD), "parent_id": str(CHANNEL),
                           "name": "a thread", "owner_id": str(ALICE[0]), "message_count": 0, "member_count": 1,
                           "rate_limit_per_user": 0, "flags": 0, "last_message_id": None,
                           "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                               "archive_timestamp": "2026-01-01T00:00:00+00:00", "locked": False}}
        return data

    monkeypatch.setattr(d, "_base", in_thread)
    await d.slash("gif-admin", [{"name": "channel", "type": 1, "options": []}], **admin)
    assert "rating: g" in fake.calls[-1].payload["content"]
    await d.slash("gif", words("happy"), user=ALICE)
    assert not embed_images(fake.calls[-1].payload)
    assert "no GIFs for happiness in this channel" in fake.calls[-1].payload["content"]


async def test_the_cogs_share_the_core_and_the_gif_cog_answers_the_buttons(stack: Stack) -> None:
    cog = stack.d.bot.get_cog(discord_views.COG_NAME)
    assert isinstance(cog, discord_adapter.GifCog) and isinstance(cog, discord_views.Clicks)
    assert cog.core is stack.core and not hasattr(stack.d.bot, "moodgif")
    assert {c.name for c in cog.get_app_commands()} == {"gif"}
    admin = stack.d.bot.get_cog("moodgif admin")
    assert isinstance(admin, discord_adapter.AdminCog) and admin.core is stack.core
    assert {c.name for c in admin.get_app_commands()} == {"gif-admin"}
    assert {c.name for c in stack.d.bot.tree.get_commands()} >= {"gif", "gif-admin"}
    listen = stack.d.bot.get_cog("moodgif listeners")  # reactions, mentions, watched channels
    assert isinstance(listen, discord_adapter.ListenCog) and listen.core is stack.core
    assert not listen.get_app_commands() and {n for n, _ in listen.get_listeners()} >= {
        "on_message", "on_raw_reaction_add", "on_raw_reaction_remove"}
    # a bot built only to sync the commands has the cogs but no core to answer with
    bare = discord_adapter.build_bot(None, stack.settings)
    for holder in (bare.gif_cog, bare.listen_cog, bare.admin_cog):
        with pytest.raises(RuntimeError, match="without a BotCore"):
            _ = holder.core


async def test_mention_replies_with_a_preview_only_the_requester_can_use(stack: Stack) -> None:
    d, fake = stack.d, stack.fake
    asked = await d.say(f"<@{APP_ID}> happy", user=ALICE, mention_bot=True)
    (reply,) = fake.calls_of("channel_message")
    assert reply.payload["message_reference"]["message_id"] == asked
    assert not reply.payload["allowed_mentions"]["parse"]  # nobody gets pinged
    send = buttons(reply.payload)[0]
    assert send.startswith("mg:send:")
    # the preview is visible in the channel, but only Alice's click counts
    await d.click(fake.messages[reply.message_id], send, user=BOB)
    assert "someone else" in fake.calls[-1].payload["content"] and posts(stack.engine) == []
    await d.click(fake.messages[reply.message_id], send, user=ALICE)
    assert len(posts(stack.engine)) == 1
    # the public preview goes; "Sent ✓" with Undo is Alice's alone, never a note in the channel
    gone, note = fake.calls[-2:]
    assert gone.kind == "delete_original"
    assert note.kind == "followup" and note.payload["flags"] & EPHEMERAL and note.payload["content"] == "Sent ✓"
    assert buttons(note.payload)[0].startswith("mg:undo:")
    (_, post) = fake.calls_of("channel_message")  # the GIF answers the mention, as the preview did
    assert post.payload["message_reference"]["message_id"] == asked and post.payload["embeds"]
    await d.say("happy", user=BOB)  # no mention, not watched: nothing
    assert len(fake.calls_of("channel_message")) == 2

    # a mention with no words: the feelings, in public, but they are Alice's to pick
    stack.clock.advance(60)
    await d.say(f"<@{APP_ID}>", user=ALICE, mention_bot=True)
    choices = fake.calls_of("channel_message")[-1]
    happiness = next(i for i in buttons(choices.payload) if i.startswith("mg:pick:happiness"))
    assert happiness == f"mg:pick:happiness/{ALICE[0]}"
    n_sessions_before = len(fake.calls)
    await d.click(fake.messages[choices.message_id], happiness, user=BOB)
    refused = fake.calls[-1]
    assert refused.kind == "followup" and refused.payload["flags"] & EPHEMERAL
    assert "Only the person who asked" in refused.payload["content"]
    assert not [c for c in fake.calls[n_sessions_before:] if c.kind == "edit_original"]
    await d.click(fake.messages[choices.message_id], happiness, user=ALICE)
    assert fake.calls[-1].kind == "edit_original" and buttons(fake.calls[-1].payload)[0].startswith("mg:send:")


async def test_a_mention_where_the_bot_may_not_write_is_answered_by_dm(stack: Stack, caplog) -> None:  # type: ignore[no-untyped-def]
    d, fake = stack.d, stack.fake
    fake.refuse_channel_messages = True
    await d.say(f"<@{APP_ID}> happy", user=ALICE, mention_bot=True)
    assert fake.calls_of("refused") and fake.calls_of("dm_open")
    (note,) = [c for c in fake.calls_of("channel_message") if c.payload["channel_id"] in fake.dm_channels]
    assert "I can't write in" in note.payload["content"] and "/gif" in note.payload["content"]
    assert "message handling failed" not in caplog.text
    with session_scope(stack.engine) as s:  # the preview nobody could see is closed
        assert [row.state for row in s.query(ChatSession)] == ["cancelled"]


async def test_watched_channel_offers_by_dm_only_when_opted_in(sqlite_settings, sqlite_engine) -> None:
    st = await _stack(sqlite_settings, sqlite_engine, watch=True)
    try:
        assert st.d.bot.intents.message_content
        await st.d.say("happy happy joy", user=BOB)
        assert st.fake.calls == []
        sess.set_scoped(st.engine, "discord", str(GUILD), str(CHANNEL), "watch", "on")
        await st.d.say("happy happy joy", user=BOB)
        assert st.fake.calls_of("dm_open")[0].payload["recipient_id"] == BOB[0]
        (offer,) = st.fake.calls_of("channel_message")
        assert offer.payload["channel_id"] != CHANNEL and "/gif" in offer.payload["content"]
        jump = f"https://discord.com/channels/{GUILD}/{CHANNEL}/"
        assert jump in offer.payload["content"] and discord_adapter.FOR_MESSAGE in offer.payload["content"]
        assert buttons(offer.payload) == ["mg:dismiss"]
    finally:
        await st.d.close()


def test_intents_are_minimal_and_the_invite_asks_for_exactly_what_is_used(sqlite_engine) -> None:
    intents = discord_adapter.wanted_intents(False)
    assert not (intents.members or intents.presences or intents.message_content)
    assert intents.guilds and intents.guild_reactions and intents.guild_messages
    assert discord_adapter.watch_enabled(sqlite_engine) is False
    sess.set_scoped(sqlite_engine, "discord", str(GUILD), str(CHANNEL), "watch", "on")
    assert discord_adapter.watch_enabled(sqlite_engine) is True
    url = discord_adapter.invite_url(123)
    assert "client_id=123" in url and "applications.commands" in url
    assert f"permissions={discord_adapter.INVITE_PERMISSIONS.value}" in url
    assert not discord_adapter.INVITE_PERMISSIONS.administrator
    import base64

    token = base64.b64encode(b"123456789012345678").decode().rstrip("=") + ".x.y"
    assert discord_adapter.client_id_from_token(token) == 123456789012345678
    from click.testing import CliRunner

    from bot.cli import cli

    home = {"MOODGIF_HOME": str(sqlite_engine.url.database).rsplit("/", 1)[0]}
    ok = CliRunner().invoke(cli, ["discord", "invite-url"], env={**home, "DISCORD_TOKEN": token})
    assert ok.exit_code == 0 and "client_id=123456789012345678" in ok.stdout
    bad = CliRunner().invoke(cli, ["discord", "invite-url"], env={**home, "DISCORD_TOKEN": "not-a-token"})
    assert bad.exit_code == 1 and "does not look like a bot token" in bad.output  # it is set: say what is wrong


async def test_start_is_off_without_a_token(sqlite_settings) -> None:
    assert await discord_adapter.start(None, sqlite_settings) is None  # type: ignore[arg-type]
    sharded = discord_adapter.build_bot(None, sqlite_settings.override(discord__sharded=True))
    assert isinstance(sharded, discord.AutoShardedClient)


async def test_sync_registers_the_commands_through_discords_rest_api(sqlite_settings, monkeypatch) -> None:
    """`moodgif discord sync --guild G`: login, then one bulk PUT of /gif, /gif-admin and the
    message menu's "GIF for this message"."""

    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from fake_discord import BOT_USER

    seen: list[tuple[str, str, Any]] = []

    def json_response(data: Any, status: int = 200) -> web.Response:
        # discord.py reads JSON only for exactly "application/json" (no charset), as Discord sends
        return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        seen.append((request.method, request.path, body))
        if request.path.endswith("/users/@me"):
            return json_response(BOT_USER)
        if request.path.endswith("/oauth2/applications/@me"):
            return json_response({"id": str(APP_ID), "name": "moodgif", "icon": None, "description": "",
                                      "rpc_origins": [], "bot_public": True, "bot_require_code_grant": False,
                                      "owner": BOT_USER, "summary": "", "verify_key": "k", "flags": 0})
        if request.method == "PUT" and request.path.endswith("/commands"):
            # as Discord answers: a context menu's description comes back empty
            return json_response([{"description": "", **c, "id": str(APP_ID + i + 1), "application_id": str(APP_ID),
                                       "version": "1", "guild_id": str(GUILD)} for i, c in enumerate(body)])
        return json_response({"message": "unknown", "code": 0}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        monkeypatch.setattr(discord.http.Route, "BASE", str(server.make_url("/api/v10")))
        settings = sqlite_settings.override(discord__token="bot-token-for-the-fake")
        names = await discord_adapter.sync_commands(settings, GUILD)
    finally:
        await server.close()
    assert sorted(names) == [discord_adapter.FOR_MESSAGE, "gif", "gif-admin"]
    (put,) = [s for s in seen if s[0] == "PUT"]
    assert put[1] == f"/api/v10/applications/{APP_ID}/guilds/{GUILD}/commands"
    admin = next(c for c in put[2] if c["name"] == "gif-admin")
    assert int(admin["default_member_permissions"]) == discord.Permissions(manage_guild=True).value
    assert admin.get("contexts") == [0] or admin.get("dm_permission") is False
    gif = next(c for c in put[2] if c["name"] == "gif")
    assert gif["options"][0]["autocomplete"] is True
    menu = next(c for c in put[2] if c["name"] == discord_adapter.FOR_MESSAGE)
    assert menu["type"] == 3 and "options" not in menu  # a message's Apps menu


async def test_preview_and_autocomplete_show_how_the_request_was_read(stack: Stack) -> None:
    d, fake = stack.d, stack.fake
    give_words(stack.core, stack.engine)
    await d.slash("gif", words("happy cat"), user=ALICE)
    embed = fake.calls[-1].payload["embeds"][0]
    assert embed["title"] == "happiness · cat"
    assert "happiness" in embed["description"] and "topic: cat" in embed["description"]

    await d.slash("gif", [{"name": "words", "type": 3, "value": "happy cat", "focused": True}],
                  user=ALICE, autocomplete=True)
    first = fake.calls[-1].payload["data"]["choices"][0]
    assert first == {"name": "→ happiness · topic: cat", "value": "happy cat"}
    await d.slash("gif", [{"name": "words", "type": 3, "value": "happy unicorn", "focused": True}],
                  user=ALICE, autocomplete=True)
    first = fake.calls[-1].payload["data"]["choices"][0]
    assert first["name"] == "→ happiness · no GIFs about unicorn"
    await d.slash("gif", [{"name": "words", "type": 3, "value": "ugh", "focused": True}],
                  user=ALICE, autocomplete=True)  # unsure: the switches the preview will offer
    assert fake.calls[-1].payload["data"]["choices"][0]["name"] == "→ anger (or contempt / disgust / sadness)"


async def test_switch_buttons_are_the_askers_alone_and_a_forged_one_goes_nowhere(stack: Stack) -> None:
    d, fake = stack.d, stack.fake
    token = await d.slash("gif", words("ugh"), user=ALICE)
    preview = fake.originals[token]
    sid = buttons(preview)[0].split(":")[2]
    switches = [c for c in buttons(preview) if c.startswith("mg:switch:")]
    assert switches == [f"mg:switch:{e}:{sid}" for e in ("contempt", "disgust", "sadness")]
    rows = [[c.get("label") or c.get("placeholder") for c in row["components"]] for row in preview["components"]]
    assert rows[-2:] == [["or contempt", "or disgust", "or sadness"], ["Another feeling…"]]  # rows of their own
    assert "fear" in select_options(preview, "mg:other:") and "anger" not in select_options(preview, "mg:other:")
    await d.click(preview, switches[0], user=BOB)
    assert "someone else" in fake.calls[-1].payload["content"]
    await d.select(preview, f"mg:other:{sid}", ["fear"], user=BOB)  # the menu is hers alone too
    assert "someone else" in fake.calls[-1].payload["content"]
    before = len(fake.calls)
    await d.click(preview, f"mg:switch:smug:{sid}", user=ALICE)  # a custom id the message lacks
    assert len(fake.calls) == before  # discord.py routes only buttons the message has
    click = await d.click(preview, switches[0], user=ALICE)
    switched = fake.calls[-1]
    assert switched.kind == "edit_original" and "contempt" in json.dumps(switched.payload["embeds"])
    assert f"mg:switch:anger:{buttons(switched.payload)[0].split(':')[2]}" in buttons(fake.originals[click])
    assert ledger(stack.engine) == []


async def test_gif_for_someones_message_reads_its_words_privately(stack: Stack) -> None:
    """A message's Apps menu -> "GIF for this message": the preview reads that message's words
    and is the clicker's alone; Send posts as from /gif."""
    d, fake = stack.d, stack.fake
    said = d.chat_message("my pull request got rejected again 😭", user=BOB)
    token = await d.message_command(discord_adapter.FOR_MESSAGE, said, user=ALICE)
    callback, edit = fake.calls[-2:]
    assert callback.payload["type"] == 5 and callback.payload["data"]["flags"] & EPHEMERAL
    assert edit.kind == "edit_original" and edit.token == token
    assert "Read as feeling: sadness" in json.dumps(edit.payload)
    ids = buttons(edit.payload)
    assert ids[0].startswith("mg:send:")
    assert "belongs to someone else" in await _clicked_by_someone_else(d, fake, token, ids[0])
    await d.click(fake.originals[token], ids[0], user=ALICE)
    # Send answers Bob's message: the GIF is a reply to it, pinging nobody
    (post,) = fake.calls_of("channel_message")
    assert post.payload["message_reference"]["message_id"] == int(said["id"])
    assert not post.payload["allowed_mentions"]["parse"] and not post.payload["allowed_mentions"]["replied_user"]
    assert "<@950000000000000001>" in post.payload["embeds"][0]["description"]
    assert posts(stack.engine)[-1][2] == str(post.message_id)  # votes and Undo find the reply
    assert not fake.calls_of("followup")[-1].payload.get("embeds")  # only the private "Sent ✓"

    # where the bot may not write (a user-installed app, a locked channel) it posts as /gif does
    fake.refuse_channel_messages = True
    again = await d.message_command(discord_adapter.FOR_MESSAGE, said, user=CAROL)  # Alice: cooldown
    await d.click(fake.originals[again], buttons(fake.calls[-1].payload)[0], user=CAROL)
    assert fake.calls_of("refused") and len(fake.calls_of("channel_message")) == 1
    (fallback,) = [c for c in fake.calls_of("followup") if c.payload.get("embeds")]
    assert posts(stack.engine)[-1][2] == str(fallback.message_id)

    # a message with no words (an image, a sticker) gets the feelings to pick from
    await d.message_command(discord_adapter.FOR_MESSAGE, d.chat_message("", user=BOB), user=ALICE)
    assert len(buttons(fake.calls[-1].payload)) == 17


async def _clicked_by_someone_else(d: DiscordDriver, fake: FakeDiscord, token: str, custom_id: str) -> str:
    await d.click(fake.originals[token], custom_id, user=CAROL)
    return json.dumps(fake.calls[-1].payload)


async def test_the_sender_can_undo_a_send_and_the_post_is_deleted(stack: Stack) -> None:
    d, fake, engine = stack.d, stack.fake, stack.engine
    token = await d.slash("gif", words("happy"), user=ALICE)
    click = await d.click(fake.originals[token], buttons(fake.calls[-1].payload)[1], user=ALICE)  # shuffle
    sent = await d.click(fake.originals[click], buttons(fake.calls[-1].payload)[0], user=ALICE)  # send
    (post,) = fake.calls_of("followup")
    sent_note = fake.calls[-1]
    undo_id = buttons(sent_note.payload)[0]
    assert undo_id == f"mg:undo:{posts(engine)[0][0]}" and sources(engine)["send"] == 1

    note = fake.originals[sent]
    await d.click(note, undo_id, user=BOB)  # Bob may not take Alice's Send back
    assert "Only the person who sent" in fake.calls[-1].payload["content"]
    assert not fake.calls_of("message_delete")
    await d.click(note, undo_id, user=ALICE)
    (deleted,) = fake.calls_of("message_delete")
    assert deleted.message_id == post.message_id and post.message_id not in fake.messages
    assert "Taken back" in fake.calls[-1].payload["content"] and sources(engine)["send"] == 0
    await d.click(note, undo_id, user=ALICE)  # twice: nothing more to take back
    assert "already taken back" in fake.calls[-1].payload["content"]


async def test_a_send_discord_failed_to_post_is_taken_back_and_can_be_sent_again(stack: Stack) -> None:
    d, fake, engine = stack.d, stack.fake, stack.engine
    token = await d.slash("gif", words("happy"), user=ALICE)
    click = await d.click(fake.originals[token], buttons(fake.calls[-1].payload)[1], user=ALICE)  # shuffle
    send_id = buttons(fake.calls[-1].payload)[0]
    fake.failing_followups = 1
    await d.click(fake.originals[click], send_id, user=ALICE)
    assert fake.calls_of("followup_failed") and not fake.calls_of("edit_original")[2:]
    note = fake.calls[-1]  # said privately; the preview is left as it was
    assert note.kind == "followup" and note.payload["flags"] & EPHEMERAL
    assert "nothing was sent" in note.payload["content"]
    assert posts(engine) == [] and sources(engine)["send"] == 0
    await d.click(fake.originals[click], send_id, user=ALICE)  # the outage is over
    (post,) = [c for c in fake.calls_of("followup") if not c.payload.get("flags", 0) & EPHEMERAL]
    assert posts(engine)[0][2] == str(post.message_id) and sources(engine)["send"] == 1


# --- connecting: an unreachable Discord is retried; a refused token or intent is not ----------
FAST = discord_adapter.Retry(first_s=0.001, max_s=0.004)  # no test waits real seconds


async def _until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)


def _discord_health() -> dict[str, Any]:
    return get_health().snapshot()["components"].get("discord") or {}


async def _start(sqlite_settings: Any, sqlite_engine: Any, *, sharded: bool = False,
                 retry: discord_adapter.Retry = FAST, watch: bool = True) -> Any:
    core, settings, _ = make_core(sqlite_settings, sqlite_engine, discord__token="bot-token-for-the-fake",
                                  discord__sharded=sharded, discord__watch=watch)
    get_health().reset()
    bot = await discord_adapter.start(core, settings, retry=retry)
    assert bot is not None
    bot._connection.guild_ready_timeout = 0  # READY lists no guilds: wait for none
    return bot


@pytest.mark.parametrize("sharded", [False, True], ids=["one-shard", "sharded"])
async def test_start_retries_while_discord_cannot_be_reached_then_connects(
        sqlite_settings, sqlite_engine, monkeypatch, caplog, sharded: bool) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="bot.adapters.discord")
    server = FakeDiscordServer()
    server.point_here(monkeypatch)  # nothing listens there yet: the network is down
    bot = await _start(sqlite_settings, sqlite_engine, sharded=sharded)
    try:
        await _until(lambda: caplog.text.count("cannot reach Discord") >= 3, "three tries")
        tries = [r.getMessage() for r in caplog.records if "cannot reach Discord" in r.getMessage()]
        assert all(r.startswith("Discord: cannot reach Discord (network: ClientConnectorError: ")
                   and " s" in r.rsplit("retrying in ", 1)[1] for r in tries)
        assert not bot.runner.done()
        state = _discord_health()  # what /readyz lists as failing meanwhile, without the address
        assert state["ok"] is False and state["detail"].startswith(
            "cannot reach Discord (network: ClientConnectorError: ") and "127.0.0.1" not in state["detail"]

        # the network is back, but Discord answers 503 once (and, sharded, its gateway lookup once)
        server.failing = 1
        server.failing_gateway_lookups = 1 if sharded else 0
        await server.start()
        await _until(lambda: _discord_health().get("ok"), "connected")
        assert _discord_health()["detail"] == "gateway connected"
        assert "cannot reach Discord (Discord answered 503)" in caplog.text
        assert ("cannot reach Discord (gateway lookup: Discord answered 503)" in caplog.text) is sharded
        (identify,) = server.identified
        assert identify["intents"] == discord_adapter.wanted_intents(False).value
        assert "Unclosed" not in caplog.text  # each failed login's HTTP session was closed
        assert "Discord stopped" not in caplog.text
    finally:
        await bot.close()
        await server.close()
    assert bot.runner.done() and _discord_health()["detail"] == "stopped: closed"


async def test_a_dns_failure_is_named_as_such() -> None:
    """What aiohttp raises when the name does not resolve (a resolver that fails as the
    system's does when DNS is down), in the words the log and /readyz use."""
    import socket

    import aiohttp

    class NoDns(aiohttp.abc.AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

        async def close(self) -> None:
            pass

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=NoDns())) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as failed:
            await session.get("https://discord.com/api/v10/users/@me")
    assert isinstance(failed.value, discord_connect.UNREACHABLE)
    assert discord_connect.unreachable_reason(failed.value) == (
        "DNS: ClientConnectorDNSError: Temporary failure in name resolution")


async def test_a_shutdown_does_not_wait_for_the_next_try(sqlite_settings, sqlite_engine, monkeypatch,
                                                         caplog) -> None:  # type: ignore[no-untyped-def]
    FakeDiscordServer().point_here(monkeypatch)  # never listens
    slow = discord_adapter.Retry(first_s=600.0, max_s=600.0)
    bot = await _start(sqlite_settings, sqlite_engine, retry=slow)
    await _until(lambda: "cannot reach Discord" in caplog.text, "a first try")
    wait = float(caplog.text.split("retrying in ", 1)[1].split(" s", 1)[0])
    assert 480 <= wait <= 600  # the first wait, drawn from its top fifth down
    await asyncio.wait_for(bot.close(), timeout=2.0)
    assert bot.runner.done() and bot.is_closed()


async def test_a_refused_token_or_intent_stops_discord_at_once_saying_what_to_do(
        sqlite_settings, sqlite_engine, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    server = FakeDiscordServer()
    server.point_here(monkeypatch)
    server.refuse_token = True
    await server.start()
    try:
        bot = await _start(sqlite_settings, sqlite_engine)
        await asyncio.wait_for(bot.runner, timeout=10)
        await bot.close()
        assert server.rest == ["GET /api/v10/users/@me"]  # once: a retry cannot mend a token
        assert "the token was refused; check DISCORD_TOKEN" in caplog.text
        assert _discord_health() == {**_discord_health(), "ok": False, "detail": "stopped: the token was refused"}

        # a channel watches, so the bot asks for Message Content, which the Portal does not allow
        sess.set_scoped(sqlite_engine, "discord", str(GUILD), str(CHANNEL), "watch", "on")
        server.refuse_token, server.refuse_intents = False, True
        bot = await _start(sqlite_settings, sqlite_engine)
        await asyncio.wait_for(bot.runner, timeout=10)
        await bot.close()
        (identify,) = server.identified
        assert identify["intents"] == discord_adapter.wanted_intents(True).value
        (refused,) = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
        assert "/gif-admin channel key:watch value:on" in refused
        assert "Privileged Gateway Intents → Message Content Intent" in refused and "restart moodgif" in refused
        assert "MOODGIF_DISCORD_WATCH=off" in refused
        assert _discord_health()["detail"] == (
            "stopped: the Message Content intent is not enabled in the Developer Portal")
        assert "cannot reach Discord" not in caplog.text and "Discord stopped" not in caplog.text

        # the operator's way out: the channel still watches, but the bot no longer asks
        server.identified.clear()
        bot = await _start(sqlite_settings, sqlite_engine, watch=False)
        await _until(lambda: server.identified, "a connection without the intent")
        await bot.close()
        (identify,) = server.identified
        assert identify["intents"] == discord_adapter.wanted_intents(False).value
    finally:
        await server.close()


async def test_watch_on_says_it_waits_for_the_message_content_intent(sqlite_settings, sqlite_engine,
                                                                     caplog) -> None:  # type: ignore[no-untyped-def]
    def watch(value: str) -> list[dict[str, Any]]:
        return [{"name": "channel", "type": 1, "options": [
            {"name": "key", "type": 3, "value": "watch"}, {"name": "value", "type": 3, "value": value}]}]

    admin: dict[str, Any] = {"user": BOB, "perms": MANAGE_GUILD}
    st = await _stack(sqlite_settings, sqlite_engine)  # started with no channel watching: intent off
    try:
        await st.d.slash("gif-admin", watch("on"), **admin)
        answer = st.fake.calls[-1].payload["content"]
        assert answer.startswith("watch for this channel is now on.\n")
        assert "Watching starts only after the bot's operator enables the **Message Content** intent" in answer
        assert "restarts the bot" in answer
        (line,) = [r for r in caplog.records if "Message Content intent" in r.getMessage()]
        assert line.levelno == logging.WARNING and str(CHANNEL) in line.getMessage()
        await st.d.slash("gif-admin", watch("off"), **admin)
        assert st.fake.calls[-1].payload["content"] == "watch for this channel is now off."
    finally:
        await st.d.close()
    st = await _stack(sqlite_settings.override(discord__watch=False), sqlite_engine)  # the operator's switch
    try:
        await st.d.slash("gif-admin", watch("on"), **admin)
        answer = st.fake.calls[-1].payload["content"]
        assert "MOODGIF_DISCORD_WATCH=off" in answer and "Developer Portal" not in answer
    finally:
        await st.d.close()
    caplog.clear()
    st = await _stack(sqlite_settings, sqlite_engine, watch=True)  # the bot reads messages already
    try:
        await st.d.slash("gif-admin", watch("on"), **admin)
        assert st.fake.calls[-1].payload["content"] == "watch for this channel is now on."
        assert "Message Content intent" not in caplog.text
    finally:
        await st.d.close()
