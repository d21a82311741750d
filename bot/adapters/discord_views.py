"""Discord rendering of the bot core's replies, and the buttons as `DynamicItem`s.

Every button carries its state in its `custom_id` (session id, post id, poll id, emotion)
and is parsed back by a template, so a click works after a restart: discord.py routes it by
pattern to the classes registered with `client.add_dynamic_items(*DYNAMIC_ITEMS)`, not to a
view object kept in memory.

A click reaches the core through the bot's moodgif cog (`bot.adapters.discord.GifCog`), found
by name and checked against `Clicks`, what the buttons need of it: this module never imports
the cog's module, which imports this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import discord
from discord.ext import commands

from bot.adapters.markup import discord_markup
from bot.events import (
    VOTE_LABELS,
    GifCard,
    PollView,
    PostView,
    PreviewView,
    Reply,
    gif_url,
    reply_text,
)
from bot.flows.admin import CHANNEL_USAGE, HIDE_USAGE, POOLS_USAGE

CUSTOM_ID_MAX = 100
CONTENT_MAX = 2000  # Discord refuses a message whose content is longer (error 50035)
_SID = r"[A-Za-z0-9_-]{1,40}"

COLOUR = discord.Colour.blurple()
COG_NAME = "moodgif"


@dataclass
class Message:
    """What to send or edit: discord.py keyword arguments without the MISSING juggling."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    files: list[discord.File] = field(default_factory=list)
    view: discord.ui.View | None = None

    def __post_init__(self) -> None:
        self.content = fit(discord_markup(self.content)) if self.content is not None else None

    def send_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"content": self.content, "embeds": self.embeds, "files": self.files}
        if self.view is not None:
            kw["view"] = self.view
        return kw

    def edit_kwargs(self) -> dict[str, Any]:
        return {"content": self.content, "embeds": self.embeds, "attachments": self.files, "view": self.view}


def _units(text: str) -> int:
    """A message's length as Discord counts it: UTF-16 code units (an emoji is two or more)."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str | None, limit: int = CONTENT_MAX) -> str | None:
    """`text` cut to what Discord takes in one message (the rest ends in "…"): a longer one is
    refused whole, and the person would see only "something went wrong". A list (an admin's
    hidden GIFs, say) is cut at a line, and says how many lines it leaves out."""
    if text is None or _units(text) <= limit:
        return text
    lines = text.split("\n")
    if len(lines) > 2:
        kept: list[str] = []
        size = 0
        for line in lines:
            tail = f"\n… and {len(lines) - len(kept)} more lines"
            if size + _units(line) + 1 + _units(tail) > limit:
                break
            kept.append(line)
            size += _units(line) + 1
        if kept:
            return "\n".join(kept) + f"\n… and {len(lines) - len(kept)} more lines"
    cut = text[: limit - 1]
    while _units(cut) > limit - 1:  # emoji count double: drop what is still over
        cut = cut[: len(cut) - (_units(cut) - (limit - 1))]
    return cut.rstrip() + "…"


def media(card: GifCard, public_url: str, upload_limit: int) -> tuple[str | None, discord.File | None]:
    """Where the embed's image comes from: the local file as an attachment when it fits the
    upload limit, else a public URL: moodgif's checked copy under public_url before the GIF's
    source (whose host could serve other bytes later)."""
    if card.credit and card.source_url and card.source_url.startswith("https://"):
        return card.source_url, None  # a provider's GIF is shown from its own CDN, as it asks
    if card.bytes <= upload_limit and card.local_path.is_file():
        name = f"{card.sha256}.gif"  # ASCII, as attachment:// needs
        return f"attachment://{name}", discord.File(card.local_path, filename=name, description=card.alt_text[:1000])
    if public_url:
        return gif_url(card.sha256, public_url), None
    if card.source_url and card.source_url.startswith(("https://", "http://")):
        return card.source_url, None
    return None, None


def card_embed(card: GifCard, url: str | None, *, title: str | None = None, description: str = "") -> discord.Embed:
    embed = discord.Embed(title=title, description=description or None, colour=COLOUR)
    if url:
        embed.set_image(url=url)
    else:
        embed.description = ((description + "\n") if description else "") + "_(this GIF is too large to show here)_"
    footer = [card.title[:1900]] if card.title and title != card.title else []
    footer += [card.credit] if card.credit else []
    if footer:
        embed.set_footer(text=" · ".join(footer))
    return embed


def _add_cards(msg: Message, cards: list[GifCard], public_url: str, limit: int,
               titles: list[str | None], description: str = "") -> None:
    for i, (card, title) in enumerate(zip(cards, titles, strict=True)):
        url, file = media(card, public_url, limit)
        msg.embeds.append(card_embed(card, url, title=title, description=description if i == 0 else ""))
        if file is not None:
            msg.files.append(file)


def preview_message(preview: PreviewView, public_url: str, limit: int, text: str = "") -> Message:
    msg = Message(content=text or None)
    desc = f"for “{preview.query}”" if preview.query else ""
    if preview.interpretation:  # how the request was read (bot.topics.Reading.describe)
        desc = f"{desc}\n{preview.interpretation}".strip()
    cards = list(preview.cards)
    titles: list[str | None] = [preview.label] + [None] * (len(cards) - 1)
    if len(cards) > 1:
        titles = [f"#{i} · {preview.label}" for i in range(1, len(cards) + 1)]
    _add_cards(msg, cards, public_url, limit, titles, desc)
    view = discord.ui.View(timeout=None)
    if len(cards) == 1:
        view.add_item(PreviewButton("send", preview.session_id))
    else:
        for i, card in enumerate(cards, 1):
            view.add_item(PreviewButton("send", preview.session_id, card.sha256, label=f"Send #{i}"))
    if preview.can_shuffle:
        view.add_item(PreviewButton("shuffle", preview.session_id))
    view.add_item(PreviewButton("cancel", preview.session_id))
    for emotion in preview.alternatives:  # the request's other likely feelings, a row below
        view.add_item(SwitchButton(emotion, preview.session_id))
    if preview.more_feelings:  # and every other one, a menu on the row below that
        view.add_item(OtherFeelingSelect(preview.session_id, preview.more_feelings))
    msg.view = view
    return msg


def post_message(post: PostView, public_url: str, limit: int) -> Message:
    msg = Message()
    desc = f"requested by <@{post.requested_by}> · *{post.caption}*"
    _add_cards(msg, [post.card], public_url, limit, [None], desc)
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(True, post.post_id))
    view.add_item(VoteButton(False, post.post_id))
    msg.view = view
    return msg


def poll_message(poll: PollView, public_url: str, limit: int, text: str = "") -> Message:
    msg = Message(content=text or f"Which is more **{poll.emotion}**?")
    _add_cards(msg, [poll.left, poll.right], public_url, limit, ["Left", "Right"])
    view = discord.ui.View(timeout=None)
    for answer in ("left", "right", "neither"):
        view.add_item(PollButton(answer, poll.poll_id))
    msg.view = view
    return msg


def choices_message(reply: Reply, owner: int = 0) -> Message:
    text = reply.text or ("Did you mean:" if reply.kind == "did_you_mean" else "Pick a feeling:")
    view = discord.ui.View(timeout=None)
    for emotion in reply.choices[:25]:  # 5 rows of 5 buttons
        view.add_item(ChoiceButton(emotion, reply.ask_id, owner))
    if reply.ask_id and reply.more_choices:  # every other feeling, one pick away
        view.add_item(OtherChoiceSelect(reply.ask_id, reply.more_choices))
    return Message(content=text, view=view)


# The core's admin texts name the typed syntax of Slack's `/gif-admin pools list`; Discord's
# /gif-admin has options instead, and calls a workspace a server.
_ADMIN_WORDING: tuple[tuple[str, str], ...] = (
    (POOLS_USAGE, "Usage: `/gif-admin pools action:list`, or `/gif-admin pools action:add name:NAME "
                  "source:FOLDER|MANIFEST|URL-LIST|giphy:WORDS`"),
    (CHANNEL_USAGE, "Give a value too: `/gif-admin channel key:KEY value:VALUE` (pools NAME[,NAME] · "
                    "watch on|off · strict on|off · preview 1|3 · cooldown SECONDS · rating CEILING · "
                    "phrases on|off), or `value:reset`"),
    (HIDE_USAGE, "Usage: `/gif-admin hide gif:last|SHA|list`, `/gif-admin unhide gif:SHA|all` "
                 "(SHA: 8 or more hex digits of the GIF's SHA-256)"),
    ("Only admins can use `/gif-admin`.",  # moodgif checks the permission itself too
     "Only members with the Manage Server permission can use `/gif-admin`."),
    ("`channel rating reset`", "`/gif-admin channel key:rating value:reset`"),
    ("`pools list`", "`/gif-admin pools`"),
    ("`phrases forget WORDS`", "`/gif-admin phrases forget:WORDS`"),
    ("`stats`", "`/gif-admin stats`"),
    ("`hidden` lists them", "`/gif-admin hide gif:list` lists them"),
    ("`unhide SHA`", "`/gif-admin unhide gif:SHA`"),
)
_WORKSPACE = re.compile(r"(?<!Slack )workspace")  # a Slack workspace named as such stays one
_UNHIDE_ONE = re.compile(r"`unhide ([0-9a-f]{8,64})`")


def admin_wording(text: str) -> str:
    """A /gif-admin answer in Discord's words."""
    for slack, ours in _ADMIN_WORDING:
        text = text.replace(slack, ours)
    text = _WORKSPACE.sub("server", text)
    return _UNHIDE_ONE.sub(r"`/gif-admin unhide gif:\1`", text)


def text_message(text: str, *, dismissible: bool = False) -> Message:
    view = None
    if dismissible:
        view = discord.ui.View(timeout=None)
        view.add_item(DismissButton())
    return Message(content=text, view=view)


def sent_message(post_id: int) -> Message:
    """What the sender's preview turns into once the GIF is out: Undo takes the Send back
    (`BotCore.undo`), Dismiss just closes this note."""
    view = discord.ui.View(timeout=None)
    view.add_item(UndoButton(post_id))
    view.add_item(DismissButton())
    return Message(content="Sent ✓", view=view)


def render(reply: Reply, public_url: str, limit: int, *, dismissible: bool = False,
           owner: int = 0) -> Message:
    """Any private reply (posts are rendered by `post_message`); `owner` is who asked, for a
    reply everyone sees (a mention's)."""
    if reply.preview is not None:  # a preview, or "exhausted" with the last one still shown
        return preview_message(reply.preview, public_url, limit, reply.text)
    if reply.kind in ("help", "did_you_mean") and reply.choices:
        return choices_message(reply, owner)
    if reply.kind == "poll" and reply.poll is not None:
        return poll_message(reply.poll, public_url, limit, reply.text)
    return text_message(reply_text(reply), dismissible=dismissible)


# ---------------------------------------------------------------------------------------
# buttons


@runtime_checkable
class Clicks(Protocol):
    """What the buttons call: implemented by the cog named `COG_NAME`."""

    async def preview_click(self, interaction: discord.Interaction, op: str, session_id: str,
                            sha: str | None) -> None: ...

    async def vote_click(self, interaction: discord.Interaction, post_id: int, up: bool) -> None: ...

    async def poll_click(self, interaction: discord.Interaction, poll_id: str, answer: str) -> None: ...

    async def choice_click(self, interaction: discord.Interaction, emotion: str, ask_id: str,
                           owner: int = 0) -> None: ...

    async def switch_click(self, interaction: discord.Interaction, session_id: str, emotion: str) -> None: ...

    async def undo_click(self, interaction: discord.Interaction, post_id: int) -> None: ...


def _clicks(interaction: discord.Interaction) -> Clicks:
    client = interaction.client
    cog = client.get_cog(COG_NAME) if isinstance(client, commands.Bot) else None
    if not isinstance(cog, Clicks):
        raise RuntimeError(f"a moodgif button was clicked but the {COG_NAME!r} cog is not loaded")
    return cog


_PREVIEW_STYLE = {"send": discord.ButtonStyle.primary, "shuffle": discord.ButtonStyle.secondary,
                  "cancel": discord.ButtonStyle.secondary}


class PreviewButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=re.compile(rf"mg:(?P<op>send|shuffle|cancel):(?P<sid>{_SID})(?::(?P<sha>[0-9a-f]{{64}}))?$"),
):
    def __init__(self, op: str, session_id: str, sha: str | None = None, *, label: str | None = None) -> None:
        custom_id = f"mg:{op}:{session_id}"
        if sha and len(custom_id) + 65 <= CUSTOM_ID_MAX:
            custom_id += f":{sha}"
        else:
            sha = None
        super().__init__(
            discord.ui.Button(label=label or op.capitalize(), style=_PREVIEW_STYLE[op], custom_id=custom_id)
        )
        self.op, self.session_id, self.sha = op, session_id, sha

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> PreviewButton:
        return cls(match["op"], match["sid"], match["sha"], label=item.label)

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).preview_click(interaction, self.op, self.session_id, self.sha)


class VoteButton(discord.ui.DynamicItem[discord.ui.Button], template=r"mg:vote:(?P<dir>up|down):(?P<post>\d{1,18})$"):
    def __init__(self, up: bool, post_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                emoji=VOTE_LABELS[up][0],
                label=VOTE_LABELS[up][1],
                style=discord.ButtonStyle.secondary,
                custom_id=f"mg:vote:{'up' if up else 'down'}:{post_id}",
            )
        )
        self.up, self.post_id = up, post_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> VoteButton:
        return cls(match["dir"] == "up", int(match["post"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).vote_click(interaction, self.post_id, self.up)


class PollButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=re.compile(rf"mg:poll:(?P<answer>left|right|neither):(?P<pid>{_SID})$")):
    def __init__(self, answer: str, poll_id: str) -> None:
        super().__init__(
            discord.ui.Button(label=answer.capitalize(), style=discord.ButtonStyle.secondary,
                              custom_id=f"mg:poll:{answer}:{poll_id}")
        )
        self.answer, self.poll_id = answer, poll_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> PollButton:
        return cls(match["answer"], match["pid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).poll_click(interaction, self.poll_id, self.answer)


class ChoiceButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=re.compile(rf"mg:pick:(?P<emotion>[a-z_-]{{1,40}})(?::(?P<ask>{_SID}))?"
                                       r"(?:/(?P<owner>\d{1,20}))?$")):
    """A feeling to pick: from a "did you mean" (`ask_id`: the words asked about) or the help.
    `owner`: who asked, on a public reply (a mention's), where everyone sees the buttons."""

    def __init__(self, emotion: str, ask_id: str = "", owner: int = 0) -> None:
        custom_id = f"mg:pick:{emotion}" + (f":{ask_id}" if ask_id else "") + (f"/{owner}" if owner else "")
        super().__init__(
            discord.ui.Button(label=emotion, style=discord.ButtonStyle.secondary, custom_id=custom_id)
        )
        self.emotion = emotion
        self.ask_id = ask_id
        self.owner = owner

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> ChoiceButton:
        return cls(match["emotion"], match["ask"] or "", int(match["owner"] or 0))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).choice_click(interaction, self.emotion, self.ask_id, self.owner)


class SwitchButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=re.compile(rf"mg:switch:(?P<emotion>[a-z_-]{{1,40}}):(?P<sid>{_SID})$")):
    """"Not quite? contempt": the preview's request read as another feeling."""

    def __init__(self, emotion: str, session_id: str) -> None:
        super().__init__(
            discord.ui.Button(label=f"or {emotion}", style=discord.ButtonStyle.secondary, row=1,
                              custom_id=f"mg:switch:{emotion}:{session_id}")
        )
        self.emotion, self.session_id = emotion, session_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> SwitchButton:
        return cls(match["emotion"], match["sid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).switch_click(interaction, self.session_id, self.emotion)


class OtherFeelingSelect(discord.ui.DynamicItem[discord.ui.Select], template=re.compile(rf"mg:other:(?P<sid>{_SID})$")):
    """"Another feeling…": any feeling the switches do not offer, one pick away."""

    def __init__(self, session_id: str, feelings: tuple[str, ...] = ()) -> None:
        super().__init__(
            discord.ui.Select(placeholder="Another feeling…", row=2, custom_id=f"mg:other:{session_id}",
                              options=_feeling_options(feelings))
        )
        self.session_id = session_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select,
                             match: re.Match[str], /) -> OtherFeelingSelect:
        return cls(match["sid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).switch_click(interaction, self.session_id, _picked(interaction))


class OtherChoiceSelect(discord.ui.DynamicItem[discord.ui.Select],
                        template=re.compile(rf"mg:pickother:(?P<ask>{_SID})$")):
    """A "did you mean"'s "Another feeling…": the words asked about, as any other feeling."""

    def __init__(self, ask_id: str, feelings: tuple[str, ...] = ()) -> None:
        super().__init__(
            discord.ui.Select(placeholder="Another feeling…", row=4, custom_id=f"mg:pickother:{ask_id}",
                              options=_feeling_options(feelings))
        )
        self.ask_id = ask_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select,
                             match: re.Match[str], /) -> OtherChoiceSelect:
        return cls(match["ask"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).choice_click(interaction, _picked(interaction), self.ask_id)


def _feeling_options(feelings: tuple[str, ...]) -> list[discord.SelectOption]:
    """A menu's options; a placeholder when rebuilt from a click (its options are not needed)."""
    return [discord.SelectOption(label=e, value=e) for e in feelings[:25]] or [discord.SelectOption(label="…", value="")]


def _picked(interaction: discord.Interaction) -> str:
    """The value picked in a select menu's interaction ("" if none)."""
    values = (interaction.data or {}).get("values") or [""]
    return str(values[0])[:40]


class DismissButton(discord.ui.DynamicItem[discord.ui.Button], template=r"mg:dismiss$"):
    def __init__(self) -> None:
        super().__init__(discord.ui.Button(label="Dismiss", style=discord.ButtonStyle.secondary, custom_id="mg:dismiss"))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> DismissButton:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        if interaction.message is not None:
            await interaction.delete_original_response()


class UndoButton(discord.ui.DynamicItem[discord.ui.Button], template=r"mg:undo:(?P<post>\d{1,18})$"):
    def __init__(self, post_id: int) -> None:
        super().__init__(discord.ui.Button(label="Undo", style=discord.ButtonStyle.secondary,
                                           custom_id=f"mg:undo:{post_id}"))
        self.post_id = post_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> UndoButton:
        return cls(int(match["post"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _clicks(interaction).undo_click(interaction, self.post_id)


DYNAMIC_ITEMS = (PreviewButton, VoteButton, PollButton, ChoiceButton, SwitchButton, OtherFeelingSelect,
                 OtherChoiceSelect, DismissButton, UndoButton)
