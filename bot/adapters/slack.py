"""The Slack adapter: slack-bolt's AsyncApp translating between Slack and `bot.core.BotCore`.

Only translation lives here: Slack payloads become `Actor`s and calls on the core; the
core's `Reply`s become Block Kit messages (`bot.adapters.slack_blocks`). Ranking, intent and
feedback are the core's.

Two transports, picked by `settings.slack_socket_mode`:
- HTTP (default): `mount()` adds `POST /slack/events` (every slash command, button click and
  event; signatures checked by bolt) to the one aiohttp application, and, with OAuth
  credentials, `GET /slack/install` and `GET /slack/oauth_redirect`.
- Socket Mode: `start_socket_mode()` opens the websocket with the app-level token.

Every listener acks first (Slack gives 3 s) and then works; the core runs heavy work in
threads, so the ack is never stuck behind a retrain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.events import Actor, GifCard, Reply, reply_text
from bot.health import get_health
from scorer.settings import Settings

if TYPE_CHECKING:
    from bot.core import BotCore

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

# The bot scopes the app needs; deploy/slack-manifest.yml lists the same ones.
BOT_SCOPES = [
    "app_mentions:read",  # @moodgif ugh
    "channels:history",  # message events in opted-in public channels
    "chat:write",  # the public post and ephemeral offers
    "chat:write.public",  # post in public channels the bot was not invited to
    "commands",  # /gif, /gif-admin
    "files:write",  # upload a GIF when it has no public URL
    "reactions:read",  # 👍 / 👎 reactions on posts
    "users:read",  # is the /gif-admin caller a workspace admin?
]

THUMBS_UP = {"+1", "thumbsup"}
THUMBS_DOWN = {"-1", "thumbsdown"}
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def message_ref(channel: str, ts: str) -> str:
    """The id the core keeps for a public post: a Slack ts is unique within its channel only."""
    return f"{channel}:{ts}"


def reaction_vote(reaction: str) -> bool | None:
    """True for 👍, False for 👎 (any skin tone), None for anything else."""
    name = reaction.split("::", 1)[0]
    if name in THUMBS_UP:
        return True
    if name in THUMBS_DOWN:
        return False
    return None


def strip_mentions(text: str) -> str:
    return _MENTION.sub(" ", text or "").strip()


def _workspace(body: dict[str, Any]) -> str:
    team = body.get("team")
    if isinstance(team, dict) and team.get("id"):
        return str(team["id"])
    user = body.get("user")
    return str(
        body.get("team_id")
        or (user.get("team_id") if isinstance(user, dict) else None)
        or body.get("enterprise_id")
        or ""
    )


def command_actor(command: dict[str, Any], *, is_admin: bool = False) -> Actor:
    return Actor(
        platform=PLATFORM,
        workspace=str(command.get("team_id") or command.get("enterprise_id") or ""),
        channel=str(command.get("channel_id") or ""),
        user_id=str(command.get("user_id") or ""),
        display_name=str(command.get("user_name") or ""),
        is_admin=is_admin,
    )


def action_actor(body: dict[str, Any]) -> Actor:
    user = body.get("user") or {}
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    return Actor(
        platform=PLATFORM,
        workspace=_workspace(body),
        channel=str(channel or ""),
        user_id=str(user.get("id") or ""),
        display_name=str(user.get("username") or user.get("name") or ""),
    )


def event_actor(body: dict[str, Any], user: str, channel: str) -> Actor:
    return Actor(platform=PLATFORM, workspace=_workspace(body), channel=channel, user_id=user)


class SlackImages:
    """Public references for GIF images: Slack fetches image blocks itself, so they must be.

    The GIF's own source URL when it has one; else the moodgif HTTP server's `/gifs/<sha>.gif`
    under `public_url`; else the file is uploaded once per workspace (files_upload_v2) and
    referenced as a `slack_file`.
    """

    def __init__(self, settings: Settings) -> None:
        self.public_url = settings.public_url.rstrip("/")
        self._uploaded: dict[tuple[str, str], str] = {}

    async def ref(self, card: GifCard, client: AsyncWebClient, workspace: str) -> blocks.ImageRef:
        if card.source_url and card.source_url.startswith(("https://", "http://")):
            return {"image_url": card.source_url}
        if self.public_url:
            return {"image_url": f"{self.public_url}/gifs/{card.sha256}.gif"}
        key = (workspace, card.sha256)
        if key not in self._uploaded:
            result = await client.files_upload_v2(
                file=str(card.local_path), filename=f"{card.sha256[:16]}.gif",
                title=blocks.esc(card.alt_text)[:200]
            )
            self._uploaded[key] = result["files"][0]["id"] if "files" in result else result["file"]["id"]
        return {"slack_file": {"id": self._uploaded[key]}}

    async def refs(self, reply: Reply, client: AsyncWebClient, workspace: str) -> dict[str, blocks.ImageRef]:
        return {c.sha256: await self.ref(c, client, workspace) for c in blocks.cards_of(reply)}


Listener = Callable[..., Awaitable[None]]


def _guarded(name: str, fn: Listener) -> Listener:
    """Log a failing listener in one line (bolt's own handler would log the payload too)."""

    async def listener(**kwargs: Any) -> None:
        try:
            await fn(**kwargs)
        except Exception as exc:
            log.exception("slack %s failed: %s", name, type(exc).__name__)
            respond = kwargs.get("respond")
            if respond is not None:
                # The response_url may be gone too; the log has the failure.
                with contextlib.suppress(Exception):
                    await respond(
                        response_type="ephemeral",
                        replace_original=False,
                        text="Sorry, something went wrong on my side. Please try again.",
                    )

    # bolt passes listener arguments by name, so keep the original signature visible.
    listener.__wrapped__ = fn  # type: ignore[attr-defined]
    listener.__name__ = fn.__name__
    return listener


def register(app: AsyncApp, core: BotCore, settings: Settings) -> None:
    """Wire the listeners (plain async functions, bolt starter-template style) onto `app`."""
    images = SlackImages(settings)
    admin_ids = set(settings.slack_admin_user_ids)

    async def private(reply: Reply, client: AsyncWebClient, actor: Actor, **kw: Any) -> dict[str, Any]:
        refs = await images.refs(reply, client, actor.workspace)
        return blocks.render(reply, refs, **kw)

    async def answer_click(reply: Reply, respond: Any, client: AsyncWebClient, actor: Actor) -> None:
        """Show the core's answer to a click on a private message (preview, choices, offer)."""
        if reply.kind == "cancelled":
            await respond(delete_original=True)
        elif reply.preview is not None or reply.kind in ("help", "did_you_mean", "poll"):
            await respond(replace_original=True, **await private(reply, client, actor))
        elif reply.kind == "expired":
            await respond(replace_original=True, **blocks.render(reply, {}))
        else:  # forbidden, exhausted, cooldown, error...: a note, the preview stays
            await respond(response_type="ephemeral", replace_original=False, **blocks.render(reply, {}))

    # --- /gif and what it leads to ------------------------------------------------------
    async def gif_command(ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient) -> None:
        await ack()
        actor = command_actor(command)
        reply = await core.request(actor, command.get("text") or "")
        await respond(response_type="ephemeral", **await private(reply, client, actor))
        if reply.kind == "preview" and reply.preview is not None:
            # Now and then a request also gets a "which is more X?" poll (the core decides).
            poll = await core.maybe_poll(actor, reply.preview.emotion)
            if poll is not None:
                await respond(response_type="ephemeral", replace_original=False,
                              **await private(poll, client, actor))

    async def choose(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                     client: AsyncWebClient) -> None:
        await ack()
        actor = action_actor(body)
        reply = await core.request(actor, action.get("value") or "")
        await answer_click(reply, respond, client, actor)

    async def shuffle(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                      client: AsyncWebClient) -> None:
        await ack()
        actor = action_actor(body)
        reply = await core.shuffle(actor, action["value"])
        await answer_click(reply, respond, client, actor)

    async def cancel(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                     client: AsyncWebClient) -> None:
        await ack()
        actor = action_actor(body)
        reply = await core.cancel(actor, action["value"])
        await answer_click(reply, respond, client, actor)

    async def send(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                   client: AsyncWebClient) -> None:
        await ack()
        actor = action_actor(body)
        session_id, sha = blocks.parse_send_value(action["value"])
        reply = await core.send(actor, session_id, sha)
        if reply.kind != "posted" or reply.post is None:
            await answer_click(reply, respond, client, actor)
            return
        post = reply.post
        ref = await images.ref(post.card, client, actor.workspace)
        try:
            result = await client.chat_postMessage(channel=actor.channel, **blocks.post_message(post, ref))
        except SlackApiError as exc:
            error = exc.response.get("error", "error") if exc.response is not None else "error"
            log.warning("slack chat.postMessage failed in %s: %s", actor.channel, error)
            await respond(
                response_type="ephemeral",
                replace_original=False,
                text=f"I couldn't post in this channel ({blocks.esc(error)}). Invite me with `/invite @moodgif`.",
            )
            return
        await core.attach_message(post.post_id, message_ref(str(result["channel"]), str(result["ts"])))
        await respond(delete_original=True)

    async def dismiss(ack: Any, respond: Any) -> None:
        await ack()
        await respond(delete_original=True)

    # --- feedback on the public post ----------------------------------------------------
    async def vote(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        actor = action_actor(body)
        try:
            post_id = int(action["value"])
        except (KeyError, ValueError):
            log.info("slack vote with a bad post id ignored")
            return
        reply = await core.vote(actor, post_id=post_id, up=action["action_id"] == blocks.VOTE_UP)
        if reply.kind != "ack" or reply.text:
            await respond(response_type="ephemeral", replace_original=False, **blocks.render(reply, {}))

    async def poll_answer(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                          client: AsyncWebClient) -> None:
        await ack()
        actor = action_actor(body)
        answer = action["action_id"].split(":", 1)[1]
        reply = await core.answer_poll(actor, action["value"], answer)
        if reply.kind == "ack":
            await respond(replace_original=True, **blocks.text_message(reply.text or "Thanks for voting!"))
        else:
            await answer_click(reply, respond, client, actor)

    seen_events: OrderedDict[str, None] = OrderedDict()

    def replayed(body: dict[str, Any]) -> bool:
        """Slack gives each event one id; a request replayed inside the signature's 5-minute
        window carries the same one (it could bring back a vote its owner withdrew)."""
        event_id = str(body.get("event_id") or "")
        if not event_id:
            return False
        if event_id in seen_events:
            log.info("slack: event %s seen before; ignored", event_id[:40])
            return True
        seen_events[event_id] = None
        while len(seen_events) > 20_000:
            seen_events.popitem(last=False)
        return False

    async def reaction(event: dict[str, Any], body: dict[str, Any], added: bool) -> None:
        if replayed(body):
            return
        item = event.get("item") or {}
        up = reaction_vote(event.get("reaction", ""))
        if item.get("type") != "message" or up is None or not event.get("user"):
            return
        actor = event_actor(body, str(event["user"]), str(item.get("channel", "")))
        ref = message_ref(actor.channel, str(item.get("ts", "")))
        await core.vote(actor, message_ref=ref, up=up if added else None, source="reaction")

    async def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> None:
        await reaction(event, body, True)

    async def reaction_removed(event: dict[str, Any], body: dict[str, Any]) -> None:
        await reaction(event, body, False)

    # --- watching messages --------------------------------------------------------------
    async def app_mention(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        if not event.get("user") or event.get("bot_id"):
            return
        actor = event_actor(body, str(event["user"]), str(event.get("channel", "")))
        reply = await core.request(actor, strip_mentions(event.get("text", "")))
        await client.chat_postEphemeral(
            channel=actor.channel, user=actor.user_id, thread_ts=event.get("thread_ts"),
            **await private(reply, client, actor, dismissible=True),
        )

    async def message(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient,
                      context: Any) -> None:
        # Plain human messages only; a mention of the bot is app_mention's.
        if event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return
        text = event.get("text") or ""
        bot_user = getattr(context, "bot_user_id", None) or (context or {}).get("bot_user_id")
        if bot_user and f"<@{bot_user}" in text:
            return
        actor = event_actor(body, str(event["user"]), str(event.get("channel", "")))
        offer = await core.watch(actor, text)
        if offer is None:
            return
        await client.chat_postEphemeral(
            channel=actor.channel, user=actor.user_id, thread_ts=event.get("thread_ts"),
            **await private(offer, client, actor, dismissible=True),
        )

    # --- /gif-admin ---------------------------------------------------------------------
    async def is_workspace_admin(client: AsyncWebClient, user_id: str) -> bool:
        if user_id in admin_ids:
            return True
        try:
            info = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("slack users.info failed: %s", exc.response.get("error") if exc.response else exc)
            return False
        user = info.get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    async def admin_command(ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient) -> None:
        await ack()
        actor = command_actor(command, is_admin=await is_workspace_admin(client, str(command.get("user_id"))))
        text = command.get("text") or ""
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        reply = await core.admin(actor, words[0] if words else "help", words[1:])
        await respond(response_type="ephemeral", text=blocks.esc(reply_text(reply)))

    g = _guarded
    app.command("/gif")(g("/gif", gif_command))
    app.command("/gif-admin")(g("/gif-admin", admin_command))
    app.action(blocks.SEND)(g("send", send))
    app.action(blocks.SHUFFLE)(g("shuffle", shuffle))
    app.action(blocks.CANCEL)(g("cancel", cancel))
    app.action(blocks.DISMISS)(g("dismiss", dismiss))
    app.action(re.compile(rf"^{blocks.CHOOSE}:"))(g("choose", choose))
    app.action(re.compile(rf"^({blocks.VOTE_UP}|{blocks.VOTE_DOWN})$"))(g("vote", vote))
    app.action(re.compile(rf"^{blocks.POLL}:(left|right|neither)$"))(g("poll", poll_answer))
    app.event("reaction_added")(g("reaction_added", reaction_added))
    app.event("reaction_removed")(g("reaction_removed", reaction_removed))
    app.event("app_mention")(g("app_mention", app_mention))
    app.event("message")(g("message", message))

    @app.error
    async def on_error(error: Exception) -> None:
        log.warning("slack request failed: %s", type(error).__name__)


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


def oauth_enabled(settings: Settings) -> bool:
    return bool(settings.slack_client_id and settings.slack_client_secret)


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
    installations = EncryptedInstallationStore(TokenCipher(settings.secret_key),
                                               client_id=settings.slack_client_id, engine=engine)
    states = PurgingOAuthStateStore(expiration_seconds=600, engine=engine)
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
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


def build_app(core: BotCore, settings: Settings, *, socket_mode: bool | None = None) -> AsyncApp | None:
    """The bolt app for these settings, or None when Slack is not configured for that mode."""
    socket = settings.slack_socket_mode if socket_mode is None else socket_mode
    oauth = oauth_enabled(settings)
    if socket:
        if not (settings.slack_app_token and settings.slack_bot_token):
            return None
    elif not settings.slack_signing_secret or not (settings.slack_bot_token or oauth):
        return None
    client = AsyncWebClient(
        token=None if oauth else settings.slack_bot_token or None, base_url=settings.slack_api_url
    )
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        oauth_settings=_oauth_settings(settings) if oauth and not socket else None,
        # We pass every credential explicitly; never let bolt fall back to os.environ.
        process_before_response=False,
        name="moodgif-slack",  # bolt configures a logger of this name; keep it off our "moodgif" tree
    )
    register(app, core, settings)
    return app


ACK_FIRST = True  # HTTP slash commands: 200 at once, the work after (bench_slack_ack toggles it)
ACK_FIRST_WORKERS = 4  # slash commands worked on at once after their ack


def _is_slash_command(body: str) -> bool:
    """A slash command's form body (``command=/gif&...``), not an interaction payload."""
    if "payload=" in body[:16]:
        return False
    from urllib.parse import parse_qs

    form = parse_qs(body, max_num_fields=64)
    return "command" in form and "response_url" in form and "payload" not in form


def mount(web_app: web.Application, core: BotCore, settings: Settings) -> AsyncApp | None:
    """Add Slack's HTTP routes to the one aiohttp app; None when Slack HTTP is not configured.

    In Socket Mode only the OAuth routes (if any) are HTTP; events come over the socket.
    """
    if settings.slack_socket_mode:
        return None
    if oauth_enabled(settings) and not settings.secret_key:
        log.error("Slack: multi-workspace OAuth is OFF: set MOODGIF_SECRET_KEY (`moodgif config "
                  "secret-key` prints one); it encrypts the workspaces' bot tokens in the database")
        get_health().set_component("slack", False, "MOODGIF_SECRET_KEY is not set")
        return None
    app = build_app(core, settings, socket_mode=False)
    if app is None:
        if settings.slack_bot_token and not settings.slack_signing_secret:
            log.warning("Slack: SLACK_SIGNING_SECRET is not set, so Slack HTTP events are off")
        return None

    from slack_sdk.signature import SignatureVerifier

    verifier = SignatureVerifier(settings.slack_signing_secret)
    # Acked slash commands wait here for a few workers: a burst then costs the event loop a
    # few coroutines at a time, so the next ack is never queued behind 200 half-done ones.
    queue: asyncio.Queue[Any] | None = None
    workers: list[asyncio.Task[Any]] = []

    async def worker() -> None:
        assert queue is not None
        while True:
            bolt_request = await queue.get()
            try:
                await app.async_dispatch(bolt_request)
            except Exception:
                log.exception("slack: a slash command failed after its ack")
            finally:
                queue.task_done()

    async def events(request: web.Request) -> web.StreamResponse:
        nonlocal queue
        body = await request.text()
        if ACK_FIRST and _is_slash_command(body) and verifier.is_valid(
                body=body, timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
                signature=request.headers.get("X-Slack-Signature", "")):
            # Ack first: the 200 goes out before bolt, intent parsing and ranking run (a
            # burst of 200 /gif queued each ack behind the others': p99 359 ms). The
            # signature is checked here; bolt checks it again and runs the command later
            # (its own ack() goes nowhere; the preview goes to response_url as before).
            if queue is None:
                queue = asyncio.Queue()
                loop = asyncio.get_running_loop()
                workers.extend(loop.create_task(worker(), name=f"slack-command-{i}")
                               for i in range(ACK_FIRST_WORKERS))
            queue.put_nowait(await to_bolt_request(request))
            return web.Response(status=200)
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def _stop_workers(_: web.Application) -> None:
        for task in workers:
            task.cancel()

    web_app.on_cleanup.append(_stop_workers)

    web_app.router.add_post(EVENTS_PATH, events)
    flow = app.oauth_flow
    if flow is not None:
        async def install(request: web.Request) -> web.StreamResponse:
            return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

        async def redirect(request: web.Request) -> web.StreamResponse:
            return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

        web_app.router.add_get(INSTALL_PATH, install)
        web_app.router.add_get(REDIRECT_PATH, redirect)

        async def _tables(_: web.Application) -> None:
            await create_oauth_tables(app)

        web_app.on_startup.append(_tables)
    log.info("Slack: HTTP events at %s%s", settings.public_url or "<public url>", EVENTS_PATH)
    get_health().set_component("slack", True, f"HTTP events at {EVENTS_PATH}")
    return app


async def start_socket_mode(core: BotCore, settings: Settings) -> Any | None:
    """Connect over Socket Mode (SLACK_APP_TOKEN); returns the handler (`close_async()` to stop)."""
    if not settings.slack_socket_mode:
        return None
    app = build_app(core, settings, socket_mode=True)
    if app is None:
        log.warning("Slack: Socket Mode needs SLACK_APP_TOKEN and SLACK_BOT_TOKEN; Slack is off")
        return None
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(app, settings.slack_app_token)
    try:
        await handler.connect_async()
    except Exception as exc:
        get_health().set_component("slack", False, f"Socket Mode: {type(exc).__name__}")
        raise
    get_health().set_component("slack", True, "Socket Mode connected")
    log.info("Slack: connected in Socket Mode")
    return handler
