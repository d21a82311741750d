"""The Slack adapter: slack-bolt's AsyncApp translating between Slack and `bot.core.BotCore`.

Only translation lives here: Slack payloads become `Actor`s and calls on the core; the
core's `Reply`s become Block Kit messages (`bot.adapters.slack_blocks`). Ranking, intent and
feedback are the core's.

Two transports, picked by `settings.slack.socket_mode`:
- HTTP (default): `mount()` adds `POST /slack/events` (every slash command, button click and
  event; signatures checked by bolt) to the one aiohttp application, and, with OAuth
  credentials, `GET /slack/install` and `GET /slack/oauth_redirect`.
- Socket Mode: `start_socket_mode()` opens the websocket with the app-level token; one
  workspace, with SLACK_BOT_TOKEN (no HTTP routes, so no OAuth installs).

Which one the credentials turn on, and whether Slack accepts the bot token, is
`bot.adapters.slack_setup`'s: `mount()` logs it in one line at startup.

The listeners themselves live in `bot.adapters.slack_listeners` (bolt's starter-template
layout: plain async functions per kind, wired by its `register`); this module builds the
app and its transports.

Every listener acks first (Slack gives 3 s) and then works; the core runs heavy work in
threads, so the ack is never stuck behind a retrain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack_listeners import register as register_listeners
from bot.adapters.slack_listeners.context import (
    PLATFORM,
    SlackContext,
    SlackImages,
    action_actor,
    command_actor,
    event_actor,
    message_ref,
    reaction_vote,
    seen_before,
    strip_mentions,
)
from bot.adapters.slack_setup import SlackSetup, TokenCheck, padded_secrets, slack_setup
from bot.health import get_health
from scorer.settings import Settings

if TYPE_CHECKING:
    from bot.core import BotCore

log = logging.getLogger(__name__)

# Re-exported: tests and callers import these from here (they live in slack_listeners.context).
__all__ = [
    "PLATFORM",
    "SlackContext",
    "SlackImages",
    "SocketModeRun",
    "action_actor",
    "build_app",
    "command_actor",
    "event_actor",
    "message_ref",
    "mount",
    "reaction_vote",
    "register",
    "start_socket_mode",
    "strip_mentions",
]

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

# The bot scopes the app needs; deploy/slack-manifest.yml lists the same ones.
BOT_SCOPES = [
    "app_mentions:read",  # @moodgif ugh
    "channels:history",  # message events in opted-in public channels
    "groups:history",  # ... and in opted-in private channels the bot was invited to
    "chat:write",  # the public post and ephemeral offers
    "chat:write.public",  # post in public channels the bot was not invited to
    "commands",  # /gif, /gif-admin
    "files:write",  # upload a GIF when it has no public URL
    "reactions:read",  # 👍 / 👎 reactions on posts
    "users:read",  # is the /gif-admin caller a workspace admin?
]


def register(app: AsyncApp, core: BotCore, settings: Settings) -> SlackContext:
    """Wire the listeners (`bot.adapters.slack_listeners`, bolt starter-template style) onto `app`."""
    ctx = SlackContext.create(core, settings)
    register_listeners(app, ctx)
    return ctx


# ---------------------------------------------------------------------------------------
# building the app


class _NoBodies(logging.Filter):
    """bolt logs the whole body of every request with a bad signature: anyone on the
    internet could then write megabytes (and fake log lines) into our logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Invalid request signature" in message or len(message) > 2000:
            record.msg = message.split(" (", 1)[0][:200].replace("\n", " ") + " (request body not logged)"
            record.args = None
        return True


for _name in ("slack_bolt.AsyncRequestVerification", "slack_bolt.RequestVerification"):
    logging.getLogger(_name).addFilter(_NoBodies())


class _NoEnvTokenNote(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from os.environ even when it is given a client, and then
    warns at every start that the env token is unused. We always pass the client (carrying the
    token from our settings, or none under OAuth), so that one note is noise; every other bolt
    warning still passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_NoEnvTokenNote())


@contextlib.contextmanager
def _bolt_sees_no_oauth_env(unless: bool) -> Iterator[None]:
    """bolt builds its own OAuth flow (a file-based installation store, the bot token ignored)
    whenever SLACK_CLIENT_ID and SLACK_CLIENT_SECRET exist in the environment, even empty ones
    left in an env file; moodgif's settings decide whether Slack runs with OAuth, so bolt does
    not see them while it is built for one bot token."""
    hidden = {} if unless else {k: os.environ.pop(k) for k in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
                                if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)


def async_db_url(url: str) -> str:
    """The async driver URL of the same database: slack_sdk's OAuth stores need an AsyncEngine."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:"):]
    for prefix in ("postgresql+psycopg:", "postgresql+psycopg2:", "postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+psycopg:" + url[len(prefix):]
    return url


def _oauth_settings(settings: Settings) -> Any:
    from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.adapters.slack_tokens import (
        EncryptedInstallationStore,
        PurgingOAuthStateStore,
        TokenCipher,
    )

    engine = create_async_engine(async_db_url(settings.db_url))
    # Every workspace's bot token, encrypted with MOODGIF_SECRET_KEY (bot/adapters/slack_tokens.py).
    installations = EncryptedInstallationStore(TokenCipher(settings.slack.secret_key),
                                               client_id=settings.slack.client_id, engine=engine)
    states = PurgingOAuthStateStore(expiration_seconds=600, engine=engine)
    return AsyncOAuthSettings(
        client_id=settings.slack.client_id,
        client_secret=settings.slack.client_secret,
        scopes=BOT_SCOPES,
        installation_store=installations,
        state_store=states,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
    )


async def create_oauth_tables(app: AsyncApp) -> None:
    """Create slack_sdk's installation and state tables (idempotent) before serving."""
    flow = app.oauth_flow
    if flow is None:
        return
    await flow.settings.installation_store.create_tables()  # type: ignore[attr-defined]
    await flow.settings.state_store.create_tables()  # type: ignore[attr-defined]
    seal = getattr(flow.settings.installation_store, "seal_existing", None)
    if seal is not None:
        await seal()


def build_app(core: BotCore, settings: Settings, *, socket_mode: bool | None = None,
              token_check: TokenCheck | None = None) -> AsyncApp | None:
    """The bolt app for these settings, or None when Slack is not configured for that mode.

    With one bot token (no OAuth), `token_check` (a new one if not given) answers for a token
    Slack refused, before bolt's authorization."""
    setup = slack_setup(settings.slack, socket_mode=socket_mode)
    if not setup.on:
        return None
    oauth = setup.mode == "oauth"
    client = AsyncWebClient(
        token=None if oauth else settings.slack.bot_token or None, base_url=settings.slack.api_url
    )
    with _bolt_sees_no_oauth_env(unless=oauth):
        app = AsyncApp(
            client=client,
            signing_secret=settings.slack.signing_secret or "",
            oauth_settings=_oauth_settings(settings) if oauth else None,
            before_authorize=None if oauth else (token_check or TokenCheck()).middleware(),
            # We pass every credential explicitly; never let bolt fall back to os.environ.
            process_before_response=False,
            name="moodgif-slack",  # bolt configures a logger of this name; keep it off our "moodgif" tree
        )
    register(app, core, settings)
    return app


ACK_FIRST = True  # HTTP slash commands: 200 at once, the work after (bench_slack_ack toggles it)
ACK_FIRST_WORKERS = 4  # slash commands worked on at once after their ack


def _form(body: str) -> dict[str, list[str]]:
    """A form-encoded body's fields (a JSON body, an event, has none)."""
    from urllib.parse import parse_qs

    try:
        return parse_qs(body, max_num_fields=64)
    except ValueError:
        return {}


def trigger_id(form: dict[str, list[str]]) -> str:
    """The id Slack gives one slash command or one click (`trigger_id`), "" if none: a
    request sent again within the signature's 5 minutes carries the same one."""
    if "payload" in form:
        try:
            payload = json.loads(form["payload"][0])
        except ValueError:
            return ""
        return str(payload.get("trigger_id") or "") if isinstance(payload, dict) else ""
    return (form.get("trigger_id") or [""])[0]


def _is_slash_command(form: dict[str, list[str]]) -> bool:
    """A slash command's form body (``command=/gif&...``), not an interaction payload."""
    return "command" in form and "response_url" in form and "payload" not in form


class _AckFirst:
    """POST /slack/events with slash commands acked before bolt runs them.

    Acked slash commands wait in a queue for a few workers: a burst then costs the event loop
    a few coroutines at a time, so the next ack is never queued behind 200 half-done ones.
    """

    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        from slack_sdk.signature import SignatureVerifier

        self.app = app
        self.verifier = SignatureVerifier(signing_secret)
        self.queue: asyncio.Queue[Any] | None = None
        self.workers: list[asyncio.Task[Any]] = []
        self.seen_triggers: OrderedDict[str, None] = OrderedDict()

    async def _worker(self) -> None:
        assert self.queue is not None
        while True:
            bolt_request = await self.queue.get()
            try:
                await self.app.async_dispatch(bolt_request)
            except Exception:
                log.exception("slack: a slash command failed after its ack")
            finally:
                self.queue.task_done()

    def _signed(self, request: web.Request, body: str) -> bool:
        """Slack's signature, checked before any parsing: bolt parses the body first, and a
        forged one (bad JSON, a list, a timestamp that is no number) raised a 500 with a
        traceback per request."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return False
        return self.verifier.is_valid(body=body, timestamp=timestamp,
                                      signature=request.headers.get("X-Slack-Signature", ""))

    async def events(self, request: web.Request) -> web.StreamResponse:
        try:
            body = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            body = None
        if body is None or not self._signed(request, body):
            log.info("slack: refused a request to %s without a valid signature (HTTP 401)", EVENTS_PATH)
            return web.Response(status=401, text="invalid request signature\n")
        form = _form(body)
        if seen_before(self.seen_triggers, trigger_id(form)):
            # a captured click sent again could restore a vote its owner changed; Slack itself
            # never resends a command or a click, so the copy is answered and dropped
            log.info("slack: a command or click seen before (same trigger_id); ignored")
            return web.Response(status=200)
        try:
            return await self._dispatch(request, form)
        except (ValueError, AttributeError, TypeError) as exc:  # signed, yet not a body bolt can read
            log.warning("slack: a signed request bolt could not read (%s): HTTP 400", type(exc).__name__)
            return web.Response(status=400, text="malformed request body\n")

    async def _dispatch(self, request: web.Request, form: dict[str, list[str]]) -> web.StreamResponse:
        if ACK_FIRST and _is_slash_command(form):
            # Ack first: the 200 goes out before bolt, intent parsing and ranking run (a
            # burst of 200 /gif queued each ack behind the others': p99 359 ms). The
            # signature is checked here; bolt checks it again and runs the command later
            # (its own ack() goes nowhere; the preview goes to response_url as before).
            if self.queue is None:
                self.queue = asyncio.Queue()
                loop = asyncio.get_running_loop()
                self.workers.extend(loop.create_task(self._worker(), name=f"slack-command-{i}")
                                    for i in range(ACK_FIRST_WORKERS))
            self.queue.put_nowait(await to_bolt_request(request))
            return web.Response(status=200)
        return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

    async def stop(self, _: web.Application) -> None:
        for task in self.workers:
            task.cancel()


def _mount_oauth(web_app: web.Application, app: AsyncApp) -> None:
    """GET /slack/install and /slack/oauth_redirect, and the OAuth tables made at startup."""
    flow = app.oauth_flow
    if flow is None:
        return

    async def install(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def redirect(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    web_app.router.add_get(INSTALL_PATH, install)
    web_app.router.add_get(REDIRECT_PATH, redirect)

    async def _tables(_: web.Application) -> None:
        await create_oauth_tables(app)

    web_app.on_startup.append(_tables)


def events_url(settings: Settings) -> str:
    """Where Slack sends events: MOODGIF_PUBLIC_URL (with or without a trailing slash) + the path."""
    return (settings.http.public_url.rstrip("/") or "<public url>") + EVENTS_PATH


def announce(settings: Settings) -> SlackSetup:
    """Log Slack's state in one line (off: why; on: how), warn of padded secrets, and tell
    /readyz why a half-configured Slack is off."""
    setup = slack_setup(settings.slack)
    for name in padded_secrets(settings.slack):
        log.warning("Slack: %s starts or ends with a space or line break (pasted along with it?): "
                    "Slack refuses it as it is; remove it", name)
    if setup.broken:
        log.error("Slack: off: %s", setup.detail)
        get_health().set_component("slack", False, f"off: {setup.detail}")
    elif not setup.on:
        log.info("Slack: off (no Slack credentials set)")
    elif setup.mode == "socket":
        log.info("Slack: on, Socket Mode (%s); connecting in the background", setup.detail)
        get_health().set_component("slack", False, "Socket Mode: connecting to Slack")
    else:
        log.info("Slack: on, HTTP events at %s (%s)", events_url(settings), setup.detail)
    return setup


def mount(web_app: web.Application, core: BotCore, settings: Settings) -> AsyncApp | None:
    """Log Slack's state (`announce`) and add its HTTP routes to the one aiohttp app; None
    when Slack HTTP is not configured.

    In Socket Mode nothing is HTTP: events come over the socket, and OAuth installs (which need
    `/slack/oauth_redirect`) are not served.
    """
    setup = announce(settings)
    if setup.mode not in ("http", "oauth"):
        return None
    check = TokenCheck()
    app = build_app(core, settings, socket_mode=False, token_check=check)
    assert app is not None  # announce said HTTP is on

    handler = _AckFirst(app, settings.slack.signing_secret)
    web_app.on_cleanup.append(handler.stop)
    web_app.router.add_post(EVENTS_PATH, handler.events)
    _mount_oauth(web_app, app)
    get_health().set_component("slack", True, f"HTTP events at {EVENTS_PATH}")
    if setup.mode == "http":  # a refused token shows in /readyz before anyone types /gif

        async def _check_token(_: web.Application) -> None:
            check.start(app.client)

        web_app.on_startup.append(_check_token)
        web_app.on_cleanup.append(check.stop)
    return app


@dataclass
class SocketModeRun:
    """A Socket Mode connection and its background token check: `close()` ends both."""

    handler: Any
    check: TokenCheck

    async def close(self) -> None:
        await self.check.stop()
        await self.handler.close_async()


async def start_socket_mode(core: BotCore, settings: Settings) -> SocketModeRun | None:
    """Connect over Socket Mode (SLACK_APP_TOKEN); None when it is off or not configured."""
    if not settings.slack.socket_mode:
        return None
    check = TokenCheck()
    app = build_app(core, settings, socket_mode=True, token_check=check)
    if app is None:  # `announce` (at mount) said why
        return None
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(app, settings.slack.app_token)
    try:
        await handler.connect_async()
    except Exception as exc:
        get_health().set_component("slack", False, f"Socket Mode: {type(exc).__name__}")
        raise
    get_health().set_component("slack", True, "Socket Mode connected")
    log.info("Slack: connected in Socket Mode")
    # In the background: a stop that comes while Slack is slow to answer must find a handler
    # to close, not a cancelled start that leaves the websocket open.
    check.start(app.client)
    return SocketModeRun(handler, check)
