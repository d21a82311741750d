"""What an admin sees of Slack's setup: the one startup line, /readyz's reason, a bot token
Slack refused (told to the admin once and to every user who asks), and bolt's own notes.

The real serve app (`build_app` + `mount_adapters`) and the real bolt app, against the local
fake Slack (tests/fake_slack.py); the fake refuses any token that is not an `xoxb-` one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from _adapter_core import make_core, n_sessions
from aiohttp import web
from aiohttp.test_utils import TestServer
from fake_slack import TEAM, FakeSlack
from test_slack import SECRET, TOKEN, Stack, until

from bot import serve
from bot.adapters import slack as slack_adapter
from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_setup import MISCONFIGURED
from bot.adapters.web import build_app
from bot.health import get_health
from bot.serve import mount_adapters
from scorer.settings import Settings

REFUSED = "the bot token was refused by Slack (invalid_auth): reinstall the app or fix SLACK_BOT_TOKEN"


@pytest.fixture(autouse=True)
def fresh_health() -> Iterator[None]:
    get_health().reset()
    yield
    get_health().reset()


def _slack(component: str = "slack") -> dict[str, Any] | None:
    return get_health().snapshot()["components"].get(component)


async def _serving(core: Any, settings: Settings, engine: Any) -> tuple[TestServer, str]:
    app = build_app(core, settings, engine)
    mount_adapters(app, core, settings, engine)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


@contextlib.asynccontextmanager
async def _served(sqlite_settings: Settings, sqlite_engine: Any, fake: FakeSlack) -> AsyncIterator[Stack]:
    """The bot with a good token, served with the Slack adapter mounted, and a signed-request
    driver for it; closed after."""
    core, settings, clock = make_core(sqlite_settings, sqlite_engine, slack_bot_token=TOKEN,
                                      slack_signing_secret=SECRET, slack_api_url=fake.api_url,
                                      public_url="https://gifs.example.org")
    server, base = await _serving(core, settings, sqlite_engine)
    try:
        async with aiohttp.ClientSession() as http:
            yield Stack(fake, core, sqlite_engine, clock, base + slack_adapter.EVENTS_PATH, http)
    finally:
        await server.close()
        await core.close()


async def _readyz(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(base + "/readyz") as r:
        assert r.status == 503
        return await r.json()


# ---------------------------------------------------------------------------------------
# a bot token Slack refuses


@pytest.fixture
async def refused(sqlite_settings, sqlite_engine, caplog) -> AsyncIterator[tuple[Stack, str]]:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    async with FakeSlack() as fake:
        core, settings, clock = make_core(
            sqlite_settings, sqlite_engine, slack_bot_token="xoxe-not-the-bot-token",
            slack_signing_secret=SECRET, slack_api_url=fake.api_url, public_url="https://gifs.example.org")
        server, base = await _serving(core, settings, sqlite_engine)
        try:
            async with aiohttp.ClientSession() as http:
                yield Stack(fake, core, sqlite_engine, clock, base + slack_adapter.EVENTS_PATH, http), base
        finally:
            await server.close()
            await core.close()


async def test_a_refused_bot_token_fails_readyz_and_each_user_is_told(refused, caplog) -> None:  # type: ignore[no-untyped-def]
    stack, base = refused
    # checked at startup: /readyz says why before anyone types /gif
    await until(lambda: (_slack() or {}).get("ok") is False)
    assert (await _readyz(stack.http, base))["failing"]["slack"] == REFUSED

    # /gif: acked at once, then a private note through the response_url, never silence
    assert (await stack.command("happy")).status == 200
    (note,) = await stack.fake.wait_for("webhook", 1)
    assert note.data["response_type"] == "ephemeral" and note.data["text"] == MISCONFIGURED
    assert "tell your Slack admin" in MISCONFIGURED
    # a click gets the same note; and nothing ran past the check
    assert (await stack.click(blocks.SHUFFLE, "1")).status == 200
    assert (await stack.fake.wait_for("webhook", 2))[1].data["text"] == MISCONFIGURED
    assert n_sessions(stack.engine) == 0
    assert not stack.fake.calls_to("chat.postMessage")

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"Slack: {REFUSED}; until then each user who asks is told to tell the admin"]
    assert "Failed to authorize" not in caplog.text  # bolt's own line: its authorization never ran


async def test_a_token_first_refused_at_a_request_is_reported_then(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """No startup check answered (Slack was unreachable then): the first request starts one in
    the background, without waiting on it, and the requests after Slack's answer get the note."""
    import time
    import urllib.parse

    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_sdk.signature import SignatureVerifier

    async with FakeSlack() as fake:
        core, settings, _ = make_core(sqlite_settings, sqlite_engine, slack_bot_token="xoxe-not-the-bot-token",
                                      slack_signing_secret=SECRET, slack_api_url=fake.api_url)
        bolt = slack_adapter.build_app(core, settings)
        assert bolt is not None and _slack() is None

        async def ask(name: str, trigger: str) -> Any:
            body = urllib.parse.urlencode({"team_id": TEAM, "channel_id": "C1", "user_id": "U0ALICE",
                                           "command": "/gif", "text": "happy", "trigger_id": trigger,
                                           "response_url": fake.response_url(name)})
            stamp = str(int(time.time()))
            headers = {"X-Slack-Request-Timestamp": stamp, "Content-Type": "application/x-www-form-urlencoded",
                       "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)}
            return await bolt.async_dispatch(AsyncBoltRequest(body=body, headers=headers))

        first = await ask("first", "9.9.9")  # bolt's own authorization answers this one
        assert first.status == 200 and "reinstall" in first.body
        for _ in range(500):  # the background check's answer (no wall-clock bound: a count)
            if (_slack() or {}).get("detail") == REFUSED:
                break
            await asyncio.sleep(0.01)
        slack = _slack() or {}
        assert (slack.get("ok"), slack.get("detail")) == (False, REFUSED)
        second = await ask("second", "9.9.10")
        assert (second.status, second.body) == (200, "")
        notes = await fake.wait_for("webhook", 1)
        assert [n.data["text"] for n in notes] == [MISCONFIGURED]
        await core.close()


async def test_a_good_bot_token_is_checked_at_startup_and_slack_stays_ready(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    async with FakeSlack() as fake, _served(sqlite_settings, sqlite_engine, fake) as stack:
        await fake.wait_for("auth.test", 1)
        await stack.command("happy")
        preview = (await fake.wait_for("webhook", 1))[0].data
        assert blocks.SEND in json.dumps(preview)
        assert (_slack() or {}).get("ok") is True


# ---------------------------------------------------------------------------------------
# Slack's state at startup: one line, and /readyz's reason when half-configured


def _state_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "bot.adapters.slack" and r.getMessage().startswith("Slack: o")]


@pytest.mark.parametrize(("overrides", "level", "line"), [
    ({}, "INFO", "Slack: off (no Slack credentials set)"),
    ({"slack__signing_secret": SECRET}, "ERROR",
     "Slack: off: SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for several "
     "workspaces) is not set (HTTP mode needs it)"),
    ({"slack__bot_token": TOKEN, "slack__app_token": "xapp-1-a"}, "ERROR",
     "Slack: off: SLACK_SIGNING_SECRET is not set (HTTP mode needs it); SLACK_APP_TOKEN is set, "
     "so perhaps MOODGIF_SLACK_SOCKET_MODE=true was meant"),
    ({"slack__app_token": "xapp-1-a"}, "ERROR",
     "Slack: off: SLACK_APP_TOKEN is set, but MOODGIF_SLACK_SOCKET_MODE is not true (Socket Mode "
     "needs it, and SLACK_BOT_TOKEN)"),
    ({"slack__socket_mode": True, "slack__bot_token": TOKEN}, "ERROR",
     "Slack: off: SLACK_APP_TOKEN is not set (Socket Mode (MOODGIF_SLACK_SOCKET_MODE=true) needs it)"),
    ({"slack__socket_mode": True, "slack__bot_token": TOKEN, "slack__app_token": "xapp-1-a",
      "slack__client_id": "1.2", "slack__client_secret": "s"}, "INFO",
     "Slack: on, Socket Mode (one workspace, SLACK_APP_TOKEN and SLACK_BOT_TOKEN; SLACK_CLIENT_ID and "
     "SLACK_CLIENT_SECRET are not used: installing in several workspaces needs HTTP mode); "
     "connecting in the background"),
    ({"slack__client_id": "1.2", "slack__signing_secret": SECRET}, "ERROR",
     "Slack: off: SLACK_CLIENT_SECRET (or SLACK_BOT_TOKEN for one workspace) is not set (HTTP mode "
     "needs it)"),
    ({"slack__bot_token": TOKEN, "slack__signing_secret": SECRET, "http__public_url": "https://h.example/"},
     "INFO", "Slack: on, HTTP events at https://h.example/slack/events (one workspace, SLACK_BOT_TOKEN)"),
    ({"slack__bot_token": TOKEN, "slack__signing_secret": SECRET, "slack__client_id": "1.2",
      "http__public_url": "https://h.example/"}, "INFO",
     "Slack: on, HTTP events at https://h.example/slack/events (one workspace, SLACK_BOT_TOKEN; "
     "SLACK_CLIENT_ID is unused (SLACK_CLIENT_SECRET is not set, so no OAuth installs))"),
    ({"slack__socket_mode": True, "slack__bot_token": TOKEN, "slack__app_token": "xapp-1-a"}, "INFO",
     "Slack: on, Socket Mode (one workspace, SLACK_APP_TOKEN and SLACK_BOT_TOKEN); connecting in "
     "the background"),
])
async def test_startup_says_in_one_line_whether_slack_is_on_and_readyz_says_why_not(
        sqlite_settings, sqlite_engine, caplog, overrides, level, line) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    settings = sqlite_settings.override(slack__api_url="http://127.0.0.1:9/api/", **overrides)
    app = web.Application()
    mounted = mount_adapters(app, None, settings, sqlite_engine)  # type: ignore[arg-type]
    assert _state_lines(caplog) == [(level, line)]
    assert "slack (HTTP events)" in mounted if "HTTP events at" in line else "slack (HTTP events)" not in mounted
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as r:
            failing = (await r.json())["failing"]
    finally:
        await server.close()
    if level == "ERROR":
        assert failing["slack"] == "off: " + line.removeprefix("Slack: off: ")
    elif "Socket Mode" in line:
        assert failing["slack"] == "Socket Mode: connecting to Slack"
    else:
        assert "slack" not in failing


async def test_socket_mode_without_its_tokens_is_not_served(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    """`serve` once announced "slack (Socket Mode)" and then found Slack off."""
    settings = sqlite_settings.override(slack__socket_mode=True, slack__bot_token=TOKEN)
    assert await serve._start_platforms(None, settings) == []  # type: ignore[arg-type]


def test_padded_secrets_are_warned_about_without_showing_them(sqlite_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = sqlite_settings.override(slack__bot_token=TOKEN, slack__signing_secret=SECRET + " ",
                                        slack__app_token="\nxapp-1-padded")
    assert slack_adapter.mount(web.Application(), None, settings) is not None  # type: ignore[arg-type]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(" ", 2)[1] for w in warned] == ["SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"]
    assert all("space or line break" in w for w in warned)
    assert SECRET not in caplog.text and "xapp-1-padded" not in caplog.text


# ---------------------------------------------------------------------------------------
# bolt's notes


def test_an_exported_bot_token_draws_no_bolt_warning_and_other_warnings_still_pass(
        sqlite_settings, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)  # as on a server; our settings read it too
    settings = sqlite_settings.override(slack__bot_token=TOKEN, slack__signing_secret=SECRET)
    caplog.set_level(logging.WARNING)
    assert slack_adapter.build_app(None, settings) is not None  # type: ignore[arg-type]
    assert "will be unused" not in caplog.text
    logging.getLogger("slack_bolt.AsyncApp").warning("any other note from bolt")
    assert "any other note from bolt" in caplog.text


# ---------------------------------------------------------------------------------------
# private channels


async def test_a_watched_private_channel_gets_offers_too(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """message.groups (manifest) arrives as the same `message` event, channel_type "group"."""
    from bot import session as sess
    from bot.adapters.slack import PLATFORM

    async with FakeSlack() as fake, _served(sqlite_settings, sqlite_engine, fake) as stack:
        sess.set_scoped(sqlite_engine, PLATFORM, TEAM, "G0PRIVATE", "watch", "on")
        await stack.event({"type": "message", "channel_type": "group", "user": "U0BOB",
                           "channel": "G0PRIVATE", "text": "happy happy joy", "ts": "1.5"})
        (offer,) = await fake.wait_for("chat.postEphemeral", 1)
        assert offer.data["channel"] == "G0PRIVATE" and offer.data["user"] == "U0BOB"


async def test_a_slack_that_does_not_answer_holds_up_no_request() -> None:
    """auth.test hanging (Slack slow or gone): requests went through the check one by one,
    each waiting out its own attempt; now none waits, one attempt runs at a time, and a
    failed one is not repeated at once."""
    from types import SimpleNamespace

    from slack_bolt.response import BoltResponse

    from bot.adapters.slack_setup import TokenCheck

    never = asyncio.Event()

    class HungSlack:
        calls = 0

        async def auth_test(self) -> None:
            HungSlack.calls += 1
            await never.wait()

    check = TokenCheck()
    middleware = check.middleware()
    context = SimpleNamespace(client=HungSlack(), response_url=None)

    async def next_() -> BoltResponse:
        return BoltResponse(status=200, body="through")

    answers = await asyncio.gather(*(middleware(context=context, body={"type": "block_actions"}, next_=next_)
                                     for _ in range(5)))
    assert [a.body for a in answers] == ["through"] * 5  # none waited on Slack
    await asyncio.sleep(0)
    assert HungSlack.calls == 1 and check._task is not None and not check._task.done()
    check._task.cancel()  # as if it timed out: the next request does not ask again at once
    with pytest.raises(asyncio.CancelledError):
        await check._task
    check._failed_at = asyncio.get_running_loop().time()
    await middleware(context=context, body={"type": "block_actions"}, next_=next_)
    await asyncio.sleep(0)
    assert HungSlack.calls == 1
    await check.stop()


async def test_a_stop_while_slack_is_slow_to_check_the_token_closes_socket_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Socket Mode checked the token inside its start, so a stop while auth.test hung
    cancelled the start and left the websocket open; the check runs beside it now."""
    from scorer.settings import load_settings

    open_sockets: set[web.WebSocketResponse] = set()
    never = asyncio.Event()

    async def connections_open(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{server.port}/ws"})

    async def auth_test(request: web.Request) -> web.Response:
        await never.wait()  # Slack's Web API slow or gone
        return web.json_response({"ok": True})

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        open_sockets.add(sock)
        await sock.send_json({"type": "hello", "num_connections": 1, "debug_info": {}, "connection_info": {}})
        async for _ in sock:
            pass
        open_sockets.discard(sock)
        return sock

    app = web.Application()
    app.router.add_post("/api/apps.connections.open", connections_open)
    app.router.add_post("/api/auth.test", auth_test)
    app.router.add_get("/ws", ws)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        settings = load_settings(env={"MOODGIF_HOME": str(tmp_path)}).override(
            slack__socket_mode=True, slack__bot_token="xoxb-1", slack__app_token="xapp-1",
            slack__api_url=f"http://127.0.0.1:{server.port}/api/")
        connecting = asyncio.create_task(serve._connect_slack(None, settings))  # type: ignore[arg-type]
        await until(lambda: bool(open_sockets) and connecting.done())
        await serve._close_slack(connecting)  # what `serve` does on SIGTERM
        await until(lambda: not open_sockets)
    finally:
        never.set()
        await server.close()


def test_empty_oauth_variables_in_the_environment_do_not_turn_bolt_to_oauth(sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An env file with `SLACK_CLIENT_ID=` and `SLACK_CLIENT_SECRET=` left empty: bolt built
    its own OAuth flow from them and ignored the bot token, while the start-up line said
    "one workspace"."""
    import os

    monkeypatch.setenv("SLACK_CLIENT_ID", "")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "")
    core, settings, _ = make_core(sqlite_settings, sqlite_engine, slack_bot_token=TOKEN,
                                  slack_signing_secret=SECRET)
    for socket_mode in (False, True):
        app = slack_adapter.build_app(core, settings.override(slack__app_token="xapp-1-a"), socket_mode=socket_mode)
        assert app is not None and app.oauth_flow is None, socket_mode
    assert os.environ["SLACK_CLIENT_ID"] == "" and os.environ["SLACK_CLIENT_SECRET"] == ""  # put back
