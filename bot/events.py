"""Platform-neutral events between the adapters and the bot core.

Adapters (Slack, Discord, the web playground, the test backend) translate platform payloads
into these dataclasses, call `bot.core.BotCore`, and render the `Reply` they get back. No
platform type crosses this line, so one core serves every platform (opsdroid's events,
errbot's backends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ReplyKind = Literal[
    "preview",  # a private preview with Send / Shuffle / Cancel
    "help",  # empty request: the 17 emotions
    "did_you_mean",  # low confidence: choices to click
    "posted",  # Send: the adapter now posts `post` publicly
    "not_posted",  # the platform refused that post (the adapter said why): nothing was sent
    "cancelled",  # Cancel: remove the preview
    "undone",  # Undo after a Send: the adapter deletes the public post (`message_ref`)
    "poll",  # "which is more X?"
    "ack",  # a vote / poll answer was taken (text says so, may be empty)
    "cooldown",  # too fast; polite text
    "expired",  # the preview or poll is no longer valid (timed out, gone)
    "closed",  # an earlier click already closed it (sent, answered, cancelled): its message
               # was replaced by that click's answer, so this one is a private note beside it
    "forbidden",  # someone else's preview, or an admin command by a non-admin
    "exhausted",  # shuffle ran out of GIFs
    "empty_pool",  # nothing to show for this emotion in this channel
    "error",  # bad input; text says what
]

PLATFORMS = ("slack", "discord", "web")  # every chat surface an Actor comes from
SIM_PLATFORM = "sim"  # the simulator's and the demo's virtual users (bot.simulate)
# The operator's own surfaces: the web page (behind the operator's password) and the
# simulator. Slack and Discord admins are admins of one workspace, not of the installation.
OPERATOR_PLATFORMS = ("web", SIM_PLATFORM)


@dataclass(frozen=True)
class Actor:
    """Who did something, and where. Ids are the platform's own (never stored raw)."""

    platform: str  # "slack", "discord", "web", "test"
    workspace: str  # Slack team id, Discord guild id, "local"
    channel: str
    user_id: str
    display_name: str = ""
    is_admin: bool = False

    @property
    def pool_owner(self) -> str:
        """Whose pools this actor adds and which it sees (`scorer.pool_owners.may_see`): the
        operator's ("") on the web page and for the simulator's users, else its chat
        workspace's, "<platform>:<workspace>"."""
        if self.platform in OPERATOR_PLATFORMS:
            return ""
        return f"{self.platform}:{self.workspace}"


@dataclass(frozen=True)
class GifCard:
    """One GIF as an adapter needs it to render."""

    sha256: str
    emotion: str
    title: str
    source_url: str | None  # public URL when the GIF came from one
    local_path: Path  # the stored file
    bytes: int
    width: int
    height: int
    credit: str = ""  # attribution the provider asks for ("Powered By GIPHY · by @user")

    @property
    def alt_text(self) -> str:
        return self.title or f"a GIF of {self.emotion}"


@dataclass(frozen=True)
class PreviewView:
    session_id: str
    emotion: str
    query: str
    cards: tuple[GifCard, ...]  # 1, or 3 in "show 3" mode
    can_shuffle: bool
    confidence: float = 1.0
    # How the request was read, for every platform to show as is:
    # "Read as feeling: happiness (95%); topic: cat". Empty when there is nothing to add.
    interpretation: str = ""
    topic: str = ""  # the topic words GIFs matched ("cat"), empty for a feeling alone
    topic_only: bool = False  # no feeling was named: `emotion` is only the first GIF's clearest
    # Other feelings the request may mean, offered as one-click switches ("ugh": anger, or
    # contempt, disgust, sadness?): a sentence's second reading is often the one meant.
    alternatives: tuple[str, ...] = ()
    # Every other feeling, for an "Another feeling…" menu beside the switches: the one meant
    # is then always one pick away, and its Send teaches the workspace's words.
    more_feelings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What the preview is of: "happiness", "happiness · cat" or just "cat"."""
        if self.topic_only and self.topic:
            return self.topic
        return f"{self.emotion} · {self.topic}" if self.topic else self.emotion


@dataclass(frozen=True)
class PostView:
    post_id: int
    card: GifCard
    emotion: str
    requested_by: str  # the platform user id, for the "requested by @user" line
    topic: str = ""  # a request that named no feeling: its topic, shown instead of `emotion`

    @property
    def caption(self) -> str:
        """What the post says it was asked for: the feeling, or "topic: cat"."""
        return f"topic: {self.topic}" if self.topic else self.emotion


@dataclass(frozen=True)
class PollView:
    poll_id: str
    emotion: str
    left: GifCard
    right: GifCard


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    text: str = ""
    preview: PreviewView | None = None
    post: PostView | None = None
    poll: PollView | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)  # emotions for did_you_mean / help
    # did_you_mean: the question's id; its buttons carry it, so a pick opens a preview for
    # the words asked about (BotCore.choose), not for the feeling's name
    ask_id: str = ""
    # did_you_mean: every other feeling, for an "Another feeling…" menu beside the buttons
    more_choices: tuple[str, ...] = ()
    # undone: the platform's id of the public post to delete ("" if it was never attached)
    message_ref: str = ""


@dataclass(frozen=True)
class Answer:
    """The whole answer to a `/gif` request (`BotCore.request_with_poll`): the private reply
    and, now and then, a "which is more X?" poll to show after it."""

    reply: Reply
    poll: Reply | None = None


@dataclass(frozen=True)
class Published:
    """A Send carried through (`BotCore.send_and_publish`): the core's reply and the
    platform's id of the public post (None when it was not posted: see `reply`)."""

    reply: Reply
    message_ref: str | None = None


# What an adapter shows when the core gave no text of its own: one wording for every platform.
DEFAULT_TEXT: dict[str, str] = {
    "cancelled": "Cancelled.",
    "cooldown": "Easy there: one GIF at a time. Try again in a moment.",
    "expired": "That preview has expired. Ask again with `/gif`.",
    "closed": "That preview is closed.",
    "forbidden": "Only the person who asked can use these buttons.",
    "exhausted": "That's every GIF I have for this one. Try another word.",
    "empty_pool": "I have no GIFs for that here yet.",
    "error": "Sorry, I couldn't do that.",
    "not_posted": "That GIF could not be posted here, so nothing was sent.",
    "ack": "Thanks!",
}


# The public post's vote buttons, one wording on every platform (an emoji alone is no label
# for a screen reader or a voice command): Slack's and the playground's "👍 Fits", Discord's
# emoji beside the label.
VOTE_LABELS: dict[bool, tuple[str, str]] = {True: ("👍", "Fits"), False: ("👎", "Not really")}


_PROVIDER_USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def credit_line(attribution: dict | None) -> str:
    """The attribution a provider's terms ask for, one line for every adapter.

    GIPHY GIFs: "Powered By GIPHY", plus the uploader ("by @user") when GIPHY names one.
    The user name is checked again here, so no markup can reach a post through it.
    """
    if not isinstance(attribution, dict) or attribution.get("provider") != "giphy":
        return ""
    user = str(attribution.get("username") or "")
    return "Powered By GIPHY" + (f" · by @{user}" if _PROVIDER_USER.match(user) else "")


def gif_url(sha: str, public_url: str = "", suffix: str = ".gif") -> str:
    """A pool file's URL as moodgif serves it (`bot.adapters.web`'s `/gifs/{name}` route):
    relative for the web pages, absolute under `public_url` for chat platforms."""
    return f"{public_url.rstrip('/')}/gifs/{sha}{suffix}"


def reply_text(reply: Reply) -> str:
    return reply.text or DEFAULT_TEXT.get(reply.kind, "OK.")
