"""A local aiohttp server posing as Slack: the Web API, response_url webhooks, file uploads.

The real `AsyncWebClient` and bolt's `respond()` talk to it over real HTTP (the Web API base
URL is a setting), and it records every call so a test can assert what Slack was told.
Unknown methods answer `{"ok": false, "error": "unknown_method"}` like Slack does, and a
missing or non-bot token answers `invalid_auth`.

Several workspaces (an OAuth install): `workspaces` maps each team id to its bot token;
`oauth.v2.access` with the code `install-<team>` installs that team, and `auth.test` and
`users.info` answer for the team whose token asks. An admin is a user id (admin in every team)
or "<team>:<user>" (admin of that team only, as the same person can be a plain member elsewhere).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

BOT_USER = "UBOTMOOD"
TEAM = "T0001"


@dataclass
class Call:
    path: str  # "chat.postMessage", "webhook", "upload"
    data: dict[str, Any]
    token: str = ""  # the bearer token, or the webhook's name for response_url calls
    at: float = field(default_factory=time.monotonic)


class FakeSlack:
    def __init__(self, *, admins: tuple[str, ...] = (), workspaces: dict[str, str] | None = None) -> None:
        self.calls: list[Call] = []
        self.admins = set(admins)
        self.workspaces = dict(workspaces or {})  # team id -> its bot token
        self.outside: set[str] = set()  # channels the bot is not a member of (not_in_channel)
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/webhook/{hook}", self._webhook)
        app.router.add_post("/upload/{file_id}", self._upload)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> FakeSlack:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "1") -> str:
        return f"{self.base_url}/webhook/{name}"

    # --- what was called -----------------------------------------------------------------
    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """Wait until `path` was called `count` times in all (listeners run after the ack)."""
        async def enough() -> list[Call]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls_to(path)) >= count)
            return self.calls_to(path)

        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            seen = [c.path for c in self.calls]
            raise AssertionError(f"expected {count} call(s) to {path}; Slack saw {seen}") from None

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    # --- handlers ------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        data: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            data.update(await request.json())
        elif request.can_read_body:
            data.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        await self._record(Call(method, data, token))
        if method == "oauth.v2.access":  # the app's client id and secret, not a bot token
            return web.json_response(self._install(str(data.get("code", ""))))
        if not token.startswith("xoxb-"):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        team = next((t for t, tok in self.workspaces.items() if tok == token), TEAM)
        return web.json_response(self._answer(method, data, team))

    def _install(self, code: str) -> dict[str, Any]:
        team = code.removeprefix("install-")
        if not code.startswith("install-") or team not in self.workspaces:
            return {"ok": False, "error": "invalid_code"}
        return {"ok": True, "app_id": "A0MOOD", "authed_user": {"id": f"U0INSTALL{team}"},
                "scope": "commands,chat:write", "token_type": "bot", "access_token": self.workspaces[team],
                "bot_user_id": BOT_USER, "team": {"id": team, "name": f"Team {team}"},
                "enterprise": None, "is_enterprise_install": False}

    def _answer(self, method: str, data: dict[str, Any], team: str = TEAM) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "moodgif",
                    "team_id": team, "user_id": BOT_USER, "bot_id": "BMOOD"}
        if method == "chat.postMessage" and data.get("channel") not in self.outside:
            ts = f"{1700000000 + next(self._ts)}.000100"
            return {"ok": True, "channel": data.get("channel"), "ts": ts,
                    "message": {"type": "message", "ts": ts, "text": data.get("text", ""),
                                "bot_id": "BMOOD", "blocks": data.get("blocks", [])}}
        if method in ("chat.postEphemeral", "chat.postMessage") and data.get("channel") in self.outside:
            return {"ok": False, "error": "not_in_channel"}
        if method == "chat.delete":
            return {"ok": True, "channel": data.get("channel"), "ts": data.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method == "users.info":
            uid = data.get("user", "")
            admin = uid in self.admins or f"{team}:{uid}" in self.admins
            return {"ok": True, "user": {"id": uid, "name": uid.lower(), "is_admin": admin,
                                         "is_owner": False, "is_primary_owner": False}}
        if method == "files.getUploadURLExternal":
            fid = f"F{next(self._files):06d}"
            return {"ok": True, "upload_url": f"{self.base_url}/upload/{fid}", "file_id": fid}
        if method == "files.completeUploadExternal":
            files = json.loads(data.get("files", "[]")) if isinstance(data.get("files"), str) else data.get("files", [])
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}
        return {"ok": False, "error": "unknown_method"}

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self._record(Call("webhook", body, request.match_info["hook"]))
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        body = await request.read()
        await self._record(Call("upload", {"file_id": request.match_info["file_id"], "bytes": len(body)}))
        return web.Response(text="OK - 1")
