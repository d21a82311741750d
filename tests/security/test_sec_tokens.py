"""Slack OAuth bot tokens are encrypted in the database and still work through bolt."""

from __future__ import annotations

import datetime
import sqlite3

import aiohttp
import pytest
from _adapter_core import make_core
from _sec_server import running
from _sec_slack import SECRET, SlackStack
from fake_slack import TEAM, FakeSlack
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.adapters import slack as slack_adapter
from bot.adapters.slack_tokens import TokenCipher, TokenKeyError, new_key

BOT_TOKEN = "xoxb-oauth-installed-token-777"


def _raw_tokens(db: str) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT bot_token FROM slack_bots").fetchall()
        rows += conn.execute("SELECT bot_token, user_token FROM slack_installations").fetchall()
    return repr(rows)


async def test_installation_tokens_are_sealed_at_rest_and_open_for_bolt(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    key = new_key()
    async with FakeSlack(admins=("U0ADMIN",)) as fake:
        core, settings, _ = make_core(sqlite_settings, sqlite_engine, slack_client_id="111.222",
                                      slack_client_secret="oauth-secret", slack_signing_secret=SECRET,
                                      slack_api_url=fake.api_url, public_url="https://gifs.example.org",
                                      secret_key=key, cooldown_s=0.0)
        async with running(core, settings, sqlite_engine) as url, aiohttp.ClientSession() as http:
            # a store like the one `moodgif serve` mounted (same settings, same database)
            bolt = slack_adapter.build_app(core, settings, socket_mode=False)
            assert bolt is not None and bolt.oauth_flow is not None
            app_store = bolt.oauth_flow.settings.installation_store
            await app_store.create_tables()
            await app_store.async_save(Installation(
                app_id="A0MOOD", team_id=TEAM, user_id="U0ADMIN", bot_token=BOT_TOKEN, bot_id="BMOOD",
                bot_user_id="UBOTMOOD", user_token="xoxp-user-secret-1", installed_at=1_700_000_000.0))
            db = settings.db_url.split("///", 1)[1]
            raw = _raw_tokens(db)
            assert "xoxb" not in raw and "xoxp" not in raw and "enc1:" in raw
            # bolt, through the real HTTP route, finds the bot token and Slack gets it in clear
            stack = SlackStack(fake, core, settings, sqlite_engine, url, http)
            assert await stack.command("happy", user="U0ALICE", command="/gif") == 200
            await fake.wait_for("webhook", 1)
            assert BOT_TOKEN in {c.token for c in fake.calls if c.path != "webhook"}
        # the same database under another key: a clear error, never a silent failure
        other = slack_adapter.build_app(core, settings.override(slack__secret_key=new_key()),
                                        socket_mode=False)
        with pytest.raises(TokenKeyError, match="another MOODGIF_SECRET_KEY"):
            await other.oauth_flow.settings.installation_store.async_find_bot(  # type: ignore[union-attr]
                enterprise_id=None, team_id=TEAM)
        await core.close()


async def test_plaintext_rows_from_before_are_sealed_at_start(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
    from sqlalchemy.ext.asyncio import create_async_engine

    url = slack_adapter.async_db_url(sqlite_settings.db_url)
    old = AsyncSQLAlchemyInstallationStore(client_id="111.222", engine=create_async_engine(url))
    await old.create_tables()
    await old.async_save(Installation(app_id="A0MOOD", team_id=TEAM, user_id="U1", bot_token=BOT_TOKEN,
                                      bot_id="B1", bot_user_id="UB1", installed_at=1_700_000_000.0))
    db = sqlite_settings.db_url.split("///", 1)[1]
    assert BOT_TOKEN in _raw_tokens(db)
    settings = sqlite_settings.override(slack__client_id="111.222", slack__client_secret="s",
                                        slack__signing_secret=SECRET, slack__secret_key=new_key())
    bolt = slack_adapter.build_app(None, settings, socket_mode=False)  # type: ignore[arg-type]
    await slack_adapter.create_oauth_tables(bolt)  # type: ignore[arg-type]
    assert BOT_TOKEN not in _raw_tokens(db)
    found = await bolt.oauth_flow.settings.installation_store.async_find_bot(  # type: ignore[union-attr]
        enterprise_id=None, team_id=TEAM)
    assert found.bot_token == BOT_TOKEN


def test_oauth_without_a_secret_key_is_off_with_a_clear_log(sqlite_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    settings = sqlite_settings.override(slack__client_id="111.222", slack__client_secret="s",
                                        slack__signing_secret=SECRET)
    assert slack_adapter.mount(web.Application(), None, settings) is None  # type: ignore[arg-type]
    assert "MOODGIF_SECRET_KEY" in caplog.text
    with pytest.raises(TokenKeyError):
        TokenCipher("not-a-key")


async def test_anonymous_install_visits_do_not_pile_up(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    settings = sqlite_settings.override(slack__client_id="111.222", slack__client_secret="s",
                                        slack__signing_secret=SECRET, slack__secret_key=new_key(),
                                        http__public_url="https://gifs.example.org")
    core, settings, _ = make_core(settings, sqlite_engine)
    db = settings.db_url.split("///", 1)[1]
    async with running(core, settings, sqlite_engine) as url, aiohttp.ClientSession() as http:
        for _ in range(30):
            async with http.get(url + "/slack/install", allow_redirects=False) as r:
                assert r.status in (200, 302)
        bolt = slack_adapter.build_app(core, settings, socket_mode=False)
        store = bolt.oauth_flow.settings.state_store  # type: ignore[union-attr]
        async with store.engine.begin() as conn:  # ten minutes later: all of them expired
            await conn.execute(update(store.oauth_states).values(expire_at=store.oauth_states.c.expire_at
                                                                 - datetime.timedelta(hours=1)))
        async with http.get(url + "/slack/install", allow_redirects=False) as r:
            assert r.status in (200, 302)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM slack_oauth_states").fetchone()[0] == 1
    await core.close()
