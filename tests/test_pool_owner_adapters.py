"""Pools belong to whoever added them, through the real adapters: one multi-workspace (OAuth)
Slack installation with two workspaces, and a Discord server, on one bot core.

tests/test_pool_owner.py proves the rule through `BotCore`; here every request is a signed
Slack request into the real bolt app (the workspaces installed through the real OAuth flow,
each with its own bot token) or a gateway payload into the real discord.py bot, so the team
and guild ids the adapters read are what tell the workspaces apart. Workspace A's admin adds
a pool from chat; workspace B and the Discord server must never see, rank, list, pick, add to
or hide its GIFs, in any way a person can ask.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _adapter_core import Clock, posts, sources
from aiohttp.test_utils import TestServer
from fake_discord import APP_ID, MANAGE_GUILD, DiscordDriver, FakeDiscord, buttons
from fake_slack import FakeSlack
from test_core import Env
from test_discord import ALICE as DISCORD_ALICE
from test_discord import words
from test_pool_owner import _finished, _manifest_shas, env, own_gifs, worker  # noqa: F401
from test_slack import CHANNEL, SECRET, Stack, _buttons, _images, _menu, next_trigger, until

from bot.adapters import discord as discord_adapter
from bot.adapters import slack as slack_adapter
from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_tokens import new_key
from bot.adapters.web import build_app
from bot.serve import mount_adapters
from scorer.settings import Settings

TEAM_A, TEAM_B = "T0AAAAAAA", "T0BBBBBBB"
TOKENS = {TEAM_A: "xoxb-team-a-0123456789", TEAM_B: "xoxb-team-b-0123456789"}
ADMIN_A, ADMIN_B = "U0ADMINA", "U0ADMINB"
BOTH = "U0BOTH"  # one user id in both teams (an Enterprise Grid org): an admin of A only
CAROL, DAVE = "U0CAROL", "U0DAVE"  # named by the operator: Carol for B only, Dave everywhere


@dataclass
class Install:
    """The one installation: its core, the fake Slack, and a request maker per workspace."""

    env: Env
    fake: FakeSlack
    settings: Settings
    a: Stack
    b: Stack

    def discord(self) -> DiscordDriver:
        """The Discord server, on the same core (built after Slack's first command: the
        driver waits for every task started after it, and Slack's workers run for good)."""
        bot = discord_adapter.build_bot(self.env.core, self.settings,
                                        intents=discord_adapter.wanted_intents(False))
        return DiscordDriver(bot, FakeDiscord())


async def _install_workspace(http: aiohttp.ClientSession, server: TestServer, team: str) -> None:
    """A workspace admin's "Add to Slack": /slack/install, then Slack's redirect back with
    the code (the fake's `oauth.v2.access` answers it with that team's bot token)."""
    async with http.get(server.make_url(slack_adapter.INSTALL_PATH), allow_redirects=False) as r:
        page = await r.text()
        cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    match = re.search(r"state=([\w-]+)", r.headers.get("Location", "") + page)
    assert match is not None, page
    url = server.make_url(slack_adapter.REDIRECT_PATH).with_query(code=f"install-{team}", state=match[1])
    async with http.get(url, headers={"Cookie": cookie}, allow_redirects=False) as r:
        assert r.status == 200, await r.text()


@pytest.fixture
async def install(worker: Env) -> AsyncIterator[Install]:  # noqa: F811
    admins = (f"{TEAM_A}:{ADMIN_A}", f"{TEAM_B}:{ADMIN_B}", f"{TEAM_A}:{BOTH}")
    async with FakeSlack(admins=admins, workspaces=TOKENS) as fake:
        settings = worker.settings.override(
            slack__client_id="111.222", slack__client_secret="oauth-secret-xyz",
            slack__signing_secret=SECRET, slack__secret_key=new_key(), slack__api_url=fake.api_url,
            http__public_url="https://gifs.example.org",
            slack__admin_user_ids=[f"{TEAM_B}:{CAROL}", DAVE])
        app = build_app(worker.core, settings, worker.engine)
        assert "slack (HTTP events)" in mount_adapters(app, worker.core, settings, worker.engine)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                for team in TOKENS:
                    await _install_workspace(http, server, team)
                a = Stack(fake, worker.core, worker.engine, Clock(),
                          str(server.make_url(slack_adapter.EVENTS_PATH)), http, team=TEAM_A)
                yield Install(worker, fake, settings, a, dataclasses.replace(a, team=TEAM_B))
        finally:
            await server.close()


# ---------------------------------------------------------------------------------------
# what Slack was told


def _sent_to(fake: FakeSlack, hook: str) -> list[dict[str, Any]]:
    return [c.data for c in fake.calls_to("webhook") if c.token == hook]


async def _answers(stack: Stack, n: int = 1) -> list[dict[str, Any]]:
    """The first `n` messages to the response_url of `stack`'s latest command or click."""
    hook = stack.last_hook
    await until(lambda: len(_sent_to(stack.fake, hook)) >= n)
    return _sent_to(stack.fake, hook)


async def _gif(stack: Stack, text: str, user: str = "U0ALICE") -> tuple[dict[str, Any], dict[str, Any]]:
    """/gif TEXT: its preview and the poll after it (this core polls after every preview)."""
    await stack.command(text, user=user)
    preview, poll = await _answers(stack, 2)
    return preview, poll


async def _admin(stack: Stack, text: str, user: str) -> str:
    await stack.command(text, user=user, command="/gif-admin")
    return (await _answers(stack))[0]["text"]


async def _click(stack: Stack, action_id: str, value: str, user: str = "U0ALICE") -> dict[str, Any]:
    await stack.click(action_id, value, user=user)
    return (await _answers(stack))[0]


def _shas(message: dict[str, Any]) -> set[str]:
    """The GIFs a Slack message shows (its image blocks' URLs end in <sha>.gif)."""
    raw = message.get("blocks", [])
    shown = _images({"blocks": json.loads(raw) if isinstance(raw, str) else raw})
    return {image["image_url"].rsplit("/", 1)[1].removesuffix(".gif") for image in shown}


async def _shuffle_to_the_end(stack: Stack, preview: dict[str, Any], user: str = "U0ALICE") -> set[str]:
    """Every GIF a preview's Shuffle offers, until it has none left."""
    seen = _shas(preview)
    sid = _buttons(preview)[blocks.SHUFFLE]
    for _ in range(40):
        shown = await _click(stack, blocks.SHUFFLE, sid, user)
        seen |= _shas(shown)
        if "That's every" in json.dumps(shown):
            return seen
    raise AssertionError("Shuffle never ran out")


async def _add_pool(install: Install, name: str, source: Path) -> set[str]:
    """Workspace A's admin adds a pool from chat; the worker runs the job (its scoring makes
    these GIFs the best for every feeling). Returns the pool's GIFs."""
    said = await _admin(install.a, f"pools add {name} {source}", ADMIN_A)
    assert said.startswith(f"Adding pool {name} from "), said
    row = await _finished(install.env)
    assert row.state == "done" and row.args["owner"] == f"slack:{TEAM_A}", row.detail
    return set(_manifest_shas(source))


# ---------------------------------------------------------------------------------------
# Slack: two workspaces of one installation


async def test_a_workspaces_pool_is_offered_listed_and_named_in_that_workspace_only(
        install: Install, own_gifs: Path) -> None:  # noqa: F811
    a, b, fake = install.a, install.b, install.fake
    bees = await _add_pool(install, "bees", own_gifs)

    # A: its channels offer the new pool's GIFs, and its admin lists the pool as its own
    preview, _poll = await _gif(a, "happy")
    assert _shas(preview) <= bees
    assert "bees: 4 GIFs, 4 ranked (this workspace's)" in await _admin(a, "pools list", ADMIN_A)

    # B: the preview, its poll and every Shuffle come from the shared pool alone
    preview, poll = await _gif(b, "happy")
    assert _shas(poll) and not _shas(poll) & bees
    offered = await _shuffle_to_the_end(b, preview)
    assert len(offered) == 24 and not offered & bees

    # B's admin: never lists it, picks it, adds to it, reads its job, or finds its GIFs
    listed = await _admin(b, "pools list", ADMIN_B)
    assert "demo: 24 GIFs" in listed and "bees" not in listed
    picked = await _admin(b, "channel pools bees", ADMIN_B)
    assert picked.startswith("No pool named bees here; the pools are demo"), picked
    assert await _admin(b, f"pools add bees {own_gifs}", ADMIN_B) == (
        "pool bees belongs to another workspace: choose another name")
    stats = await _admin(b, "stats", ADMIN_B)
    assert "comparisons" in stats and "bees" not in stats and str(own_gifs) not in stats
    bee = sorted(bees)[0]
    assert await _admin(b, f"hide {bee[:12]}", ADMIN_B) == (
        f"No GIF here has a SHA-256 starting with {bee[:12]}, or more than one does.")
    assert (await _admin(a, f"hide {bee[:12]}", ADMIN_A)).startswith("Hidden: ")
    assert len(install.env.core.jobs) == 1  # B's refused add queued nothing

    # each workspace's own bot token answered its own requests
    assert {(c.data["user"], c.token) for c in fake.calls_to("users.info")} == {
        (ADMIN_A, TOKENS[TEAM_A]), (ADMIN_B, TOKENS[TEAM_B])}


async def test_no_other_way_in_shows_another_workspaces_gifs(install: Install, own_gifs: Path) -> None:  # noqa: F811
    """A mention, "GIF for this message", a watched channel's offer, a switch, the
    "Another feeling…" menu, the help's feelings: none of them shows B a GIF of A's pool,
    and B's Send posts with B's token."""
    b, fake = install.b, install.fake
    bees = await _add_pool(install, "bees", own_gifs)

    await b.event({"type": "app_mention", "user": "U0BOB", "channel": CHANNEL,
                   "text": "<@UBOTMOOD> so happy", "ts": "1700000001.000100", "event_ts": "1"})
    (mention,) = await fake.wait_for("chat.postEphemeral", 1)
    assert mention.token == TOKENS[TEAM_B] and _shas(mention.data) and not _shas(mention.data) & bees

    shortcut = {
        "type": "message_action", "callback_id": blocks.FOR_MESSAGE, "token": "legacy",
        "action_ts": "1700000001.000200", "trigger_id": next_trigger(), "response_url": b.hook(),
        "team": {"id": TEAM_B, "domain": "b"}, "channel": {"id": CHANNEL, "name": "general"},
        "user": {"id": "U0BOB", "username": "bob", "team_id": TEAM_B},
        "message": {"type": "message", "user": "U0CAROL", "ts": "1700000000.000100",
                    "text": "we shipped it, I'm so happy"},
    }
    await b.post("payload=" + urllib.parse.quote(json.dumps(shortcut)))
    (for_message,) = await _answers(b)
    assert _shas(for_message) and not _shas(for_message) & bees

    assert "watch for this channel is now on" in await _admin(b, "channel watch on", ADMIN_B)
    await b.event({"type": "message", "user": "U0CAROL", "channel": CHANNEL,
                   "text": "I am so happy today!!", "ts": "1700000002.000100"})
    offer = (await fake.wait_for("chat.postEphemeral", 2))[1]
    assert offer.token == TOKENS[TEAM_B] and _shas(offer.data) and not _shas(offer.data) & bees

    preview, _poll = await _gif(b, "ugh")
    sid = _buttons(preview)[blocks.SEND]
    switched = await _click(b, f"{blocks.SWITCH}:sadness", f"{sid}|sadness")
    assert "sadness" in switched["text"] and _shas(switched) and not _shas(switched) & bees
    other = _menu(switched, blocks.OTHER)["happiness"]
    await b.select(blocks.OTHER, other)
    (happy,) = await _answers(b)
    assert _shas(happy) and not _shas(happy) & bees

    await b.command("")
    (helped,) = await _answers(b)
    picked = await _click(b, f"{blocks.CHOOSE}:relief", "relief")
    assert "relief" in picked["text"] and _shas(picked) and not _shas(picked) & bees
    assert len([k for k in _buttons(helped) if k.startswith(blocks.CHOOSE)]) == 17

    await b.click(blocks.SEND, _buttons(picked)[blocks.SEND])
    (posted,) = await fake.wait_for("chat.postMessage", 1)
    assert posted.token == TOKENS[TEAM_B] and not _shas(posted.data) & bees



# ---------------------------------------------------------------------------------------
# Discord: a server of the same installation


def _discord_shas(call: Any) -> set[str]:
    """The GIFs a Discord message shows: each attached as <sha>.gif."""
    return {name.removesuffix(".gif") for name in call.files}


async def _discord_admin(d: DiscordDriver, sub: str, **options: str) -> str:
    given = [{"name": k, "type": 3, "value": v} for k, v in options.items()]
    await d.slash("gif-admin", [{"name": sub, "type": 1, "options": given}], user=DISCORD_ALICE,
                  perms=MANAGE_GUILD)
    return d.fake.calls[-1].payload["content"]


async def test_a_discord_server_never_sees_a_slack_workspaces_pool(install: Install, own_gifs: Path) -> None:  # noqa: F811
    bees = await _add_pool(install, "bees", own_gifs)
    d = install.discord()
    await d.setup()
    try:
        fake = d.fake
        token = await d.slash("gif", words("happy"), user=DISCORD_ALICE)
        (poll,) = fake.calls_of("followup")
        assert len(_discord_shas(poll)) == 2 and not _discord_shas(poll) & bees
        message, shuffle = fake.originals[token], buttons(fake.originals[token])[1]
        offered = _discord_shas(next(c for c in fake.calls if c.token == token and c.kind == "edit_original"))
        for _ in range(40):
            await d.click(message, shuffle, user=DISCORD_ALICE)
            shown = fake.calls[-1]
            offered |= _discord_shas(shown)
            if "That's every" in json.dumps(shown.payload):
                break
        assert len(offered) == 24 and not offered & bees

        await d.say(f"<@{APP_ID}> so happy", user=DISCORD_ALICE, mention_bot=True)
        mention = fake.calls_of("channel_message")[-1]
        assert _discord_shas(mention) and not _discord_shas(mention) & bees

        listed = await _discord_admin(d, "pools")
        assert "demo: 24 GIFs" in listed and "bees" not in listed
        assert await _discord_admin(d, "pools", action="add", name="bees", source=str(own_gifs)) == (
            "pool bees belongs to a Slack workspace: choose another name")  # not "another server"
        picked = await _discord_admin(d, "channel", key="pools", value="bees")
        assert picked.startswith("No pool named bees here; the pools are demo (`/gif-admin pools`)"), picked
        stats = await _discord_admin(d, "stats")
        assert "comparisons" in stats and "bees" not in stats and str(own_gifs) not in stats
        bee = sorted(bees)[0]
        assert await _discord_admin(d, "hide", gif=bee[:12]) == (
            f"No GIF here has a SHA-256 starting with {bee[:12]}, or more than one does.")
        assert len(install.env.core.jobs) == 1
    finally:
        await d.close()


async def test_a_discord_servers_own_pool_is_that_servers_alone(install: Install, own_gifs: Path) -> None:  # noqa: F811
    """The other way round: a pool the Discord server's admin adds is listed there as the
    server's own, and neither Slack workspace offers, lists or names it."""
    a, b = install.a, install.b
    await a.command("happy")  # Slack's workers start before the driver (see `Install.discord`)
    await _answers(a, 2)
    d = install.discord()
    await d.setup()
    try:
        added = await _discord_admin(d, "pools", action="add", name="wasps", source=str(own_gifs))
        assert added.startswith("Adding pool wasps from ") and "`/gif-admin stats`" in added, added
        row = await _finished(install.env)
        assert row.state == "done" and row.args["owner"].startswith("discord:"), row.detail
        assert "wasps: 4 GIFs, 4 ranked (this server's)" in await _discord_admin(d, "pools")
        token = await d.slash("gif", words("happy"), user=DISCORD_ALICE)
        first = next(c for c in d.fake.calls if c.token == token and c.kind == "edit_original")
        assert _discord_shas(first) <= set(_manifest_shas(own_gifs))
    finally:
        await d.close()
    wasps = set(_manifest_shas(own_gifs))
    for stack, admin in ((a, ADMIN_A), (b, ADMIN_B)):
        preview, poll = await _gif(stack, "happy")
        assert _shas(preview) and not (_shas(preview) | _shas(poll)) & wasps
        assert "wasps" not in await _admin(stack, "pools list", admin)
        assert (await _admin(stack, "channel pools wasps", admin)).startswith("No pool named wasps here")


# ---------------------------------------------------------------------------------------
# a topic only another workspace's pool has


def _tagged(manifest: Path, word: str) -> Path:
    """A manifest of the same GIFs, each titled and tagged `word` (beside them: a manifest
    reads its own folder)."""
    rows = list(csv.DictReader(manifest.open(newline="")))
    out = manifest.parent / f"{word}s.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "title": f"{word} waving", "tags": word} for row in rows)
    return out


async def test_a_topic_only_another_workspace_has_is_no_topic_in_any_answer(
        install: Install, own_gifs: Path) -> None:  # noqa: F811
    """Only A's pool has giraffes: B and the Discord server hear "no GIFs about giraffe", as
    for a word no GIF has, in the preview, a topic alone and Discord's typing hint."""
    a, b = install.a, install.b
    giraffes = await _add_pool(install, "zoo", _tagged(own_gifs, "giraffe"))
    preview, _poll = await _gif(a, "happy giraffe")
    assert _shas(preview) <= giraffes and "topic: giraffe" in json.dumps(preview)

    # B: exactly what it hears for a word no GIF has, in every way a request reads words
    for giraffe, okapi in (("happy giraffe", "happy okapi"), ("giraffe", "okapi")):
        said = [await _said(b, typed) for typed in (giraffe, okapi)]
        assert said[0].replace("giraffe", "okapi") == said[1], said
        assert "No giraffe GIFs in this pool" in said[0]
    preview, _poll = await _gif(b, "happy giraffe")
    assert _shas(preview) and not _shas(preview) & giraffes

    d = install.discord()
    await d.setup()
    try:
        hints = []
        for typed in ("happy giraffe", "happy okapi", "giraffe", "okapi"):
            await d.slash("gif", [{"name": "words", "type": 3, "value": typed, "focused": True}],
                          user=DISCORD_ALICE, autocomplete=True)
            hints.append(d.fake.calls[-1].payload["data"]["choices"][0]["name"])
        assert hints == ["→ happiness · no GIFs about giraffe", "→ happiness · no GIFs about okapi",
                         "→ no GIFs about giraffe", "→ no GIFs about okapi"]
        token = await d.slash("gif", words("giraffe"), user=DISCORD_ALICE)
        (answer,) = [c for c in d.fake.calls if c.token == token and c.kind == "edit_original"]
        assert answer.payload["content"].startswith("No giraffe GIFs in this pool."), answer.payload
    finally:
        await d.close()


async def _said(stack: Stack, text: str) -> str:
    """Every line of text the first answer to /gif TEXT shows (its blocks', or its own)."""
    await stack.command(text)
    message = (await _answers(stack))[0]
    lines = [e["text"] for blk in message.get("blocks", []) for e in
             ([blk["text"]] if blk["type"] == "section" else blk.get("elements", []) if blk["type"] == "context" else [])]
    return "\n".join(lines) or message["text"]


# ---------------------------------------------------------------------------------------
# people: the same user id in both teams, and what each workspace's Sends teach


async def _switch_and_send(stack: Stack, user: str, text: str, emotion: str) -> dict[str, Any]:
    """/gif TEXT, then the switch to `emotion`, then Send: what a person does to say these
    words meant `emotion`. Returns the switched preview."""
    preview, _poll = await _gif(stack, text, user)
    sid = _buttons(preview)[blocks.SEND]
    switched = await _click(stack, f"{blocks.SWITCH}:{emotion}", f"{sid}|{emotion}", user)
    posts = len(stack.fake.calls_to("chat.postMessage"))
    await stack.click(blocks.SEND, _buttons(switched)[blocks.SEND], user=user)
    await stack.fake.wait_for("chat.postMessage", posts + 1)
    return switched


def _feeling(preview: dict[str, Any]) -> str:
    """The feeling a Slack preview is of ("GIF preview: contempt (only you can see this)")."""
    return preview["text"].removeprefix("GIF preview: ").split(" ", 1)[0]


async def test_one_workspaces_sends_and_votes_never_teach_the_other(install: Install) -> None:
    """Two people in A send "ugh" as contempt: A now reads "ugh" their way and its admin sees
    it; B, and the person whose user id is in both teams, still get the parser's reading in B.
    A vote or a reaction sent from B on A's post counts nothing."""
    a, b, fake = install.a, install.b, install.fake
    for who in ("U0ALICE", "U0BOB"):
        await _switch_and_send(a, who, "ugh", "contempt")
    await _switch_and_send(a, BOTH, "ugh", "disgust")  # their own pick, in A
    assert {c.token for c in fake.calls_to("chat.postMessage")} == {TOKENS[TEAM_A]}

    assert _feeling((await _gif(a, "ugh", "U0CAROL"))[0]) == "contempt"
    assert _feeling((await _gif(a, "ugh", BOTH))[0]) == "disgust"
    assert "“ugh” → contempt (2 of 3 people)" in await _admin(a, "phrases", ADMIN_A)
    assert _feeling((await _gif(b, "ugh", "U0DAVE"))[0]) == "anger"  # the parser's reading
    assert _feeling((await _gif(b, "ugh", BOTH))[0]) == "anger"  # their pick in A is A's
    assert (await _admin(b, "phrases", ADMIN_B)).startswith("No words read the workspace's way yet")

    # A's post, voted on from B: a button and a reaction both find nothing there
    (post_id, _platform, ref, _sha) = posts(install.env.engine)[0]
    gone = await _click(b, blocks.VOTE_UP, str(post_id), "U0DAVE")
    assert "👍" not in gone["text"] and "can't find" in gone["text"], gone
    channel, ts = ref.split(":", 1)
    await b.event({"type": "reaction_added", "user": "U0DAVE", "reaction": "+1",
                   "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": "2.0"})
    await asyncio.sleep(0.3)  # a reaction that counts nothing has nothing to wait on
    assert "👍" in (await _click(a, blocks.VOTE_UP, str(post_id), "U0CAROL"))["text"]  # A's own
    assert (sources(install.env.engine)["vote"], sources(install.env.engine)["reaction"]) == (1, 0)


async def test_one_user_id_in_both_teams_is_two_people_to_moodgif(install: Install) -> None:
    """The same user id in A and B (an Enterprise Grid org): an admin in A is no admin in B
    (each team's own token asks Slack), and their preview in A is not theirs to click from B."""
    a, b, fake = install.a, install.b, install.fake
    assert "comparisons" in await _admin(a, "stats", BOTH)
    refused = await _admin(b, "stats", BOTH)
    assert "admin" in refused.lower() and "comparisons" not in refused
    assert [(c.data["user"], c.token) for c in fake.calls_to("users.info")] == [
        (BOTH, TOKENS[TEAM_A]), (BOTH, TOKENS[TEAM_B])]

    preview, _poll = await _gif(a, "happy", BOTH)
    sid = _buttons(preview)[blocks.SHUFFLE]
    forged = await _click(b, blocks.SHUFFLE, sid, BOTH)
    assert forged["text"] == "That preview belongs to someone else. Ask for your own with `/gif`."
    await b.click(blocks.SEND, sid, user=BOTH)
    assert "belongs to someone else" in (await _answers(b))[0]["text"]
    assert fake.calls_to("chat.postMessage") == [] and posts(install.env.engine) == []


async def test_the_operators_admin_list_can_name_one_workspace(install: Install) -> None:
    """MOODGIF_SLACK_ADMIN_USER_IDS held bare user ids, so a user named for one workspace of an
    OAuth install was `/gif-admin` in every other too: "T0456:U0123" is that workspace only."""
    refused = "Only admins can use `/gif-admin`."
    assert await _admin(install.a, "pools list", CAROL) == refused
    assert await _admin(install.b, "pools list", CAROL) != refused
    for stack in (install.a, install.b):
        assert await _admin(stack, "pools list", DAVE) != refused
