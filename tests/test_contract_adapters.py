"""The adapter contract (tests/contract.py) through the Slack and Discord adapters: the same
script of user gestures, delivered as signed Slack requests or Discord gateway payloads,
must leave the same comparisons in the ledger as the core and web drivers do."""

from __future__ import annotations

from typing import Any, ClassVar

import aiohttp
import pytest
from _adapter_core import make_core
from aiohttp import web
from aiohttp.test_utils import TestServer
from contract import (
    CHOICE_EXPECTED,
    CONTRACT_SETTINGS,
    EXPECTED,
    OTHER_EXPECTED,
    SWITCH_EXPECTED,
    Asked,
    PollSeen,
    PostSeen,
    Shown,
    run_choice_contract,
    run_contract,
    run_other_feeling_contract,
    run_switch_contract,
)
from fake_discord import DiscordDriver, FakeDiscord, buttons, select_options
from fake_slack import FakeSlack
from test_slack import SECRET, TOKEN, Stack, _buttons, _images, _menu

from bot.adapters import discord as discord_adapter
from bot.adapters import slack as slack_adapter
from bot.adapters import slack_blocks as blocks

PUBLIC = "https://gifs.example.org"


def _sha_of_url(url: str) -> str:
    return url.rsplit("/", 1)[1].removesuffix(".gif")


class SlackDriver:
    """Users clicking in Slack: signed slash commands and block actions into the bolt app."""

    platform = "slack"

    def __init__(self, stack: Stack) -> None:
        self.s = stack
        self.fake = stack.fake

    @staticmethod
    def _uid(user: str) -> str:
        return "U" + user.upper()

    async def _answers(self, hook: str, n: int) -> list[dict[str, Any]]:
        """The first `n` response_url messages for the request whose hook is `hook`."""
        async def ready() -> bool:
            return len([c for c in self.fake.calls_to("webhook") if c.token == hook]) >= n

        for _ in range(500):
            if await ready():
                break
            await _sleep()
        return [c.data for c in self.fake.calls_to("webhook") if c.token == hook][:n]

    async def request(self, user: str, text: str) -> Shown:
        await self.s.command(text.removeprefix("/gif").strip(), user=self._uid(user))
        hook = str(self.s.hooks)
        preview, poll = await self._answers(hook, 2)
        bts = _buttons(preview)
        assert blocks.SEND in bts, preview
        shas = tuple(_sha_of_url(i["image_url"]) for i in _images(preview))
        poll_buttons = _buttons(poll)
        left, right = (_sha_of_url(i["image_url"]) for i in _images(poll))
        seen = PollSeen(poll_buttons[f"{blocks.POLL}:left"], left, right)
        return Shown(bts[blocks.SEND], shas, seen, _switches(preview), tuple(_menu(preview, blocks.OTHER)))

    async def switch(self, user: str, shown: Shown, emotion: str) -> Shown:
        await self.s.click(f"{blocks.SWITCH}:{emotion}", f"{shown.handle}|{emotion}", user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        assert msg.get("replace_original") is True, msg
        return Shown(_buttons(msg)[blocks.SEND], tuple(_sha_of_url(i["image_url"]) for i in _images(msg)),
                     alternatives=_switches(msg))

    async def switch_other(self, user: str, shown: Shown, emotion: str) -> Shown:
        await self.s.select(blocks.OTHER, f"{shown.handle}|{emotion}", user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        assert msg.get("replace_original") is True, msg
        return Shown(_buttons(msg)[blocks.SEND], tuple(_sha_of_url(i["image_url"]) for i in _images(msg)),
                     alternatives=_switches(msg))

    async def ask(self, user: str, text: str) -> Asked:
        await self.s.command(text.removeprefix("/gif").strip(), user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        values = {a.split(":", 1)[1]: v for a, v in _buttons(msg).items() if a.startswith(f"{blocks.CHOOSE}:")}
        assert values, msg
        return Asked(next(iter(values.values())).split("|")[0], tuple(values), tuple(_menu(msg, blocks.CHOOSE_OTHER)))

    async def choose_other(self, user: str, asked: Asked, emotion: str) -> Shown:
        await self.s.select(blocks.CHOOSE_OTHER, f"{asked.handle}|{emotion}", user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        return Shown(_buttons(msg)[blocks.SEND], tuple(_sha_of_url(i["image_url"]) for i in _images(msg)),
                     alternatives=_switches(msg))

    async def choose(self, user: str, asked: Asked, emotion: str) -> Shown:
        await self.s.click(f"{blocks.CHOOSE}:{emotion}", f"{asked.handle}|{emotion}", user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        return Shown(_buttons(msg)[blocks.SEND], tuple(_sha_of_url(i["image_url"]) for i in _images(msg)),
                     alternatives=_switches(msg))

    async def shuffle(self, user: str, shown: Shown) -> Shown:
        await self.s.click(blocks.SHUFFLE, shown.handle, user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        assert msg.get("replace_original") is True, msg
        return Shown(shown.handle, tuple(_sha_of_url(i["image_url"]) for i in _images(msg)))

    async def send(self, user: str, shown: Shown) -> PostSeen | None:
        before = len(self.fake.calls_to("chat.postMessage"))
        await self.s.click(blocks.SEND, shown.handle, user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        posted = self.fake.calls_to("chat.postMessage")[before:]
        if not posted:
            assert "already" in msg.get("text", ""), msg
            return None
        assert msg.get("replace_original") is True and blocks.UNDO in _buttons(msg)  # "Sent ✓", Undo
        data = posted[0].data
        return PostSeen(_buttons(data)[blocks.VOTE_UP], _sha_of_url(_images(data)[0]["image_url"]))

    async def vote(self, user: str, post: PostSeen, up: bool | None) -> None:
        action = blocks.VOTE_UP if up else blocks.VOTE_DOWN
        await self.s.click(action, post.handle, user=self._uid(user), ephemeral=False)
        (msg,) = await self._answers(str(self.s.hooks), 1)
        assert "👍" in msg["text"] or "👎" in msg["text"], msg

    async def answer_poll(self, user: str, poll: PollSeen, answer: str) -> None:
        await self.s.click(f"{blocks.POLL}:{answer}", poll.handle, user=self._uid(user))
        (msg,) = await self._answers(str(self.s.hooks), 1)
        assert msg.get("replace_original") is True and "Thanks" in msg["text"], msg


def _switches(message: dict[str, Any]) -> tuple[str, ...]:
    """The feelings a Slack preview offers to switch to, in order."""
    return tuple(a.split(":", 1)[1] for a in _buttons(message) if a.startswith(f"{blocks.SWITCH}:"))


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.02)


class DiscordContractDriver:
    """Users clicking in Discord: interaction payloads into the real command tree and buttons."""

    platform = "discord"
    USERS: ClassVar[dict[str, tuple[int, str]]] = {"alice": (960_000_000_000_000_001, "alice"), "bob": (960_000_000_000_000_002, "bob")}

    def __init__(self, d: DiscordDriver) -> None:
        self.d = d
        self.fake = d.fake
        self.messages: dict[str, dict[str, Any]] = {}  # handle -> the message to click on

    @staticmethod
    def _shas(payload: dict[str, Any]) -> tuple[str, ...]:
        return tuple(e["image"]["url"].removeprefix("attachment://").removesuffix(".gif")
                     for e in payload.get("embeds", []) if e.get("image"))

    async def request(self, user: str, text: str) -> Shown:
        token = await self.d.slash("gif", [{"name": "words", "type": 3, "value": text.removeprefix("/gif").strip()}],
                                   user=self.USERS[user])
        edit, poll = self.fake.calls[-2], self.fake.calls[-1]
        assert edit.kind == "edit_original" and poll.kind == "followup", self.fake.calls[-3:]
        send = buttons(edit.payload)[0]
        self.messages[send] = self.fake.originals[token]
        left, right = self._shas(poll.payload)
        poll_id = buttons(poll.payload)[0]
        self.messages[poll_id] = self.fake.messages[poll.message_id]  # type: ignore[index]
        return Shown(send, self._shas(edit.payload), PollSeen(poll_id, left, right),
                     self._switches(edit.payload), select_options(edit.payload, "mg:other:"))

    @staticmethod
    def _switches(payload: dict[str, Any]) -> tuple[str, ...]:
        return tuple(c.split(":")[2] for c in buttons(payload) if c.startswith("mg:switch:"))

    async def switch(self, user: str, shown: Shown, emotion: str) -> Shown:
        sid = shown.handle.split(":")[2]
        token = await self.d.click(self.messages[shown.handle], f"mg:switch:{emotion}:{sid}", user=self.USERS[user])
        edit = self.fake.calls[-1]
        assert edit.kind == "edit_original", edit
        send = buttons(edit.payload)[0]
        self.messages[send] = self.fake.originals[token]
        return Shown(send, self._shas(edit.payload), alternatives=self._switches(edit.payload))

    async def switch_other(self, user: str, shown: Shown, emotion: str) -> Shown:
        sid = shown.handle.split(":")[2]
        token = await self.d.select(self.messages[shown.handle], f"mg:other:{sid}", [emotion], user=self.USERS[user])
        edit = self.fake.calls[-1]
        assert edit.kind == "edit_original", edit
        send = buttons(edit.payload)[0]
        self.messages[send] = self.fake.originals[token]
        return Shown(send, self._shas(edit.payload), alternatives=self._switches(edit.payload))

    async def ask(self, user: str, text: str) -> Asked:
        token = await self.d.slash("gif", [{"name": "words", "type": 3, "value": text.removeprefix("/gif").strip()}],
                                   user=self.USERS[user])
        edit = self.fake.calls[-1]
        assert edit.kind == "edit_original", edit
        picks = [c for c in buttons(edit.payload) if c.startswith("mg:pick:")]
        assert picks, edit.payload
        self.messages[picks[0]] = self.fake.originals[token]
        return Asked(picks[0], tuple(c.split(":")[2] for c in picks), select_options(edit.payload, "mg:pickother:"))

    async def choose_other(self, user: str, asked: Asked, emotion: str) -> Shown:
        ask_id = asked.handle.split(":")[3]
        token = await self.d.select(self.messages[asked.handle], f"mg:pickother:{ask_id}", [emotion],
                                    user=self.USERS[user])
        edit = self.fake.calls[-1]
        assert edit.kind == "edit_original", edit
        send = buttons(edit.payload)[0]
        self.messages[send] = self.fake.originals[token]
        return Shown(send, self._shas(edit.payload), alternatives=self._switches(edit.payload))

    async def choose(self, user: str, asked: Asked, emotion: str) -> Shown:
        ask_id = asked.handle.split(":")[3]
        token = await self.d.click(self.messages[asked.handle], f"mg:pick:{emotion}:{ask_id}", user=self.USERS[user])
        edit = self.fake.calls[-1]
        assert edit.kind == "edit_original", edit
        send = buttons(edit.payload)[0]
        self.messages[send] = self.fake.originals[token]
        return Shown(send, self._shas(edit.payload), alternatives=self._switches(edit.payload))

    async def shuffle(self, user: str, shown: Shown) -> Shown:
        sid = shown.handle.split(":")[2]
        token = await self.d.click(self.messages[shown.handle], f"mg:shuffle:{sid}", user=self.USERS[user])
        edit = self.fake.calls[-1]
        assert edit.kind == "edit_original", edit
        self.messages[shown.handle] = self.fake.originals[token]
        return Shown(shown.handle, self._shas(edit.payload))

    async def send(self, user: str, shown: Shown) -> PostSeen | None:
        before = len(self.fake.calls_of("followup"))
        await self.d.click(self.messages[shown.handle], shown.handle, user=self.USERS[user])
        new = [c for c in self.fake.calls_of("followup")[before:] if not c.payload.get("flags", 0) & 64]
        if not new:  # refused: a private note ("already sent"), nothing in the channel
            assert "already" in (self.fake.calls[-1].payload.get("content") or ""), self.fake.calls[-1]
            return None
        post = new[0]
        up = buttons(post.payload)[0]
        self.messages[up] = self.fake.messages[post.message_id]  # type: ignore[index]
        return PostSeen(up, self._shas(post.payload)[0])

    async def vote(self, user: str, post: PostSeen, up: bool | None) -> None:
        custom_id = post.handle if up else post.handle.replace(":up:", ":down:")
        await self.d.click(self.messages[post.handle], custom_id, user=self.USERS[user])
        assert "👍" in self.fake.calls[-1].payload["content"] or "👎" in self.fake.calls[-1].payload["content"]

    async def answer_poll(self, user: str, poll: PollSeen, answer: str) -> None:
        pid = poll.handle.split(":")[3]
        await self.d.click(self.messages[poll.handle], f"mg:poll:{answer}:{pid}", user=self.USERS[user])
        assert "Thanks" in (self.fake.calls[-1].payload.get("content") or ""), self.fake.calls[-1]


SCRIPTS = pytest.mark.parametrize("script, expected", [(run_contract, EXPECTED),
                                                      (run_switch_contract, SWITCH_EXPECTED),
                                                      (run_choice_contract, CHOICE_EXPECTED),
                                                      (run_other_feeling_contract, OTHER_EXPECTED)],
                                   ids=["contract", "switch", "choice", "other"])


@SCRIPTS
async def test_slack_driver_meets_the_contract(sqlite_settings, sqlite_engine, script, expected) -> None:
    async with FakeSlack() as fake:
        core, settings, clock = make_core(sqlite_settings, sqlite_engine, slack_bot_token=TOKEN,
                                          slack_signing_secret=SECRET, slack_api_url=fake.api_url,
                                          public_url=PUBLIC, **CONTRACT_SETTINGS)
        app = web.Application()
        slack_adapter.mount(app, core, settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                stack = Stack(fake, core, sqlite_engine, clock, str(server.make_url(slack_adapter.EVENTS_PATH)), http)
                assert await script(SlackDriver(stack), sqlite_engine) == expected
        finally:
            await server.close()


@SCRIPTS
async def test_discord_driver_meets_the_contract(sqlite_settings, sqlite_engine, script, expected) -> None:
    core, settings, _clock = make_core(sqlite_settings, sqlite_engine, public_url=PUBLIC, **CONTRACT_SETTINGS)
    d = DiscordDriver(discord_adapter.build_bot(core, settings), FakeDiscord())
    await d.setup()
    try:
        assert await script(DiscordContractDriver(d), sqlite_engine) == expected
    finally:
        await d.close()



