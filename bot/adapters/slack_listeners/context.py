"""What every Slack listener shares: payload -> `Actor` helpers, GIF image references, and
`SlackContext`, the one object a listener gets besides bolt's own arguments (no closures)."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.events import Actor, GifCard, Reply, gif_url
from scorer.settings import Settings

if TYPE_CHECKING:
    from bot.core import BotCore

log = logging.getLogger("bot.adapters.slack")

PLATFORM = "slack"
THUMBS_UP = {"+1", "thumbsup"}
THUMBS_DOWN = {"-1", "thumbsdown"}
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
SEEN_EVENTS_MAX = 20_000  # event ids remembered against replays (the signature allows 5 minutes)


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

    A provider's GIF (GIPHY) from its own CDN, as its terms ask; else the copy moodgif checked,
    at `/gifs/<sha>.gif` under `public_url` (a source URL's host could serve other bytes
    later, past the type, size and rating checks); else the GIF's source URL; else the file
    is uploaded once per workspace (files_upload_v2) and referenced as a `slack_file`.
    """

    def __init__(self, settings: Settings) -> None:
        self.public_url = settings.http.public_url.rstrip("/")
        self._uploaded: dict[tuple[str, str], str] = {}

    async def ref(self, card: GifCard, client: AsyncWebClient, workspace: str) -> blocks.ImageRef:
        from_source = bool(card.source_url) and card.source_url.startswith(("https://", "http://"))
        if from_source and card.credit:
            return {"image_url": card.source_url}
        if self.public_url:
            return {"image_url": gif_url(card.sha256, self.public_url)}
        if from_source:
            return {"image_url": card.source_url}
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


def seen_before(memory: OrderedDict[str, None], key: str) -> bool:
    """Whether `key` (an event id, a trigger id) came before; remembers it, the newest
    `SEEN_EVENTS_MAX` only. An empty key is never seen."""
    if not key:
        return False
    if key in memory:
        return True
    memory[key] = None
    while len(memory) > SEEN_EVENTS_MAX:
        memory.popitem(last=False)
    return False


@dataclass
class SlackContext:
    """The bot core and the adapter's own state, handed explicitly to every listener."""

    core: BotCore
    images: SlackImages
    admin_ids: set[str] = field(default_factory=set)
    seen_events: OrderedDict[str, None] = field(default_factory=OrderedDict)

    @classmethod
    def create(cls, core: BotCore, settings: Settings) -> SlackContext:
        return cls(core=core, images=SlackImages(settings), admin_ids=set(settings.slack.admin_user_ids))

    async def private(self, reply: Reply, client: AsyncWebClient, actor: Actor, **kw: Any) -> dict[str, Any]:
        """A reply as a private Block Kit message, its GIFs given public references."""
        refs = await self.images.refs(reply, client, actor.workspace)
        return blocks.render(reply, refs, **kw)

    async def answer_click(self, reply: Reply, respond: Any, client: AsyncWebClient, actor: Actor) -> None:
        """Show the core's answer to a click on a private message (preview, choices, offer)."""
        if reply.kind == "cancelled":
            await respond(delete_original=True)
        elif reply.preview is not None or reply.kind in ("help", "did_you_mean", "poll"):
            await respond(replace_original=True, **await self.private(reply, client, actor))
        elif reply.kind == "expired":
            await respond(replace_original=True, **blocks.render(reply, {}))
        else:  # forbidden, exhausted, cooldown, error...: a note, the preview stays
            await respond(response_type="ephemeral", replace_original=False, **blocks.render(reply, {}))

    def replayed(self, body: dict[str, Any]) -> bool:
        """Slack gives each event one id; a request replayed inside the signature's 5-minute
        window carries the same one (it could bring back a vote its owner withdrew)."""
        event_id = str(body.get("event_id") or "")
        if not seen_before(self.seen_events, event_id):
            return False
        log.info("slack: event %s seen before; ignored", event_id[:40])
        return True

    async def is_workspace_admin(self, client: AsyncWebClient, user_id: str, team_id: str) -> bool:
        """A workspace admin or owner as Slack says, or named in MOODGIF_SLACK_ADMIN_USER_IDS:
        "U0123" in every workspace of the installation, "T0456:U0123" in that one only (in an
        Enterprise Grid org one user id is in several workspaces)."""
        if user_id in self.admin_ids or f"{team_id}:{user_id}" in self.admin_ids:
            return True
        try:
            info = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("slack users.info failed: %s", exc.response.get("error") if exc.response else exc)
            return False
        user = info.get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
