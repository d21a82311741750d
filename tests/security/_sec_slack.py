"""The real bolt app behind the real web server, with signed requests (as tests/test_slack.py)."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from _adapter_core import make_core
from _sec_server import running
from fake_slack import TEAM, FakeSlack
from slack_sdk.signature import SignatureVerifier

from bot.adapters import slack as slack_adapter

SECRET = "test-signing-secret-0123456789"
TOKEN = "xoxb-test-token-0123456789"
CHANNEL = "C0GENERAL"



_TRIGGERS = itertools.count(1)


def next_trigger() -> str:
    """A new `trigger_id`, as Slack gives each command and click (a repeated one is a replay)."""
    return f"{next(_TRIGGERS)}.1700000000.abc"

@dataclass
class SlackStack:
    fake: FakeSlack
    core: Any
    settings: Any
    engine: Any
    url: str
    http: aiohttp.ClientSession
    hooks: int = 0

    def hook(self) -> str:
        self.hooks += 1
        return self.fake.response_url(str(self.hooks))

    async def post(self, body: str, content_type: str = "application/x-www-form-urlencoded",
                   **headers: str) -> int:
        stamp = str(int(time.time()))
        sig = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
        h = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sig, "Content-Type": content_type,
             **headers}
        async with self.http.post(self.url + slack_adapter.EVENTS_PATH, data=body.encode(), headers=h) as r:
            await r.read()
            return r.status

    async def command(self, text: str, *, user: str = "U0ADMIN", command: str = "/gif-admin") -> int:
        return await self.post(urllib.parse.urlencode({
            "token": "legacy", "team_id": TEAM, "team_domain": "fake", "channel_id": CHANNEL,
            "channel_name": "general", "user_id": user, "user_name": user.lower(), "command": command,
            "text": text, "api_app_id": "A0MOOD", "response_url": self.hook(), "trigger_id": next_trigger(),
        }))

    async def click(self, action_id: str, value: str, *, user: str = "U0ALICE") -> int:
        payload = {
            "type": "block_actions", "api_app_id": "A0MOOD", "token": "legacy", "trigger_id": next_trigger(),
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL,
                          "is_ephemeral": True},
            "channel": {"id": CHANNEL, "name": "general"},
            "response_url": self.hook(),
            "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                         "action_ts": "1700000000.1"}],
        }
        return await self.post("payload=" + urllib.parse.quote(json.dumps(payload)))


@contextlib.asynccontextmanager
async def slack_stack(settings: Any, engine: Any, **overrides: Any) -> AsyncIterator[SlackStack]:
    async with FakeSlack(admins=("U0ADMIN",)) as fake:
        core, settings, _clock = make_core(
            settings, engine, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
            slack_api_url=fake.api_url, public_url="https://gifs.example.org", cooldown_s=0.0,
            **overrides)
        async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
            yield SlackStack(fake, core, settings, engine, url, http)
        await core.close()
