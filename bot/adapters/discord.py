"""The Discord adapter: discord.py 2.x translating between Discord and `bot.core.BotCore`.

Only translation lives here, in one cog (`GifCog`, Red-DiscordBot style: the cog holds the
`BotCore`; the bot object only connects, routes and reports health): interactions, messages
and reactions become `Actor`s and calls on the core; the core's `Reply`s become embeds and
buttons (`bot.adapters.discord_views`, whose `DynamicItem`s call the cog back).

- `/gif [words]` (autocomplete shows how the core reads what is typed, "→ happiness · topic:
  cat", then emotion completions; both from the core via `bot.hints`): an ephemeral preview
  with Send / Shuffle / Cancel. Send posts an embed with the GIF publicly (an interaction
  follow-up, so the bot needs no channel permission for it) with 👍 / 👎 buttons; 👍 / 👎
  reactions on that post count too. A preview that answers a message (*Apps → GIF for this
  message*, or a mention) posts as a reply to it when the bot may write in the channel.
- `/gif-admin ...`: guild-only, hidden from members without Manage Server by default.
- `@moodgif ugh` works like `/gif ugh`. Discord has no private reply to a message, so the
  preview is a reply only its requester can click; `/gif` is the private way.
- Watched channels (opt-in per channel with `/gif-admin channel watch on`): the offer goes by
  direct message, never as a public post. Reading those messages needs the privileged
  message-content intent, requested only when some channel opted in (read at start; until a
  restart, turning watching on says it waits for the intent).

`start` logs in in the background and keeps trying while Discord cannot be reached (network,
DNS, a 5xx), with growing waits; a refused token or intent stops it at once.

Every handler answers Discord first (defer) and then asks the core, so the 3-second window
is kept even when the database is busy. Command tree sync is an explicit CLI step
(`moodgif discord sync`), never done at start.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.adapters import discord_connect as connect
from bot.adapters import discord_views as views
from bot.adapters.discord_connect import INTENT_SETTING, Retry
from bot.adapters.markup import discord_markup, discord_plain
from bot.events import Actor, PostView, Reply, reply_text
from bot.flows.admin import (
    CHANNEL_KEYS,
    CHANNEL_USAGE,
    POOLS_USAGE,
    AddPool,
    AdminCommand,
    ForgetPhrase,
    Help,
    ListPhrases,
    ListPools,
    Retrain,
    SetChannel,
    SetRating,
    ShowChannel,
    Stats,
    hide_command,
)
from bot.health import get_health
from bot.hints import typing_hint
from bot.scoped_settings import any_scope_sets, get_scoped
from scorer.settings import RATINGS, Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bot.core import BotCore

log = logging.getLogger(__name__)

PLATFORM = "discord"
FOR_MESSAGE = "GIF for this message"  # the message menu's app command (Apps -> ...)
THUMBS_UP = "👍"
THUMBS_DOWN = "👎"

# Exactly what the bot itself does in a channel: see it, answer mentions (a reply with an
# embed and maybe the GIF file, in threads too). Posts made through interactions need none.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,  # a reply references the message it answers
)
INVITE_SCOPES = ("bot", "applications.commands")


def invite_url(client_id: int) -> str:
    return discord.utils.oauth_url(client_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES)


def client_id_from_token(token: str) -> int | None:
    """A bot token starts with its user id in base64 (which is the application id)."""
    head = token.split(".", 1)[0]
    try:
        return int(base64.b64decode(head + "=" * (-len(head) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        return None


def watch_enabled(engine: Engine) -> bool:
    """Did some Discord channel or server opt in to watching? (Then ask for message content.)
    On the core's engine: the schema was migrated at start-up, not here."""
    return any_scope_sets(engine, PLATFORM, "watch", True)


def wanted_intents(watch: bool) -> discord.Intents:
    """The fewest intents that work: no members, no presences; message content only to watch."""
    intents = discord.Intents.none()
    intents.guilds = True  # channels and the interaction's guild
    intents.guild_messages = True  # mentions (their content is sent without the privileged intent)
    intents.guild_reactions = True  # 👍 / 👎 on posts
    intents.message_content = watch
    return intents


WATCH_WAITS_FOR_INTENT = (
    "Watching starts only after the bot's operator enables the **Message Content** intent in the "
    "Discord Developer Portal (Bot → Privileged Gateway Intents) and restarts the bot: "
    "it runs without that intent now.")
WATCH_TURNED_OFF = (
    "Watching waits: the bot's operator has turned watching off for this bot "
    "(MOODGIF_DISCORD_WATCH=off), so it does not read channel messages until they turn it on.")


def _workspace(guild_id: int | None) -> str:
    return str(guild_id) if guild_id else ""


def _channel(channel: Any, channel_id: int | None) -> str:
    """The channel a request belongs to: a thread's parent, so a channel's settings (rating
    ceiling, pools, watch...) hold in its threads too, as a Slack thread is its channel's."""
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return str(channel.parent_id)
    return str(channel_id or "")


def interaction_actor(interaction: discord.Interaction, *, admin: bool = False) -> Actor:
    user = interaction.user
    is_admin = False
    if admin and interaction.guild_id:
        perms = interaction.permissions
        is_admin = bool(perms.manage_guild or perms.administrator)
    return Actor(
        platform=PLATFORM,
        workspace=_workspace(interaction.guild_id),
        channel=_channel(interaction.channel, interaction.channel_id),
        user_id=str(user.id),
        display_name=getattr(user, "display_name", "") or "",
        is_admin=is_admin,
    )


def message_actor(message: discord.Message) -> Actor:
    return Actor(
        platform=PLATFORM,
        workspace=_workspace(message.guild.id if message.guild else None),
        channel=_channel(message.channel, message.channel.id),
        user_id=str(message.author.id),
        display_name=message.author.display_name,
    )


def reaction_vote(emoji: discord.PartialEmoji) -> bool | None:
    name = emoji.name or ""
    if emoji.id is None and name.startswith(THUMBS_UP):  # any skin tone
        return True
    if emoji.id is None and name.startswith(THUMBS_DOWN):
        return False
    return None


def answered_message(message: discord.Message | None) -> int | None:
    """The message a preview answers, so its Send can reply to it: the one whose menu opened
    the preview (*Apps -> GIF for this message*), or the mention the preview replies to. A
    `/gif` preview answers nothing."""
    if message is None:
        return None
    meta = message.interaction_metadata
    if meta is not None and meta.target_message_id:
        return meta.target_message_id
    return message.reference.message_id if message.reference is not None else None


def strip_mention(text: str, user_id: int) -> str:
    for token in (f"<@{user_id}>", f"<@!{user_id}>"):
        text = text.replace(token, " ")
    return " ".join(text.split())


class _CoreCog(commands.Cog):
    """A cog that answers through the core (typed). Without one (`moodgif discord sync` only
    registers the commands) any handler raises."""

    def __init__(self, bot: commands.Bot, core: BotCore | None, settings: Settings) -> None:
        self.bot = bot
        self._core = core
        self.settings = settings

    @property
    def core(self) -> BotCore:
        if self._core is None:
            raise RuntimeError("this Discord bot was built without a BotCore (commands sync only)")
        return self._core

    def limit(self, interaction: discord.Interaction | None = None) -> int:
        limit = self.settings.discord.upload_limit_bytes
        guild_limit = getattr(interaction, "filesize_limit", 0) if interaction is not None else 0
        return min(limit, guild_limit) if guild_limit else limit

    def render(self, reply: Reply, interaction: discord.Interaction | None = None, **kw: Any) -> views.Message:
        return views.render(reply, self.settings.http.public_url, self.limit(interaction), **kw)

    async def _note(self, interaction: discord.Interaction, reply: Reply) -> None:
        """A private note that leaves the message it was clicked on as it is."""
        await interaction.followup.send(self.render(reply).content or "OK.", ephemeral=True)


class GifCog(_CoreCog, name=views.COG_NAME):
    """moodgif for everyone on Discord: /gif, the "GIF for this message" app command and the
    buttons' clicks (the `DynamicItem`s in `discord_views` call back here). Reactions and
    messages are `ListenCog`'s; /gif-admin is `AdminCog`'s."""

    def __init__(self, bot: commands.Bot, core: BotCore | None, settings: Settings) -> None:
        super().__init__(bot, core, settings)
        # discord.py has no decorator for a context menu inside a cog: it is built here and
        # joins the tree when the cog loads.
        self.for_message = app_commands.ContextMenu(name=FOR_MESSAGE, callback=self.gif_for_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.for_message)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.for_message.name, type=self.for_message.type)

    # --- /gif ---------------------------------------------------------------------------
    @app_commands.command(name="gif", description="A GIF for a feeling: a private preview first")
    @app_commands.describe(words="a feeling, a word, an emoji: happy, ugh, finally done, 😭")
    async def gif(self, interaction: discord.Interaction, words: str = "") -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = interaction_actor(interaction)
        answer = await self.core.request_with_poll(actor, discord_plain(words))
        await interaction.edit_original_response(**self.render(answer.reply, interaction).edit_kwargs())
        if answer.poll is not None:  # now and then a "which is more X?" poll (the core decides)
            await interaction.followup.send(**self.render(answer.poll, interaction).send_kwargs(),
                                            ephemeral=True)

    async def gif_for_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """A message's menu, Apps -> "GIF for this message": its words read as a `/gif`
        request, so answering someone takes no typing; the preview is the clicker's alone."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await self.core.request(interaction_actor(interaction), discord_plain(message.content))
        await interaction.edit_original_response(**self.render(reply, interaction).edit_kwargs())

    @gif.autocomplete("words")
    async def gif_words(self, interaction: discord.Interaction, current: str
                        ) -> list[app_commands.Choice[str]]:
        """While typing: first how the core reads the words so far (picking it sends them as
        typed), then emotion completions (`bot.hints`)."""
        hint = await asyncio.to_thread(typing_hint, self.core, discord_plain(current), 25,
                                       interaction_actor(interaction))
        choices = [app_commands.Choice(name=w[:100], value=w[:100]) for w in hint.completions[:25]]
        if hint.reading:
            typed = current.strip()[:100]
            rest = [c for c in choices if c.value != typed][:24]
            choices = [app_commands.Choice(name=("→ " + hint.reading)[:100], value=typed), *rest]
        return choices

    # --- the buttons (bot.adapters.discord_views.Clicks) ----------------------------------
    async def choice_click(self, interaction: discord.Interaction, emotion: str, ask_id: str,
                           owner: int = 0) -> None:
        await interaction.response.defer()
        if owner and interaction.user.id != owner:  # a mention's public reply: the asker's alone
            await self._note(interaction, Reply(kind="forbidden"))
            return
        actor = interaction_actor(interaction)
        # a "did you mean" pick opens a preview for the words asked about; the help's, the name
        reply = await (self.core.choose(actor, ask_id, emotion) if ask_id else self.core.request(actor, emotion))
        if reply.kind in ("cooldown", "forbidden", "error", "closed"):
            await self._note(interaction, reply)
        else:
            await interaction.edit_original_response(**self.render(reply, interaction).edit_kwargs())

    async def switch_click(self, interaction: discord.Interaction, session_id: str, emotion: str) -> None:
        await interaction.response.defer()
        reply = await self.core.switch(interaction_actor(interaction), session_id, emotion)
        if reply.preview is not None or reply.kind == "expired":
            await interaction.edit_original_response(**self.render(reply, interaction).edit_kwargs())
        else:  # forbidden, error: only the clicker sees why
            await self._note(interaction, reply)

    async def preview_click(self, interaction: discord.Interaction, op: str, session_id: str,
                            sha: str | None) -> None:
        await interaction.response.defer()
        actor = interaction_actor(interaction)
        if op == "shuffle":
            reply = await self.core.shuffle(actor, session_id)
        elif op == "cancel":
            reply = await self.core.cancel(actor, session_id)
        else:
            sent = await self.core.send_and_publish(
                actor, session_id, sha, lambda post: self._publish(interaction, post))
            reply = sent.reply
        if reply.kind == "posted" and reply.post is not None:
            note = views.sent_message(reply.post.post_id)  # "Sent ✓" with Undo: the sender's alone
            if interaction.message is not None and interaction.message.flags.ephemeral:
                await interaction.edit_original_response(**note.edit_kwargs())
            else:  # a mention's preview is a reply in the channel: it goes, and the note is private
                await interaction.delete_original_response()
                await interaction.followup.send(**note.send_kwargs(), ephemeral=True)
        elif reply.kind == "cancelled":
            await interaction.delete_original_response()
        elif reply.preview is not None or reply.kind == "expired":
            await interaction.edit_original_response(**self.render(reply, interaction).edit_kwargs())
        else:  # forbidden, error: only the clicker sees why
            await self._note(interaction, reply)

    async def undo_click(self, interaction: discord.Interaction, post_id: int) -> None:
        """The sender's Undo: the core takes the Send back, then the public post is deleted
        (the bot's own message: no Manage Messages needed)."""
        await interaction.response.defer()
        reply = await self.core.undo(interaction_actor(interaction), post_id)
        if reply.kind != "undone":
            await self._note(interaction, reply)
            return
        partial = getattr(interaction.channel, "get_partial_message", None)
        if reply.message_ref.isdigit() and partial is not None:
            try:
                await partial(int(reply.message_ref)).delete()
            except discord.HTTPException as exc:  # deleted meanwhile: the Send is taken back all the same
                log.info("discord delete of a taken-back post failed: %s", exc.status)
        await interaction.edit_original_response(**views.text_message(reply.text, dismissible=True).edit_kwargs())

    async def _publish(self, interaction: discord.Interaction, post: PostView) -> str:
        def message() -> views.Message:  # built per try: a File is spent once sent
            return views.post_message(post, self.settings.http.public_url, self.limit(interaction))

        quiet = discord.AllowedMentions.none()
        target, channel = answered_message(interaction.message), interaction.channel
        if target is not None and isinstance(channel, discord.abc.Messageable):
            reference = discord.MessageReference(message_id=target, channel_id=interaction.channel_id or 0,
                                                 fail_if_not_exists=False)
            try:
                replied = await channel.send(**message().send_kwargs(), reference=reference,
                                             mention_author=False, allowed_mentions=quiet)
                return str(replied.id)
            except discord.HTTPException as exc:  # no Send Messages here (or a user-installed app)
                log.info("discord reply to the answered message failed (%s): posting as a follow-up",
                         exc.status)
        sent = await interaction.followup.send(**message().send_kwargs(), wait=True, allowed_mentions=quiet)
        return str(sent.id)

    async def vote_click(self, interaction: discord.Interaction, post_id: int, up: bool) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await self.core.vote(interaction_actor(interaction), post_id=post_id, up=up)
        await interaction.followup.send(self.render(reply).content or "OK.", ephemeral=True)

    async def poll_click(self, interaction: discord.Interaction, poll_id: str, answer: str) -> None:
        await interaction.response.defer()
        reply = await self.core.answer_poll(interaction_actor(interaction), poll_id, answer)
        if reply.kind in ("forbidden", "error"):
            await self._note(interaction, reply)
        else:
            text = reply.text or "Thanks!"
            await interaction.edit_original_response(content=views.fit(discord_markup(text)), embeds=[], attachments=[], view=None)


class ListenCog(_CoreCog, name="moodgif listeners"):
    """What moodgif hears without being asked by a command: 👍/👎 reactions on its posts (votes),
    mentions (`@moodgif ugh`, a preview in reply) and watched channels (an unasked offer by DM)."""

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._reaction(payload)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._reaction(payload)

    async def _reaction(self, payload: discord.RawReactionActionEvent) -> None:
        up = reaction_vote(payload.emoji)
        me = self.bot.user.id if self.bot.user else None
        if up is None or payload.user_id == me:
            return
        actor = Actor(platform=PLATFORM, workspace=_workspace(payload.guild_id),
                      channel=str(payload.channel_id), user_id=str(payload.user_id))
        added = payload.event_type == "REACTION_ADD"
        await self.core.vote(actor, message_ref=str(payload.message_id), up=up if added else None,
                             source="reaction")

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if message.author.bot or message.guild is None or me is None:
            return
        try:
            if me in message.mentions:
                await self._mention(message, me.id)
            elif self.bot.intents.message_content:
                await self._watch(message)
        except Exception:
            log.exception("discord message handling failed")

    async def _mention(self, message: discord.Message, me: int) -> None:
        actor = message_actor(message)
        reply = await self.core.request(actor, discord_plain(strip_mention(message.content, me)))
        msg = self.render(reply, owner=message.author.id)  # everyone sees it: its buttons are the asker's
        try:
            await message.reply(**msg.send_kwargs(), mention_author=False,
                                allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden:  # no Send Messages here: the preview nobody can see goes
            log.info("discord: may not reply in channel %s; the asker is told by DM", message.channel.id)
            if reply.preview is not None:
                await self.core.cancel(actor, reply.preview.session_id)
            await self._tell_by_dm(message.author, (
                f"I can't write in <#{message.channel.id}>, so I couldn't answer your mention there. "
                "Use `/gif` in that channel (its preview is private to you), or ask a server admin "
                "to let me send messages there."))

    @staticmethod
    async def _tell_by_dm(user: discord.abc.User, text: str) -> None:
        try:
            await user.send(**views.text_message(text, dismissible=True).send_kwargs())
        except discord.HTTPException:  # DMs closed: stay quiet rather than post publicly
            log.debug("discord: note not delivered, DMs closed")

    async def _watch(self, message: discord.Message) -> None:
        offer = await self.core.watch(message_actor(message), discord_plain(message.content))
        if offer is None:
            return
        # No private message in a channel on Discord: offer by DM, pointing back to the channel.
        emotion = offer.preview.emotion if offer.preview is not None else ""
        text = (offer.text or "Want to send a GIF?") + (
            f"\nType `/gif {emotion}` in <#{message.channel.id}>, or answer [your message]"
            f"({message.jump_url}) itself: **Apps → {FOR_MESSAGE}**." if emotion else "")
        await self._tell_by_dm(message.author, text)


class AdminCog(_CoreCog, name="moodgif admin"):
    """/gif-admin: a server's pools, rating ceiling, channel settings, retrain and stats, for
    people who may manage the server (Discord enforces the default permission)."""

    admin = app_commands.Group(
        name="gif-admin",
        description="moodgif settings for this server",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    async def _admin(self, interaction: discord.Interaction, command: AdminCommand) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = interaction_actor(interaction, admin=True)
        reply = await self.core.run_admin(actor, command)
        text = views.admin_wording(reply_text(reply))
        if reply.kind == "ack" and await self._watch_waits_for_intent(actor, command):
            text += "\n" + (WATCH_WAITS_FOR_INTENT if self.settings.discord.watch else WATCH_TURNED_OFF)
        await interaction.followup.send(views.fit(discord_markup(text)), ephemeral=True)

    async def _watch_waits_for_intent(self, actor: Actor, command: AdminCommand) -> bool:
        """Did this command leave the channel watched while the running bot cannot read
        messages? The intent is chosen at login (`start`), so the setting waits for a restart,
        and for the operator to allow the intent in the Developer Portal first."""
        if self.bot.intents.message_content or not (
                isinstance(command, SetChannel) and CHANNEL_KEYS.get(command.key.lower()) == "watch"):
            return False
        watched = await asyncio.to_thread(get_scoped, self.core.engine, self.settings, actor.platform,
                                          actor.workspace, actor.channel, "watch")
        if watched and not self.settings.discord.watch:
            log.warning("Discord: watching was turned on in channel %s of server %s; it waits, since "
                        "MOODGIF_DISCORD_WATCH=off", actor.channel, actor.workspace)
        elif watched:
            log.warning("Discord: watching was turned on in channel %s of server %s, but this bot "
                        "runs without the Message Content intent: enable it in the Developer Portal "
                        "(%s), then restart moodgif", actor.channel, actor.workspace, INTENT_SETTING)
        return bool(watched)

    @admin.command(name="pools", description="list the GIF pools, or add one (scored in the background)")
    @app_commands.describe(action="list or add", name="new pool name", source="a folder, manifest, URL list, one GIF URL, or giphy:WORDS")
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ("list", "add")])
    async def admin_pools(self, interaction: discord.Interaction, action: str = "list", name: str = "",
                          source: str = "") -> None:
        if action == "add" and name.strip() and source.strip():
            await self._admin(interaction, AddPool(name.strip(), source.strip()))
        else:
            await self._admin(interaction, ListPools() if action == "list" else Help(POOLS_USAGE))

    @admin.command(name="rating", description="the highest rating GIFs may have here")
    @app_commands.choices(
        ceiling=[app_commands.Choice(name=r, value=r) for r in RATINGS],
        scope=[app_commands.Choice(name=s, value=s) for s in ("server", "channel")],
    )
    async def admin_rating(self, interaction: discord.Interaction, ceiling: str, scope: str = "server") -> None:
        await self._admin(interaction, SetRating(ceiling, channel_only=scope == "channel"))

    @admin.command(name="channel",
                   description="this channel's settings: show, pools, watch, strict, preview, cooldown, rating, phrases")
    @app_commands.choices(key=[app_commands.Choice(name=k, value=k)
                               for k in ("show", "pools", "watch", "strict", "preview", "cooldown", "rating",
                                         "phrases")])
    @app_commands.describe(value="the new value, or reset")
    async def admin_channel(self, interaction: discord.Interaction, key: str = "show", value: str = "") -> None:
        if key == "show":
            command: AdminCommand = ShowChannel()
        elif not value.strip():
            command = Help(CHANNEL_USAGE)
        else:
            command = SetChannel(key, None if value.strip().lower() in {"reset", "default"} else value.strip())
        await self._admin(interaction, command)

    @admin.command(name="phrases", description="words read the way people here sent them; or forget some")
    @app_commands.describe(forget="words to unlearn (leave empty to list)")
    async def admin_phrases(self, interaction: discord.Interaction, forget: str = "") -> None:
        await self._admin(interaction, ForgetPhrase(forget.strip()) if forget.strip() else ListPhrases())

    @admin.command(name="hide", description="never offer a GIF in this server again (the last one posted here, or by SHA)")
    @app_commands.describe(gif="last (the default), 8+ hex digits of its SHA-256, or list")
    async def admin_hide(self, interaction: discord.Interaction, gif: str = "last") -> None:
        await self._admin(interaction, hide_command("hide", gif))

    @admin.command(name="unhide", description="offer a hidden GIF again")
    @app_commands.describe(gif="8+ hex digits of its SHA-256 (see hide gif:list), or all")
    async def admin_unhide(self, interaction: discord.Interaction, gif: str) -> None:
        await self._admin(interaction, hide_command("unhide", gif))

    @admin.command(name="retrain", description="refit from the votes and retrain now")
    async def admin_retrain(self, interaction: discord.Interaction) -> None:
        await self._admin(interaction, Retrain())

    @admin.command(name="stats", description="GIFs, posts, votes, model, last retrain")
    async def admin_stats(self, interaction: discord.Interaction) -> None:
        await self._admin(interaction, Stats())


class MoodgifTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CommandOnCooldown):
            text = f"Easy there! Try again in {max(1, round(error.retry_after))} s."
        elif isinstance(error, app_commands.CheckFailure):
            text = "You can't use that command here."
        else:
            log.error("discord command failed: %s", type(getattr(error, "original", error)).__name__,
                      exc_info=getattr(error, "original", error))
            text = "Sorry, something went wrong on my side. Please try again."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            pass


class _Host:
    """What both bot classes add to discord.py's: the cogs and the buttons, gateway health.
    `build_bot` sets `gif_cog`, `listen_cog` and `admin_cog`; `start` keeps its connection task
    in `runner`, which sets `in_gateway` while discord.py's `connect` runs."""

    gif_cog: GifCog
    listen_cog: ListenCog
    admin_cog: AdminCog
    runner: asyncio.Task[None] | None = None
    in_gateway: bool = False

    async def close(self) -> None:
        runner = self.runner
        # Logging in or waiting to retry: discord.py has nothing running to wind down, and a
        # wait of minutes (or a hanging DNS lookup) must not hold up a shutdown.
        if runner is not None and not runner.done() and not self.in_gateway \
                and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.wait([runner])
        await super().close()  # type: ignore[misc]

    async def setup_hook(self) -> None:
        await self.add_cog(self.gif_cog)  # type: ignore[attr-defined]
        await self.add_cog(self.listen_cog)  # type: ignore[attr-defined]
        await self.add_cog(self.admin_cog)  # type: ignore[attr-defined]
        self.add_dynamic_items(*views.DYNAMIC_ITEMS)  # type: ignore[attr-defined]

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: `ListenCog` handles mentions and watched channels."""

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        log.exception("discord event %s failed", event_method)

    # /readyz reports the gateway connection (bot.health).
    async def on_ready(self) -> None:
        get_health().set_component("discord", True, "gateway connected")

    async def on_resumed(self) -> None:
        get_health().set_component("discord", True, "gateway resumed")

    async def on_disconnect(self) -> None:
        if self.runner is None or not self.runner.done():  # else it has said why it stopped
            get_health().set_component("discord", False, "gateway disconnected")


class MoodgifBot(_Host, commands.Bot):
    pass


class ShardedMoodgifBot(_Host, commands.AutoShardedBot):
    pass


def build_bot(core: BotCore | None, settings: Settings, *, intents: discord.Intents | None = None,
              **kwargs: Any) -> MoodgifBot | ShardedMoodgifBot:
    """The bot object (not connected): sharded when `settings.discord.sharded`."""
    cls = ShardedMoodgifBot if settings.discord.sharded else MoodgifBot
    bot = cls(
        command_prefix=commands.when_mentioned,
        intents=intents or wanted_intents(False),
        help_command=None,
        tree_cls=MoodgifTree,
        allowed_mentions=discord.AllowedMentions.none(),
        **kwargs,
    )
    bot.gif_cog = GifCog(bot, core, settings)
    bot.listen_cog = ListenCog(bot, core, settings)
    bot.admin_cog = AdminCog(bot, core, settings)
    return bot


async def start(core: BotCore, settings: Settings, *, retry: Retry | None = None) -> discord.Client | None:
    """Log in and connect in a background task; None without DISCORD_TOKEN. `close()` stops it.
    `retry`: the waits while Discord cannot be reached (tests shorten them)."""
    if not settings.discord.token:
        return None
    watch = settings.discord.watch and await asyncio.to_thread(watch_enabled, core.engine)
    bot = build_bot(core, settings, intents=wanted_intents(watch))
    bot.runner = asyncio.get_running_loop().create_task(
        connect.run(bot, settings.discord.token, retry or Retry()), name="discord")
    log.info("Discord: starting (%s, message content %s)",
             "sharded" if settings.discord.sharded else "one shard", "on" if watch else "off")
    return bot


class DiscordSetupError(RuntimeError):
    """A setup call to Discord failed; the message is one line a person can act on."""


async def sync_commands(settings: Settings, guild_id: int | None = None) -> list[str]:
    """Register the slash commands with Discord: globally, or copied into one guild (instant)."""
    bot = build_bot(None, settings, intents=discord.Intents.none())
    try:
        async with bot:
            await bot.login(settings.discord.token)
            if guild_id:
                guild = discord.Object(id=guild_id)
                bot.tree.copy_global_to(guild=guild)
                synced = await bot.tree.sync(guild=guild)
            else:
                synced = await bot.tree.sync()
    except discord.LoginFailure:
        raise DiscordSetupError("Discord refused the token (DISCORD_TOKEN)") from None
    except discord.HTTPException as exc:
        raise DiscordSetupError(f"Discord answered {exc.status}: {exc.text or 'error'}") from None
    except OSError as exc:
        raise DiscordSetupError(f"cannot reach Discord: {type(exc).__name__}") from None
    return [c.name for c in synced]
