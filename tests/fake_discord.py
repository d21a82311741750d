"""Drive the real discord.py client offline: gateway events in, HTTP calls captured.

No Discord is reachable, and no maintained project fakes the gateway, so this does what
discord.py's own tests and dpytest do:
- events go in as the raw gateway payloads the client's `ConnectionState` parses
  (`parse_interaction_create`, `parse_message_create`, `parse_message_reaction_add`, ...),
  so the real command tree, DynamicItem routing and cog listeners run;
- everything the bot answers through an interaction goes out through discord.py's webhook
  adapter, replaced via its context variable by `FakeWebhookAdapter` (dpytest PR #136's idea);
  bot-token calls (a reply to a mention, a DM) go through `HTTPClient.request`, replaced on
  the instance by `FakeDiscord.bot_request`. Both record what would have been sent and
  answer with the message payloads Discord would return.

`FakeDiscordServer` is the other way in: a local REST API and gateway websocket for the real
login and connection (`start`), to test what happens when Discord cannot be reached.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

APP_ID = 900_000_000_000_000_001
GUILD = 910_000_000_000_000_001
CHANNEL = 920_000_000_000_000_001
BOT_USER = {"id": str(APP_ID), "username": "moodgif", "discriminator": "0", "avatar": None,
            "global_name": "moodgif", "bot": True}
TIMESTAMP = "2026-01-01T00:00:00+00:00"
MANAGE_GUILD = discord.Permissions(manage_guild=True, view_channel=True, send_messages=True)
MEMBER_PERMS = discord.Permissions(view_channel=True, send_messages=True, use_application_commands=True)


def user_payload(uid: int, name: str) -> dict[str, Any]:
    return {"id": str(uid), "username": name, "discriminator": "0", "avatar": None, "global_name": name}


def member_payload(uid: int, name: str, perms: discord.Permissions = MEMBER_PERMS) -> dict[str, Any]:
    return {"user": user_payload(uid, name), "roles": [], "joined_at": TIMESTAMP, "deaf": False,
            "mute": False, "flags": 0, "nick": None, "permissions": str(perms.value)}


def channel_payload(cid: int = CHANNEL) -> dict[str, Any]:
    return {"id": str(cid), "type": 0, "guild_id": str(GUILD), "name": "general", "position": 0,
            "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
            "last_message_id": None, "rate_limit_per_user": 0}


@dataclass
class Call:
    kind: str  # callback, edit_original, delete_original, followup, channel_message, dm_open, message_delete
    payload: dict[str, Any]
    files: list[str] = field(default_factory=list)
    token: str = ""
    message_id: int | None = None  # id of the message this call created or edited


class FakeDiscord:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._ids = itertools.count(930_000_000_000_000_001)
        self._tokens = itertools.count(1)
        self.originals: dict[str, dict[str, Any]] = {}  # interaction token -> its message
        self.messages: dict[int, dict[str, Any]] = {}
        # interaction id -> the `interaction_metadata` Discord puts on its response message
        self.interactions: dict[int, dict[str, Any]] = {}
        self.refuse_channel_messages = False  # answer the bot's own posts 403 (no Send Messages)
        self.failing_followups = 0  # answer this many public follow-ups 500 (an outage)
        self.dm_channels: set[int] = set()  # refuse_channel_messages spares DMs
        self.adapter = FakeWebhookAdapter(self)

    def next_id(self) -> int:
        return next(self._ids)

    def calls_of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    def message(self, payload: dict[str, Any], files: list[str], *, channel: int = CHANNEL,
                mid: int | None = None) -> dict[str, Any]:
        mid = mid or self.next_id()
        msg = {
            "id": str(mid), "channel_id": str(channel), "type": 0, "author": BOT_USER,
            "content": payload.get("content") or "", "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [], "flags": payload.get("flags", 0),
            "attachments": [{"id": str(self.next_id()), "filename": f, "size": 1, "url": f"https://cdn/{f}",
                             "proxy_url": f"https://cdn/{f}"} for f in files],
            "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False, "tts": False,
            "timestamp": TIMESTAMP, "edited_timestamp": None,
        }
        if ref := payload.get("message_reference"):  # a reply, as Discord returns one
            msg["type"] = 19
            msg["message_reference"] = {"type": 0, "message_id": str(ref["message_id"]),
                                        "channel_id": str(ref.get("channel_id") or channel)}
        if meta := payload.get("interaction_metadata"):
            msg["interaction_metadata"] = meta
        self.messages[mid] = msg
        return msg

    # --- bot-token HTTP (HTTPClient.request) ---------------------------------------------
    async def bot_request(self, route: Any, *, files: Any = None, form: Any = None, **kwargs: Any) -> Any:
        payload, names = _unpack(kwargs.get("json"), form, files)
        path = route.url
        if route.method == "POST" and route.path == "/users/@me/channels":
            dm = self.next_id()
            self.dm_channels.add(dm)
            self.calls.append(Call("dm_open", payload, names))
            return {"id": str(dm), "type": 1, "recipients": [user_payload(int(payload["recipient_id"]), "x")],
                    "last_message_id": None}
        if route.method == "POST" and route.path == "/channels/{channel_id}/messages":
            if self.refuse_channel_messages and int(route.channel_id) not in self.dm_channels:
                self.calls.append(Call("refused", payload, names))
                raise discord.Forbidden(_Response(403, "Forbidden"), {"code": 50013, "message": "Missing Permissions"})
            channel = int(route.channel_id)
            msg = self.message(payload, names, channel=channel)
            self.calls.append(Call("channel_message", {**payload, "channel_id": channel}, names,
                                   message_id=int(msg["id"])))
            return msg
        if route.method == "DELETE" and route.path == "/channels/{channel_id}/messages/{message_id}":
            mid = int(route.url.rstrip("/").rsplit("/", 1)[1])  # a Route keeps only channel_id apart
            self.messages.pop(mid, None)
            self.calls.append(Call("message_delete", {"channel_id": int(route.channel_id)}, [], message_id=mid))
            return None
        raise AssertionError(f"unexpected bot HTTP call {route.method} {path}")


class FakeWebhookAdapter(AsyncWebhookAdapter):
    """Everything sent through an interaction token lands here instead of on discord.com."""

    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__()
        self.fake = fake

    async def request(self, route: Any, session: Any, *, payload: dict[str, Any] | None = None,
                      multipart: list[dict[str, Any]] | None = None, files: Any = None,
                      params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        fake = self.fake
        body, names = _unpack(payload, multipart, files)
        token = route.webhook_token or ""
        path, method = route.path, route.method
        if path.startswith("/interactions/"):
            data = body.get("data") or {}
            msg = None
            if body.get("type") in (4, 5):  # a new message (or "thinking" placeholder)
                meta = fake.interactions.get(int(route.webhook_id))
                msg = fake.message({**data, "interaction_metadata": meta} if meta else data, names)
                fake.originals[token] = msg
            elif body.get("type") == 7:  # update the clicked message
                msg = fake.originals.get(token)
            fake.calls.append(Call("callback", body, names, token, int(msg["id"]) if msg else None))
            return {"interaction": {"id": str(route.webhook_id), "type": 3,
                                    "response_message_id": msg["id"] if msg else None}}
        if path.endswith("/messages/@original"):
            original = fake.originals.get(token)
            if method == "DELETE":
                fake.calls.append(Call("delete_original", {}, [], token))
                return None
            if method == "PATCH":
                mid = int(original["id"]) if original else fake.next_id()
                msg = fake.message({**(original or {}), **body}, names, mid=mid)
                fake.originals[token] = msg
                fake.calls.append(Call("edit_original", body, names, token, mid))
                return msg
            return original
        if method == "POST" and path == "/webhooks/{webhook_id}/{webhook_token}":
            if fake.failing_followups and not body.get("flags", 0) & 64:
                fake.failing_followups -= 1
                fake.calls.append(Call("followup_failed", body, names, token))
                raise discord.HTTPException(_Response(500, "Internal Server Error"), {"code": 0, "message": "outage"})
            msg = fake.message(body, names)
            fake.calls.append(Call("followup", body, names, token, int(msg["id"])))
            return msg
        if method == "DELETE":
            fake.calls.append(Call("delete_message", {}, [], token))
            return None
        raise AssertionError(f"unexpected webhook call {method} {path}")


@dataclass
class _Response:  # what discord.HTTPException reads off an aiohttp response
    status: int
    reason: str


def _unpack(payload: Any, multipart: Any, files: Any) -> tuple[dict[str, Any], list[str]]:
    """The JSON body and the attached file names, whether sent as JSON or multipart."""
    body = dict(payload or {})
    names: list[str] = []
    for part in multipart or []:
        if part.get("name") == "payload_json":
            body = json.loads(part["value"])
        elif part.get("filename"):
            names.append(part["filename"])
    if not names and files:
        names = [f.filename for f in files]
    return body, names


class DiscordDriver:
    """A real bot object, never connected, fed with gateway payloads."""

    def __init__(self, bot: Any, fake: FakeDiscord) -> None:
        self.bot = bot
        self.fake = fake
        self._seq = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()

    async def setup(self) -> None:
        bot = self.bot
        self._background = set(asyncio.all_tasks())  # the test itself, fixtures' servers
        await bot._async_setup_hook()
        bot.http.request = self.fake.bot_request
        bot._connection.user = discord.ClientUser(state=bot._connection, data=BOT_USER)
        bot._connection.application_id = APP_ID
        async_context.set(self.fake.adapter)
        await bot.setup_hook()
        guild = {"id": str(GUILD), "name": "Test", "icon": None, "owner_id": "1", "roles": [
            {"id": str(GUILD), "name": "@everyone", "permissions": str(MEMBER_PERMS.value), "position": 0,
             "color": 0, "hoist": False, "managed": False, "mentionable": False}],
            "channels": [channel_payload()], "members": [], "emojis": [], "features": [],
            "member_count": 3, "large": False, "unavailable": False, "threads": [], "stickers": [],
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "mfa_level": 0, "premium_tier": 0, "preferred_locale": "en-US", "nsfw_level": 0,
            "system_channel_flags": 0}
        bot._connection.parse_guild_create(guild)
        await self.settle()

    async def close(self) -> None:
        await self.settle()
        await self.bot.close()

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until every task the events started (and the tasks those started) is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks()
                       if t is not me and t not in self._background and not t.done()
                       and not _is_view_timer(t)]
            if not pending:
                return
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"tasks still running: {[t.get_name() for t in pending]}")
            await asyncio.wait(pending, timeout=left)

    def _base(self, kind: int, user: tuple[int, str], perms: discord.Permissions) -> dict[str, Any]:
        n = next(self._seq)
        return {"id": str(940_000_000_000_000_000 + n), "application_id": str(APP_ID), "type": kind,
                "token": f"itoken-{n}", "version": 1, "guild_id": str(GUILD), "channel_id": str(CHANNEL),
                "channel": channel_payload(), "member": member_payload(*user, perms=perms),
                "app_permissions": str(MEMBER_PERMS.value), "attachment_size_limit": 10 * 1024 * 1024,
                "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
                "authorizing_integration_owners": {}, "context": 0}

    async def slash(self, name: str, options: list[dict[str, Any]], *, user: tuple[int, str],
                    perms: discord.Permissions = MEMBER_PERMS, autocomplete: bool = False) -> str:
        """Run an application command (type 2) or its autocomplete (type 4); returns the token."""
        data = self._base(4 if autocomplete else 2, user, perms)
        cmd = self.bot.tree.get_command(name)
        data["data"] = {"id": str(APP_ID + 7), "name": name, "type": 1, "options": options,
                        "guild_id": None if cmd is not None else str(GUILD)}
        self.fake.interactions[int(data["id"])] = {
            "id": data["id"], "type": 2, "user": user_payload(*user), "authorizing_integration_owners": {}}
        self.bot._connection.parse_interaction_create(data)
        await self.settle()
        return data["token"]

    async def message_command(self, name: str, target: dict[str, Any], *, user: tuple[int, str],
                              perms: discord.Permissions = MEMBER_PERMS) -> str:
        """Run a message context-menu command (type 2, data type 3) on a captured message."""
        data = self._base(2, user, perms)
        cmd = self.bot.tree.get_command(name, type=discord.AppCommandType.message)
        data["data"] = {"id": str(APP_ID + 8), "name": name, "type": 3, "target_id": target["id"],
                        "resolved": {"messages": {target["id"]: target}},
                        "guild_id": None if cmd is not None else str(GUILD)}
        self.fake.interactions[int(data["id"])] = {
            "id": data["id"], "type": 2, "user": user_payload(*user), "authorizing_integration_owners": {},
            "target_message_id": target["id"]}
        self.bot._connection.parse_interaction_create(data)
        await self.settle()
        return data["token"]

    def chat_message(self, text: str, *, user: tuple[int, str]) -> dict[str, Any]:
        """A MESSAGE payload someone posted in the channel (not sent through the bot)."""
        return {"id": str(self.fake.next_id()), "channel_id": str(CHANNEL), "author": user_payload(*user),
                "content": text, "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False,
                "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
                "embeds": [], "pinned": False, "type": 0, "flags": 0, "components": []}

    async def click(self, message: dict[str, Any], custom_id: str, *, user: tuple[int, str],
                    perms: discord.Permissions = MEMBER_PERMS) -> str:
        """Click a button of a message we captured; returns the click's interaction token."""
        data = self._base(3, user, perms)
        data["message"] = message
        data["data"] = {"custom_id": custom_id, "component_type": 2}
        self.fake.originals[data["token"]] = message  # a click's @original is the clicked message
        self.bot._connection.parse_interaction_create(data)
        await self.settle()
        return data["token"]

    async def select(self, message: dict[str, Any], custom_id: str, values: list[str], *, user: tuple[int, str],
                     perms: discord.Permissions = MEMBER_PERMS) -> str:
        """Pick `values` in a select menu of a message we captured; returns the interaction token."""
        data = self._base(3, user, perms)
        data["message"] = message
        data["data"] = {"custom_id": custom_id, "component_type": 3, "values": values}
        self.fake.originals[data["token"]] = message
        self.bot._connection.parse_interaction_create(data)
        await self.settle()
        return data["token"]

    async def react(self, message_id: int, emoji: str, *, user: tuple[int, str], add: bool = True,
                    channel: int = CHANNEL) -> None:
        data = {"user_id": str(user[0]), "channel_id": str(channel), "message_id": str(message_id),
                "guild_id": str(GUILD), "emoji": {"id": None, "name": emoji}, "burst": False, "type": 0}
        if add:
            data["member"] = member_payload(*user)
            self.bot._connection.parse_message_reaction_add(data)
        else:
            self.bot._connection.parse_message_reaction_remove(data)
        await self.settle()

    async def say(self, text: str, *, user: tuple[int, str], mention_bot: bool = False) -> int:
        """A message in the channel (MESSAGE_CREATE); returns its id."""
        data = {"id": str(self.fake.next_id()), "channel_id": str(CHANNEL), "guild_id": str(GUILD),
                "author": user_payload(*user), "member": {k: v for k, v in member_payload(*user).items() if k != "user"},
                "content": text, "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False,
                "mention_everyone": False, "mentions": [BOT_USER] if mention_bot else [], "mention_roles": [],
                "attachments": [], "embeds": [], "pinned": False, "type": 0, "flags": 0, "components": []}
        self.bot._connection.parse_message_create(data)
        await self.settle()
        return int(data["id"])


def _is_view_timer(task: asyncio.Task[Any]) -> bool:
    """discord.py's 15-minute timer of an ephemeral view: runs on, by design."""
    return "timeout_task_impl" in getattr(task.get_coro(), "__qualname__", "")


def select_options(message_or_payload: dict[str, Any], prefix: str) -> tuple[str, ...]:
    """The option values of the message's select menu whose custom_id starts with `prefix`."""
    return tuple(o["value"] for row in message_or_payload.get("components") or []
                 for comp in row.get("components", [])
                 if comp.get("type") == 3 and str(comp.get("custom_id", "")).startswith(prefix)
                 for o in comp.get("options", []))


def buttons(message_or_payload: dict[str, Any]) -> list[str]:
    """custom_ids of every button in a message payload (action rows of components)."""
    out = []
    for row in message_or_payload.get("components") or []:
        for comp in row.get("components", []):
            if comp.get("custom_id"):
                out.append(comp["custom_id"])
    return out


class FakeDiscordServer:
    """Discord's REST API and gateway on a local port, for the real login and connection of
    `bot.adapters.discord.start`: `/users/@me`, the application, `/gateway/bot`, and a gateway
    websocket that says HELLO and answers IDENTIFY with READY (no guilds).

    `point_here(monkeypatch)` sends discord.py here before the server listens, so until `start()`
    every connection is refused, as when Discord cannot be reached. Then `failing` answers that
    many REST calls 503 (an outage at Discord), `refuse_token` answers the login 401, and
    `refuse_intents` closes the gateway with 4014 (a privileged intent the app lacks)."""

    def __init__(self) -> None:
        with socket.socket() as s:  # a free port, closed again: nothing listens there yet
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.failing = 0
        self.failing_gateway_lookups = 0  # answer this many GET /gateway/bot 503 (sharded bots ask)
        self.refuse_token = False
        self.refuse_intents = False
        self.rest: list[str] = []  # "GET /api/v10/users/@me", ... as answered (503s included)
        self.identified: list[dict[str, Any]] = []  # the IDENTIFY payloads' "d"
        self._server: TestServer | None = None

    @property
    def gateway(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def point_here(self, monkeypatch: Any) -> None:
        monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{self.port}/api/v10")
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(self.gateway))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _rest(self, request: web.Request) -> web.Response:
        self.rest.append(f"{request.method} {request.path}")
        tail = request.match_info["tail"]
        if self.failing or (tail == "gateway/bot" and self.failing_gateway_lookups):
            if self.failing:
                self.failing -= 1
            else:
                self.failing_gateway_lookups -= 1
            return _json({"message": "503: Service Unavailable", "code": 0}, 503)
        if tail == "users/@me":
            if self.refuse_token:
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
            return _json(BOT_USER)
        if tail == "oauth2/applications/@me":
            return _json({"id": str(APP_ID), "name": "moodgif", "icon": None, "description": "",
                          "rpc_origins": [], "bot_public": True, "bot_require_code_grant": False,
                          "owner": BOT_USER, "summary": "", "verify_key": "k", "flags": 0})
        if tail == "gateway/bot":
            return _json({"url": self.gateway, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
        return _json({"message": "404: Not Found", "code": 0}, 404)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 45_000}, "s": None, "t": None})
        async for frame in ws:
            msg = json.loads(frame.data)
            if msg["op"] == 1:  # heartbeat
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif msg["op"] == 2:  # identify
                self.identified.append(msg["d"])
                if self.refuse_intents:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                await ws.send_json({"op": 0, "s": 1, "t": "READY", "d": {
                    "v": 10, "user": BOT_USER, "guilds": [], "session_id": "fake-session",
                    "resume_gateway_url": self.gateway, "shard": msg["d"].get("shard") or [0, 1],
                    "application": {"id": str(APP_ID), "flags": 0}}})
        return ws


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py reads JSON only for exactly "application/json" (no charset), as Discord sends
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")
