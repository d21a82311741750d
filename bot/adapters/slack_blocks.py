"""Block Kit rendering of the bot core's replies for Slack.

Pure functions: a `Reply` (plus how to reference each GIF image) in, a Slack message
payload (`text` + `blocks`) out. No Slack client, no I/O, so they are easy to read and test.

Button values carry the state Slack hands back to us on click (session id, post id, poll
id); Slack keeps a value up to 2,000 characters, ours are a few dozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.events import VOTE_LABELS, GifCard, PollView, PostView, PreviewView, Reply, reply_text

# action_ids the listeners in bot/adapters/slack_listeners/ match on
SEND = "moodgif_send"
SHUFFLE = "moodgif_shuffle"
CANCEL = "moodgif_cancel"
CHOOSE = "moodgif_choose"  # + ":<emotion>" (action_ids must be unique within a block)
SWITCH = "moodgif_switch"  # + ":<emotion>"; value "<session id>|<emotion>"
OTHER = "moodgif_other"  # the "Another feeling…" menu; each option's value "<session id>|<emotion>"
CHOOSE_OTHER = "moodgif_choose_other"  # a "did you mean"'s menu; each option's value "<question id>|<emotion>"
VOTE_UP = "moodgif_vote_up"
VOTE_DOWN = "moodgif_vote_down"
POLL = "moodgif_poll"  # + ":left" / ":right" / ":neither"
DISMISS = "moodgif_dismiss"
UNDO = "moodgif_undo"  # value: the post id
FOR_MESSAGE = "moodgif_gif_for_message"  # the message shortcut's callback_id (deploy/slack-manifest.yml)

# One image reference per GIF: {"image_url": "https://..."} or {"slack_file": {"id": "F..."}}
ImageRef = Mapping[str, Any]

MAX_BUTTONS_PER_BLOCK = 25  # Slack's limit for one actions block
MAX_ALT_TEXT = 2000


def esc(text: str) -> str:
    """Slack's three control characters escaped: a GIF title, a query or a reply can then
    never become a mention (`<!channel>`, `<@U...>`) or a disguised link (`<https://x|y>`)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": esc(text)}}


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": esc(label), "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def image_block(card: GifCard, ref: ImageRef, title: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "image", "alt_text": esc(card.alt_text)[:MAX_ALT_TEXT], **ref}
    if card.credit:  # the provider's attribution goes wherever its GIF is shown
        title = f"{title[: 1990 - len(card.credit)]} · {card.credit}" if title else card.credit
    if title:
        block["title"] = {"type": "plain_text", "text": esc(title)[:2000], "emoji": True}
    return block


def send_value(session_id: str, sha: str | None = None) -> str:
    return f"{session_id}|{sha}" if sha else session_id


def parse_send_value(value: str) -> tuple[str, str | None]:
    session_id, _, sha = value.partition("|")
    return session_id, (sha or None)


def preview_message(preview: PreviewView, refs: Mapping[str, ImageRef], text: str = "") -> dict[str, Any]:
    """The private preview: the GIF(s), then Send / Shuffle / Cancel."""
    default = f"*{preview.label}* for “{preview.query}”" if preview.query else f"*{preview.label}*"
    heading = text or default
    blocks: list[dict[str, Any]] = [_text(heading)]
    if preview.interpretation:  # how the request was read (bot.topics.Reading.describe)
        blocks.append({"type": "context", "block_id": "reading",
                       "elements": [{"type": "mrkdwn", "text": esc(preview.interpretation)}]})
    sid = preview.session_id
    if len(preview.cards) == 1:
        card = preview.cards[0]
        blocks.append(image_block(card, refs[card.sha256], card.title or None))
        buttons = [_button("Send", SEND, send_value(sid), "primary")]
    else:
        # "show 3" mode: each GIF gets its own Send button.
        for i, card in enumerate(preview.cards, 1):
            blocks.append(image_block(card, refs[card.sha256], card.title or f"#{i}"))
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"send_{i}",
                    "elements": [_button(f"Send #{i}", SEND, send_value(sid, card.sha256), "primary")],
                }
            )
        buttons = []
    if preview.can_shuffle:
        buttons.append(_button("Shuffle", SHUFFLE, sid))
    buttons.append(_button("Cancel", CANCEL, sid))
    blocks.append({"type": "actions", "block_id": "preview_actions", "elements": buttons})
    blocks += _switch_blocks(preview)
    return {"text": f"GIF preview: {esc(preview.label)} (only you can see this)", "blocks": blocks}


def _menu(action_id: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    """An "Another feeling…" select menu: (label, value) options."""
    return {"type": "static_select", "action_id": action_id,
            "placeholder": {"type": "plain_text", "text": "Another feeling…"},
            "options": [{"text": {"type": "plain_text", "text": label}, "value": value}
                        for label, value in options]}


def _switch_blocks(preview: PreviewView) -> list[dict[str, Any]]:
    """The request's other likely feelings as buttons, and every other one in a menu."""
    if not preview.alternatives and not preview.more_feelings:
        return []
    sid = preview.session_id
    elements: list[dict[str, Any]] = [_button(e, f"{SWITCH}:{e}", f"{sid}|{e}") for e in preview.alternatives]
    if preview.more_feelings:
        elements.append(_menu(OTHER, [(e, f"{sid}|{e}") for e in preview.more_feelings]))
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": "Not quite? Switch to:"}]},
            {"type": "actions", "block_id": "switch_actions", "elements": elements}]


def _choice_value(reply: Reply, emotion: str) -> str:
    """A choice button's value: `ask_id|emotion` for a "did you mean" (the pick opens a preview
    for the words asked about), the emotion alone for the help's list."""
    return f"{reply.ask_id}|{emotion}" if reply.ask_id else emotion


def choices_message(reply: Reply) -> dict[str, Any]:
    """Help (empty request) or "did you mean": the emotions as buttons to click."""
    text = reply.text or ("Did you mean:" if reply.kind == "did_you_mean" else "Pick a feeling:")
    blocks: list[dict[str, Any]] = [_text(text)]
    choices = list(reply.choices)
    for start in range(0, len(choices), MAX_BUTTONS_PER_BLOCK):
        chunk = choices[start : start + MAX_BUTTONS_PER_BLOCK]
        blocks.append(
            {
                "type": "actions",
                "block_id": f"choices_{start}",
                "elements": [_button(c, f"{CHOOSE}:{c}", _choice_value(reply, c)) for c in chunk],
            }
        )
    if reply.ask_id and reply.more_choices:  # every other feeling, one pick away
        blocks.append({"type": "actions", "block_id": "choose_other", "elements": [_menu(
            CHOOSE_OTHER, [(e, _choice_value(reply, e)) for e in reply.more_choices])]})
    return {"text": esc(text), "blocks": blocks}


def post_message(post: PostView, ref: ImageRef) -> dict[str, Any]:
    """The public post: the GIF, "requested by @user", and 👍 / 👎."""
    card = post.card
    return {
        "text": f"{esc(card.alt_text)} (requested by <@{esc(post.requested_by)}>)"
                + (f" · {esc(card.credit)}" if card.credit else ""),
        "blocks": [
            image_block(card, ref, card.title or None),
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn",
                     "text": f"requested by <@{esc(post.requested_by)}> · _{esc(post.caption)}_"}
                ],
            },
            {
                "type": "actions",
                "block_id": "vote_actions",
                "elements": [
                    _button(" ".join(VOTE_LABELS[True]), VOTE_UP, str(post.post_id)),
                    _button(" ".join(VOTE_LABELS[False]), VOTE_DOWN, str(post.post_id)),
                ],
            },
        ],
    }


def poll_message(poll: PollView, refs: Mapping[str, ImageRef], text: str = "") -> dict[str, Any]:
    """"Which is more X?": two GIFs, then left / right / neither."""
    question = text or f"Which is more *{poll.emotion}*?"
    pid = poll.poll_id
    return {
        "text": f"Which is more {esc(poll.emotion)}?",
        "blocks": [
            _text(question),
            image_block(poll.left, refs[poll.left.sha256], "Left"),
            image_block(poll.right, refs[poll.right.sha256], "Right"),
            {
                "type": "actions",
                "block_id": "poll_actions",
                "elements": [
                    _button("Left", f"{POLL}:left", pid),
                    _button("Right", f"{POLL}:right", pid),
                    _button("Neither", f"{POLL}:neither", pid),
                ],
            },
        ],
    }


def text_message(text: str, *, dismissible: bool = False) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [_text(text)]
    if dismissible:
        blocks.append({"type": "actions", "elements": [_button("Dismiss", DISMISS, "x")]})
    return {"text": esc(text), "blocks": blocks}


def sent_message(post_id: int) -> dict[str, Any]:
    """What the sender's preview turns into once the GIF is out: Undo takes the Send back
    (`BotCore.undo`), Dismiss just closes this note."""
    text = "Sent ✓"
    return {"text": text, "blocks": [_text(text), {"type": "actions", "elements": [
        _button("Undo", UNDO, str(post_id)), _button("Dismiss", DISMISS, "x")]}]}


def cards_of(reply: Reply) -> list[GifCard]:
    """Every GIF a reply shows, so the caller can resolve their image references first."""
    if reply.preview is not None:
        return list(reply.preview.cards)
    if reply.poll is not None:
        return [reply.poll.left, reply.poll.right]
    if reply.post is not None:
        return [reply.post.card]
    return []




def render(reply: Reply, refs: Mapping[str, ImageRef], *, dismissible: bool = False) -> dict[str, Any]:
    """Any private reply as a message payload (posts are rendered by `post_message`)."""
    if reply.preview is not None:  # a preview, or "exhausted" with the last one still shown
        return preview_message(reply.preview, refs, reply.text)
    if reply.kind in ("help", "did_you_mean") and reply.choices:
        return choices_message(reply)
    if reply.kind == "poll" and reply.poll is not None:
        return poll_message(reply.poll, refs, reply.text)
    return text_message(reply_text(reply), dismissible=dismissible)
