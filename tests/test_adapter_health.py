"""Adapters report their connection to /readyz through bot.health."""

from __future__ import annotations

from aiohttp import web

from bot.adapters import discord as discord_adapter
from bot.adapters import slack as slack_adapter
from bot.health import get_health
from scorer.settings import load_settings


def _components() -> dict:
    return get_health().snapshot()["components"]


def test_slack_http_mount_reports_ready(tmp_path) -> None:
    get_health().reset()
    settings = load_settings(env={}, home=str(tmp_path), slack__bot_token="xoxb-test",
                             slack__signing_secret="secret", slack__api_url="http://127.0.0.1:9/api/")
    assert "slack" not in _components()
    app = slack_adapter.mount(web.Application(), None, settings)  # type: ignore[arg-type]
    assert app is not None
    assert _components()["slack"]["ok"] is True


def test_slack_without_credentials_reports_nothing(tmp_path) -> None:
    get_health().reset()
    settings = load_settings(env={}, home=str(tmp_path))
    assert slack_adapter.mount(web.Application(), None, settings) is None  # type: ignore[arg-type]
    assert "slack" not in _components()


async def test_discord_gateway_events_drive_readiness(tmp_path) -> None:
    get_health().reset()
    settings = load_settings(env={}, home=str(tmp_path), discord__token="x")
    bot = discord_adapter.build_bot(None, settings)
    await bot.on_ready()
    assert _components()["discord"]["ok"] is True
    await bot.on_disconnect()
    assert _components()["discord"]["ok"] is False
    await bot.on_resumed()
    assert _components()["discord"]["ok"] is True
    get_health().reset()
