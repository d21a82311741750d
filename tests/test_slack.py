"""The Slack adapter end to end, offline: signed requests into the real bolt app over HTTP,
the Slack Web API and response_url played by a local aiohttp fake (tests/fake_slack.py),
the real bot core on a real SQLite database."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _adapter_core import Clock, give_words, ledger, make_core, n_sessions, posts, sources
from aiohttp import web
from aiohttp.test_utils import TestServer
from fake_slack import TEAM, FakeSlack
from slack_sdk.signature import SignatureVerifier

from bot import session as sess
from bot.adapters import slack as slack_adapter
from bot.adapters import slack_blocks as blocks
from bot.adapters.web import build_app
from bot.core import BotCore
from bot.serve import mount_adapters
from scorer.store import session_scope

SECRET = "test-signing-secret-0123456789"
TOKEN = "xoxb-test-token-0123456789"
CHANNEL = "C0GENERAL"



_TRIGGERS = itertools.count(1)


def next_trigger() -> str:
    """A new `trigger_id`, as Slack gives each command and click (a repeated one is a replay)."""
    return f"{next(_TRIGGERS)}.1700000000.abc"

@dataclass
class Stack:
    fake: FakeSlack
    core: BotCore
    engine: Any
    clock: Clock
    url: str
    http: aiohttp.ClientSession
    secret: str = SECRET
    hooks: int = 0
    team: str = TEAM  # the workspace every request comes from (a multi-workspace install has several)

    def hook(self) -> str:
        self.hooks += 1
        return self.fake.response_url(self.last_hook)

    @property
    def last_hook(self) -> str:
        """The name of the latest response_url handed out (a webhook call's `token`)."""
        return str(self.hooks) if self.team == TEAM else f"{self.team}-{self.hooks}"

    def headers(self, body: str, *, ts: int | None = None, secret: str | None = None,
                content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
        stamp = str(int(time.time()) if ts is None else ts)
        sig = SignatureVerifier(secret or self.secret).generate_signature(timestamp=stamp, body=body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sig, "Content-Type": content_type}

    async def post(self, body: str, **kw: Any) -> aiohttp.ClientResponse:
        content_type = kw.pop("content_type", "application/x-www-form-urlencoded")
        async with self.http.post(self.url, data=body.encode(), headers=self.headers(body, content_type=content_type, **kw)) as r:
            await r.read()
            return r

    async def command(self, text: str, *, user: str = "U0ALICE", command: str = "/gif", **kw: Any) -> aiohttp.ClientResponse:
        body = urllib.parse.urlencode({
            "token": "legacy", "team_id": self.team, "team_domain": "fake", "channel_id": CHANNEL,
            "channel_name": "general", "user_id": user, "user_name": user.lower(), "command": command,
            "text": text, "api_app_id": "A0MOOD", "response_url": self.hook(), "trigger_id": next_trigger(),
        })
        return await self.post(body, **kw)

    async def click(self, action_id: str, value: str, *, user: str = "U0ALICE", ephemeral: bool = True,
                    thread: str | None = None) -> aiohttp.ClientResponse:
        return await self._act({"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                                "action_ts": "1700000000.1"}, user, ephemeral, thread)

    async def select(self, action_id: str, value: str, *, user: str = "U0ALICE") -> aiohttp.ClientResponse:
        """Pick the option whose value is `value` in a private message's select menu."""
        option = {"text": {"type": "plain_text", "text": value.split("|")[-1]}, "value": value}
        return await self._act({"action_id": action_id, "block_id": "menu", "type": "static_select",
                                "selected_option": option, "action_ts": "1700000000.1"}, user, True)

    async def _act(self, action: dict[str, Any], user: str, ephemeral: bool,
                   thread: str | None = None) -> aiohttp.ClientResponse:
        """One signed block_actions payload with `action`, from `user` (on a message in
        `thread`: Slack then names it in the container)."""
        payload = {
            "type": "block_actions", "api_app_id": "A0MOOD", "token": "legacy", "trigger_id": next_trigger(),
            "team": {"id": self.team, "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team},
            "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL,
                          "is_ephemeral": ephemeral},
            "channel": {"id": CHANNEL, "name": "general"},
            "response_url": self.hook(),
            "actions": [action],
        }
        if thread:
            payload["container"]["thread_ts"] = thread
        return await self.post("payload=" + urllib.parse.quote(json.dumps(payload)))

    async def event(self, event: dict[str, Any]) -> aiohttp.ClientResponse:
        body = json.dumps({"token": "legacy", "team_id": self.team, "api_app_id": "A0MOOD", "type": "event_callback",
                           "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()), "event": event})
        return await self.post(body, content_type="application/json")


@pytest.fixture
async def stack(sqlite_settings, sqlite_engine) -> AsyncIterator[Stack]:
    async with FakeSlack(admins=("U0ADMIN",)) as fake:
        core, settings, clock = make_core(
            sqlite_settings, sqlite_engine, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
            slack_api_url=fake.api_url, public_url="https://gifs.example.org",
        )
        # The app `moodgif serve` runs: the web pages, the ops routes and Slack's routes.
        app = build_app(core, settings, sqlite_engine)
        assert "slack (HTTP events)" in mount_adapters(app, core, settings, sqlite_engine)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        async with aiohttp.ClientSession() as http:
            yield Stack(fake, core, sqlite_engine, clock, str(server.make_url(slack_adapter.EVENTS_PATH)), http)
        await server.close()


def _buttons(message: dict[str, Any]) -> dict[str, str]:
    """action_id -> value of every button in a message payload."""
    return {
        e["action_id"]: e["value"]
        for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"] if "value" in e
    }


def _menu(message: dict[str, Any], action_id: str) -> dict[str, str]:
    """option text -> value of the message's select menu `action_id` (empty if it has none)."""
    return {o["text"]["text"]: o["value"]
            for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]
            if e.get("action_id") == action_id for o in e["options"]}


def _images(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message.get("blocks", []) if b["type"] == "image"]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_gif_preview_shuffle_send_vote_and_reaction_reach_the_ledger(stack: Stack) -> None:
    fake, engine = stack.fake, stack.engine

    # /gif happy: acked at once, then a private preview through response_url
    r = await stack.command("happy")
    assert r.status == 200
    preview = (await fake.wait_for("webhook", 1))[0].data
    assert preview["response_type"] == "ephemeral"
    (image,) = _images(preview)
    assert image["image_url"].startswith("https://gifs.example.org/gifs/") and image["alt_text"]
    buttons = _buttons(preview)
    assert set(buttons) == {blocks.SEND, blocks.SHUFFLE, blocks.CANCEL}
    sid = buttons[blocks.SHUFFLE]
    first_url = image["image_url"]

    # Shuffle replaces the preview with another GIF
    assert (await stack.click(blocks.SHUFFLE, sid)).status == 200
    shuffled = (await fake.wait_for("webhook", 2))[1].data
    assert shuffled["replace_original"] is True
    second_url = _images(shuffled)[0]["image_url"]
    assert second_url != first_url
    sent_sha = second_url.rsplit("/", 1)[1].removesuffix(".gif")
    skipped_sha = first_url.rsplit("/", 1)[1].removesuffix(".gif")

    # Send posts publicly with "requested by" and 👍/👎, and removes the preview
    await stack.click(blocks.SEND, _buttons(shuffled)[blocks.SEND])
    (post_call,) = await fake.wait_for("chat.postMessage", 1)
    assert post_call.token == TOKEN and post_call.data["channel"] == CHANNEL
    post_blocks = post_call.data["blocks"]
    assert any("requested by <@U0ALICE>" in e["text"] for b in post_blocks if b["type"] == "context"
               for e in b["elements"])
    vote_buttons = _buttons(post_call.data)
    assert set(vote_buttons) == {blocks.VOTE_UP, blocks.VOTE_DOWN}
    sent_note = (await fake.wait_for("webhook", 3))[2].data  # the preview becomes "Sent ✓" with Undo
    assert sent_note["replace_original"] is True and set(_buttons(sent_note)) == {blocks.UNDO, blocks.DISMISS}
    await until(lambda: bool(posts(engine)) and posts(engine)[0][2] != "")
    (_post_id, platform, ref, gif) = posts(engine)[0]
    assert (platform, gif) == ("slack", sent_sha)
    assert ref.startswith(f"{CHANNEL}:17000")
    assert ledger(engine)[0][:3] == ("send", sent_sha, skipped_sha)

    # 👍 button by someone else: a vote, and a private thank-you
    await stack.click(blocks.VOTE_UP, vote_buttons[blocks.VOTE_UP], user="U0BOB", ephemeral=False)
    thanks = (await fake.wait_for("webhook", 4))[3].data
    assert thanks["replace_original"] is False and "👍" in thanks["text"]
    await until(lambda: sources(engine)["vote"] == 1)

    # a 👍 reaction on the post by a third person counts too; other emoji do not
    ts = ref.split(":", 1)[1]
    item = {"type": "message", "channel": CHANNEL, "ts": ts}
    await stack.event({"type": "reaction_added", "user": "U0CAROL", "reaction": "tada", "item": item,
                       "event_ts": "1.0"})
    r = await stack.event({"type": "reaction_added", "user": "U0CAROL", "reaction": "+1::skin-tone-3",
                           "item": item, "event_ts": "1.1"})
    assert r.status == 200
    await until(lambda: sources(engine)["reaction"] == 1)
    votes = [row for row in ledger(engine) if row[0] in ("vote", "reaction")]
    assert all(sent_sha in (w, lo) and sent_sha == w for _s, w, lo, _t, _who in votes)
    assert len({who for *_x, who in votes}) == 2  # Bob and Carol, hashed

    # removing the reaction withdraws Carol's vote
    await stack.event({"type": "reaction_removed", "user": "U0CAROL", "reaction": "+1", "item": item,
                       "event_ts": "1.2"})
    await until(lambda: sources(engine)["reaction"] == 0)
    assert sources(engine) == {"send": 1, "vote": 1}


async def test_slack_routes_live_in_the_serve_app_that_serves_the_preview_gif(stack: Stack) -> None:
    # The image Slack is told to fetch must be served by the same app as the events route:
    # the one `moodgif serve` builds (a bare aiohttp app would answer 404 here).
    assert (await stack.command("happy")).status == 200
    preview = (await stack.fake.wait_for("webhook", 1))[0].data
    (image,) = _images(preview)
    path = urllib.parse.urlsplit(image["image_url"]).path
    base = stack.url.removesuffix(slack_adapter.EVENTS_PATH)
    async with stack.http.get(base + path) as r:
        assert r.status == 200
        assert (await r.read())[:6] in (b"GIF87a", b"GIF89a")
    async with stack.http.get(base + "/healthz") as r:
        assert r.status == 200


async def test_forged_and_stale_requests_get_401_and_record_nothing(stack: Stack) -> None:
    r = await stack.command("happy", secret="not-the-secret")
    assert r.status == 401
    r = await stack.command("happy", ts=int(time.time()) - 6 * 60)
    assert r.status == 401
    body = "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions"}))
    async with stack.http.post(stack.url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 401  # no signature at all
    await asyncio.sleep(0.2)  # a listener that wrongly ran would have called by now
    # auth.test is the bot token's check at startup, not the requests'
    assert [c.path for c in stack.fake.calls if c.path != "auth.test"] == []
    assert n_sessions(stack.engine) == 0 and ledger(stack.engine) == []


async def test_empty_and_unknown_requests_get_help_and_choices_as_buttons(stack: Stack) -> None:
    await stack.command("")
    help_msg = (await stack.fake.wait_for("webhook", 1))[0].data
    choices = [v for k, v in _buttons(help_msg).items() if k.startswith(blocks.CHOOSE)]
    assert len(choices) == 17 and "happiness" in choices
    # clicking a choice turns the message into that emotion's preview
    await stack.click(f"{blocks.CHOOSE}:relief", "relief")
    preview = (await stack.fake.wait_for("webhook", 2))[1].data
    assert preview["replace_original"] is True and "relief" in preview["text"]
    assert blocks.SEND in _buttons(preview)


async def test_gif_admin_only_for_workspace_admins(stack: Stack) -> None:
    await stack.command("stats", command="/gif-admin", user="U0ALICE")
    refused = (await stack.fake.wait_for("webhook", 1))[0].data
    assert "admin" in refused["text"].lower() and "comparisons" not in refused["text"]
    await stack.command("stats", command="/gif-admin", user="U0ADMIN")
    stats = (await stack.fake.wait_for("webhook", 2))[1].data
    assert "comparisons" in stats["text"]
    assert [c.data["user"] for c in stack.fake.calls_to("users.info")] == ["U0ALICE", "U0ADMIN"]
    await stack.command("phrases forget monday again", command="/gif-admin", user="U0ADMIN")
    forgot = (await stack.fake.wait_for("webhook", 3))[2].data
    assert "Nothing was learned for “monday again”" in forgot["text"]
    await stack.command("hide", command="/gif-admin", user="U0ADMIN")
    hide = (await stack.fake.wait_for("webhook", 4))[3].data
    assert hide["text"] == "No GIF was posted in this channel yet."


async def test_mention_and_watched_channel_answer_privately(stack: Stack) -> None:
    from bot.adapters.slack import PLATFORM

    await stack.event({"type": "app_mention", "user": "U0ALICE", "channel": CHANNEL,
                       "text": "<@UBOTMOOD> happy", "ts": "1700000001.000100", "event_ts": "1"})
    (eph,) = await stack.fake.wait_for("chat.postEphemeral", 1)
    assert eph.data["user"] == "U0ALICE" and blocks.SEND in _buttons(eph.data)

    # not watched: a message with a clear emotion gets nothing
    msg = {"type": "message", "user": "U0BOB", "channel": CHANNEL, "text": "happy happy joy", "ts": "1.5"}
    await stack.event(msg)
    await asyncio.sleep(0.3)
    assert len(stack.fake.calls_to("chat.postEphemeral")) == 1
    # opted in: a private offer to the author only
    sess.set_scoped(stack.engine, PLATFORM, TEAM, CHANNEL, "watch", "on")
    await stack.event({**msg, "ts": "1.6"})
    offers = await stack.fake.wait_for("chat.postEphemeral", 2)
    assert offers[1].data["user"] == "U0BOB" and blocks.SEND in _buttons(offers[1].data)
    assert stack.fake.calls_to("chat.postMessage") == []  # never a public post unasked


async def test_without_public_url_the_gif_is_uploaded_once_and_referenced(sqlite_settings, sqlite_engine) -> None:
    async with FakeSlack() as fake:
        core, settings, clock = make_core(sqlite_settings, sqlite_engine, slack_bot_token=TOKEN,
                                          slack_signing_secret=SECRET, slack_api_url=fake.api_url,
                                          public_url="")
        app = web.Application()
        slack_adapter.mount(app, core, settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                st = Stack(fake, core, sqlite_engine, clock, str(server.make_url("/slack/events")), http)
                await st.command("happy")
                preview = (await fake.wait_for("webhook", 1))[0].data
                (image,) = _images(preview)
                file_id = image["slack_file"]["id"]
                assert "image_url" not in image
                (upload,) = fake.calls_to("upload")
                assert upload.data["file_id"] == file_id and upload.data["bytes"] > 0
                await st.click(blocks.SEND, _buttons(preview)[blocks.SEND])
                (post_call,) = await fake.wait_for("chat.postMessage", 1)
                assert _images(post_call.data)[0]["slack_file"] == {"id": file_id}
                assert len(fake.calls_to("files.getUploadURLExternal")) == 1  # reused, not re-uploaded
        finally:
            await server.close()


def test_mount_is_off_without_credentials(sqlite_settings) -> None:
    app = web.Application()
    assert slack_adapter.mount(app, None, sqlite_settings) is None  # type: ignore[arg-type]
    assert not app.router.routes()._routes  # type: ignore[attr-defined]


def test_async_db_urls_for_the_oauth_stores() -> None:
    assert slack_adapter.async_db_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert slack_adapter.async_db_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert slack_adapter.async_db_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_manifest_matches_what_the_adapter_uses() -> None:
    import yaml

    repo = Path(__file__).resolve().parent.parent
    manifest = yaml.safe_load((repo / "deploy" / "slack-manifest.yml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(slack_adapter.BOT_SCOPES)
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == [
        "app_mention", "message.channels", "message.groups", "reaction_added", "reaction_removed"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/gif", "/gif-admin"]
    assert [(s["type"], s["callback_id"]) for s in manifest["features"]["shortcuts"]] == [
        ("message", blocks.FOR_MESSAGE)]
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls += [manifest["settings"]["interactivity"]["request_url"],
             manifest["settings"]["event_subscriptions"]["request_url"]]
    assert all(u.endswith(slack_adapter.EVENTS_PATH) for u in urls)
    assert manifest["oauth_config"]["redirect_urls"][0].endswith(slack_adapter.REDIRECT_PATH)


async def test_multi_workspace_install_uses_oauth_stores_in_the_same_database(sqlite_settings) -> None:
    import sqlite3

    settings = sqlite_settings.override(slack__client_id="111.222",
                                        slack__client_secret="oauth-secret-xyz",
                                        slack__signing_secret=SECRET,
                                        http__public_url="https://moodgif.example.org",
                                        slack__secret_key="x6m0dJ8Vnq8l7z9kJf3mS0k4q2xY8bW1cD5eF7gH9iE=")
    app = web.Application()
    bolt = slack_adapter.mount(app, None, settings)  # type: ignore[arg-type]
    assert bolt is not None and bolt.oauth_flow is not None
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()  # creates slack_sdk's tables on startup
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/slack/install"),
                                                             allow_redirects=False) as r:
            page = await r.text()
        assert r.status in (200, 302)
        location = r.headers.get("Location", "") + page
        assert "slack.com/oauth/v2/authorize" in location and "client_id=111.222" in location
        assert "oauth-secret-xyz" not in location
        db = sqlite_settings.db_url.split("///", 1)[1]
        with sqlite3.connect(db) as conn:
            tables = {t for (t,) in conn.execute("select name from sqlite_master where type='table'")}
            assert {"slack_installations", "slack_bots", "slack_oauth_states"} <= tables
            assert conn.execute("select count(*) from slack_oauth_states").fetchone()[0] == 1
    finally:
        await server.close()


async def test_preview_shows_how_the_request_was_read(stack: Stack) -> None:
    cats = give_words(stack.core, stack.engine)
    await stack.command("happy cat")
    preview = (await stack.fake.wait_for("webhook", 1))[0].data
    (context,) = [b for b in preview["blocks"] if b["type"] == "context"]
    reading = context["elements"][0]["text"]
    assert "happiness" in reading and "topic: cat" in reading
    assert "happiness · cat" in preview["blocks"][0]["text"]["text"]
    (image,) = _images(preview)
    assert image["image_url"].rsplit("/", 1)[1].removesuffix(".gif") in cats


async def test_slack_emoji_shortcodes_are_read_as_the_emoji(stack: Stack) -> None:
    # Slack sends every emoji as a :shortcode:; ":joy:" is 😂 (amusement), not the word "joy".
    await stack.command(":joy: <@U0OTHER>")
    preview = (await stack.fake.wait_for("webhook", 1))[0].data
    (context,) = [b for b in preview["blocks"] if b["type"] == "context"]
    reading = context["elements"][0]["text"]
    assert "amusement" in reading and "happiness" not in reading, reading


async def test_a_switch_click_is_the_askers_alone_and_a_forged_one_records_nothing(stack: Stack) -> None:
    await stack.command("ugh")
    preview = (await stack.fake.wait_for("webhook", 1))[0].data
    switches = {k: v for k, v in _buttons(preview).items() if k.startswith(f"{blocks.SWITCH}:")}
    assert list(switches) == [f"{blocks.SWITCH}:{e}" for e in ("contempt", "disgust", "sadness")]
    value = switches[f"{blocks.SWITCH}:contempt"]
    sid = _buttons(preview)[blocks.SEND]
    assert value == f"{sid}|contempt"
    await stack.click(f"{blocks.SWITCH}:contempt", value, user="U0BOB")  # not his preview
    assert "someone else" in (await stack.fake.wait_for("webhook", 2))[1].data["text"]
    await stack.click(f"{blocks.SWITCH}:smug", f"{sid}|smug")  # a forged feeling
    assert "don't know the feeling" in (await stack.fake.wait_for("webhook", 3))[2].data["text"]
    await stack.click(f"{blocks.SWITCH}:contempt", "no-such-session|contempt")
    assert "gone" in (await stack.fake.wait_for("webhook", 4))[3].data["text"]
    await stack.click(f"{blocks.SWITCH}:contempt", value)  # alice's own click
    switched = (await stack.fake.wait_for("webhook", 5))[4].data
    assert switched["replace_original"] is True and "contempt" in switched["text"]
    assert ledger(stack.engine) == [] and n_sessions(stack.engine) == 2  # the asked, the switched
    with session_scope(stack.engine) as db:
        assert sess.load_session(db, sid).state == "switched"



async def test_gif_for_someones_message_is_a_private_preview_of_its_words(stack: Stack) -> None:
    """The message shortcut "GIF for this message": the preview reads that message's words
    (its mentions dropped) and is private to the clicker; Send posts as from /gif."""
    payload = {
        "type": "message_action", "callback_id": blocks.FOR_MESSAGE, "token": "legacy",
        "action_ts": "1700000001.000200", "trigger_id": "1.2.4", "response_url": stack.hook(),
        "team": {"id": TEAM, "domain": "fake"}, "channel": {"id": CHANNEL, "name": "general"},
        "user": {"id": "U0ALICE", "username": "alice", "team_id": TEAM},
        "message": {"type": "message", "user": "U0BOB", "ts": "1700000000.000100",
                    "text": "<@U0ALICE> my pull request got rejected again :sob:"},
    }
    r = await stack.post("payload=" + urllib.parse.quote(json.dumps(payload)))
    assert r.status == 200
    preview = (await stack.fake.wait_for("webhook", 1))[0].data
    assert preview["response_type"] == "ephemeral"
    assert "Read as feeling: sadness" in json.dumps(preview)
    sid = _buttons(preview)[blocks.SEND]
    assert (await stack.click(blocks.SEND, sid, user="U0BOB")).status == 200  # not Bob's preview
    assert not stack.fake.calls_to("chat.postMessage")
    await stack.click(blocks.SEND, sid)
    (post_call,) = await stack.fake.wait_for("chat.postMessage", 1)
    assert post_call.data["channel"] == CHANNEL

    # a message with no words (a file, an image) gets the feelings to pick from
    empty = {**payload, "response_url": stack.hook(), "trigger_id": next_trigger(), "message": {**payload["message"], "text": ""}}
    await stack.post("payload=" + urllib.parse.quote(json.dumps(empty)))
    asked = None  # the preview, Bob's note, its "Sent ✓" and this answer arrive in any order
    for n in range(3, 6):
        calls = await stack.fake.wait_for("webhook", n)
        asked = next((c for c in calls if any(k.startswith(blocks.CHOOSE) for k in _buttons(c.data))), None)
        if asked is not None:
            break
    assert asked is not None
    assert len([k for k in _buttons(asked.data) if k.startswith(blocks.CHOOSE)]) == 17


async def test_a_preview_in_a_thread_posts_its_gif_in_that_thread(stack: Stack) -> None:
    """"GIF for this message" on a reply in a thread: the preview shows in the thread and Send
    posts there; where the bot may not post ephemerally (not a member), the preview comes back
    through the response_url instead."""
    fake = stack.fake
    reply = {"type": "message", "user": "U0BOB", "ts": "1700000000.000300", "thread_ts": "1700000000.000100",
             "text": "we survived the outage"}
    payload = {
        "type": "message_action", "callback_id": blocks.FOR_MESSAGE, "token": "legacy",
        "action_ts": "1700000001.000400", "trigger_id": "1.2.5", "response_url": stack.hook(),
        "team": {"id": TEAM, "domain": "fake"}, "channel": {"id": CHANNEL, "name": "general"},
        "user": {"id": "U0ALICE", "username": "alice", "team_id": TEAM}, "message": reply,
    }
    await stack.post("payload=" + urllib.parse.quote(json.dumps(payload)))
    (shown,) = await fake.wait_for("chat.postEphemeral", 1)
    assert shown.data["thread_ts"] == reply["thread_ts"] and shown.data["user"] == "U0ALICE"
    blocks_sent = shown.data["blocks"]  # form-encoded by the SDK: a JSON string
    sid = _buttons({"blocks": json.loads(blocks_sent) if isinstance(blocks_sent, str) else blocks_sent})[blocks.SEND]
    await stack.click(blocks.SEND, sid, thread=reply["thread_ts"])
    (post_call,) = await fake.wait_for("chat.postMessage", 1)
    assert post_call.data["channel"] == CHANNEL and post_call.data["thread_ts"] == reply["thread_ts"]
    (sent_note,) = await fake.wait_for("webhook", 1)  # the preview says it is out, with Undo
    assert blocks.UNDO in _buttons(sent_note.data)

    # the bot is not in the channel: the preview falls back to the response_url
    fake.outside.add(CHANNEL)
    stack.clock.advance(60)  # past the cooldown
    await stack.post("payload=" + urllib.parse.quote(json.dumps({**payload, "response_url": stack.hook(), "trigger_id": next_trigger()})))
    await fake.wait_for("chat.postEphemeral", 2)
    fallback = (await fake.wait_for("webhook", 2))[1].data
    assert fallback["response_type"] == "ephemeral" and blocks.SEND in _buttons(fallback), fallback


async def test_a_send_the_channel_refused_is_taken_back_and_can_be_sent_again(stack: Stack) -> None:
    """Not in the channel: the Send never happened (no post, no comparison, nothing learned),
    the preview stays open, and once the bot is invited the same Send posts."""
    fake, engine = stack.fake, stack.engine
    await stack.command("happy")
    preview = (await fake.wait_for("webhook", 1))[0].data
    await stack.click(blocks.SHUFFLE, _buttons(preview)[blocks.SHUFFLE])
    shuffled = (await fake.wait_for("webhook", 2))[1].data
    fake.outside.add(CHANNEL)
    await stack.click(blocks.SEND, _buttons(shuffled)[blocks.SEND])
    refused = (await fake.wait_for("webhook", 3))[2].data
    assert refused["text"] == ("I couldn't post in this channel. I'm not in it: invite me (`/invite` "
                               "and my name), then press Send again.") and refused["replace_original"] is False
    # pressed again the moment the refusal shows: refused again, never "already sent"
    await stack.click(blocks.SEND, _buttons(shuffled)[blocks.SEND])
    again = (await fake.wait_for("webhook", 4))[3].data
    assert again["text"] == refused["text"]
    await asyncio.sleep(0.2)  # nothing else may follow: the preview is left as it was
    assert len(fake.calls_to("webhook")) == 4
    assert posts(engine) == [] and sources(engine)["send"] == 0

    fake.outside.discard(CHANNEL)  # invited: the same button now posts
    await stack.click(blocks.SEND, _buttons(shuffled)[blocks.SEND])
    await fake.wait_for("chat.postMessage", 1)
    await until(lambda: bool(posts(engine)) and posts(engine)[0][2] != "")
    assert sources(engine)["send"] == 1 and len(posts(engine)) == 1
    sent_note = (await fake.wait_for("webhook", 5))[4].data
    assert sent_note["replace_original"] is True and blocks.UNDO in _buttons(sent_note)
    # a second click on the same Send: a note beside "Sent ✓", which keeps its Undo
    await stack.click(blocks.SEND, _buttons(shuffled)[blocks.SEND])
    twice = (await fake.wait_for("webhook", 6))[5].data
    assert twice["replace_original"] is False and "already sent" in twice["text"]


async def test_the_sender_can_undo_a_send_and_the_post_is_deleted(stack: Stack) -> None:
    fake, engine = stack.fake, stack.engine
    await stack.command("happy")
    preview = (await fake.wait_for("webhook", 1))[0].data
    await stack.click(blocks.SHUFFLE, _buttons(preview)[blocks.SHUFFLE])
    shuffled = (await fake.wait_for("webhook", 2))[1].data
    await stack.click(blocks.SEND, _buttons(shuffled)[blocks.SEND])
    await fake.wait_for("chat.postMessage", 1)
    sent_note = (await fake.wait_for("webhook", 3))[2].data
    undo_value = _buttons(sent_note)[blocks.UNDO]
    await until(lambda: bool(posts(engine)) and posts(engine)[0][2] != "")
    assert sources(engine)["send"] == 1  # the sent GIF beat the one shuffled past

    await stack.click(blocks.UNDO, undo_value, user="U0BOB")  # not Bob's Send
    refused = (await fake.wait_for("webhook", 4))[3].data
    assert "Only the person who sent" in refused["text"] and not fake.calls_to("chat.delete")

    await stack.click(blocks.UNDO, undo_value)
    (deleted,) = await fake.wait_for("chat.delete", 1)
    assert f"{deleted.data['channel']}:{deleted.data['ts']}" == posts(engine)[0][2]
    done = (await fake.wait_for("webhook", 5))[4].data
    assert done["replace_original"] is True and "Taken back" in done["text"]
    assert sources(engine)["send"] == 0
    await stack.click(blocks.UNDO, "not-a-number")
    assert "can't find" in (await fake.wait_for("webhook", 6))[5].data["text"]


async def test_chat_shows_the_checked_copy_before_a_source_url_its_host_could_change(tmp_path: Path) -> None:
    """A URL pool's host could serve other bytes after ingest, past the type, size and rating
    checks: with a public URL set, Slack and Discord show moodgif's own copy. A provider's GIF
    still comes from its CDN, as its terms ask."""
    from bot.adapters import discord_views
    from bot.adapters.slack_listeners.context import SlackImages
    from bot.events import GifCard
    from scorer.settings import load_settings

    local = tmp_path / "a.gif"
    local.write_bytes(b"GIF89a" + b"\0" * 100)
    card = GifCard("ab" * 32, "happiness", "t", "https://host.example/x.gif", local, 20_000_000, 10, 10)
    giphy = GifCard("cd" * 32, "happiness", "t", "https://media.giphy.com/y.gif", local, 100, 10, 10,
                    credit="Powered By GIPHY")
    images = SlackImages(load_settings(env={}, http__public_url="https://gifs.example.org"))
    assert await images.ref(card, None, "T1") == {"image_url": f"https://gifs.example.org/gifs/{'ab' * 32}.gif"}  # type: ignore[arg-type]
    assert await images.ref(giphy, None, "T1") == {"image_url": "https://media.giphy.com/y.gif"}  # type: ignore[arg-type]
    no_public = SlackImages(load_settings(env={}))
    assert await no_public.ref(card, None, "T1") == {"image_url": "https://host.example/x.gif"}  # type: ignore[arg-type]
    # Discord: too big to attach, so a URL: the checked copy first
    assert discord_views.media(card, "https://gifs.example.org", 10)[0] == f"https://gifs.example.org/gifs/{'ab' * 32}.gif"
    assert discord_views.media(card, "", 10)[0] == "https://host.example/x.gif"
