"""Slack and Discord message markup -> the plain text a person saw, before the core reads it.

The core (and `bot.intent`) take already-clean text: what the user typed, with emoji as
emoji. Each platform's wire format is its adapter's business, so the adapters call these on
a `/gif` request, a mention or a watched message before handing it to the core:

- Slack: ``<@U1>``, ``<!here>`` and ``<!subteam^S1>`` go; ``<#C1|general>`` -> ``#general``
  (a message of mentions alone -> ``@mention``, which the core knows for one);
  ``<https://x|label>`` -> ``label``; ``<https://x>`` -> the URL; ``&amp; &lt; &gt;`` are
  unescaped; ``:joy:`` shortcodes (Slack sends them for every emoji, skin tones as
  ``::skin-tone-2:``) -> the emoji.
- Discord: ``<@1>``, ``<@!1>``, ``<@&1>``, ``<#1>``, ``<t:1:R>`` and slash-command mentions go;
  custom emoji ``<:pepe_sad:1>`` -> its name as words ("pepe sad"), the only reading a
  custom emoji has.

And one way back: the core writes Slack's markup (``*bold*``, ``_italics_``, ```code```), which
Discord reads differently (``*x*`` is italics there), so `discord_markup` turns its bold into
Discord's before a message leaves.
"""

from __future__ import annotations

import re

from bot.intent_lexicon import SHORTCODES  # the shortcodes whose names would read wrong as words

_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^>|]*)(?:\|([^>]*))?>")
_SLACK_CHANNEL = re.compile(r"<#[A-Z0-9]+(?:\|([^>]*))?>")
_SLACK_ENTITY = re.compile(r"<[@!][^>]*>")  # users, @here/@channel, user groups, dates
_SKIN_TONE = re.compile(r":skin-tone-\d:")
_SHORTCODE = re.compile(r":([a-z0-9_+\-]{1,40}):")

_SPACES = re.compile(r"[ \t]{2,}")  # runs left by a removal; line breaks stay (code blocks)

_DISCORD_EMOJI = re.compile(r"<a?:([A-Za-z0-9_~]+):\d+>")
_DISCORD_ENTITY = re.compile(r"<(?:@[!&]?|#|t:|/[^:>]+:)\d+(?::[A-Za-z])?>")


# A code span first, so a `*` inside code is never read as bold; then Slack's *bold*: one line,
# no space just inside the stars, not part of a word (2*3*4) and not already Discord's **bold**.
_CODE_OR_BOLD = re.compile(r"(```.*?```|`[^`\n]*`)|(?<![\w*\\])\*([^\s*](?:[^*\n]*[^\s*])?)\*(?![\w*])",
                           re.DOTALL)


def _shortcode(m: re.Match[str]) -> str:
    name = m.group(1)
    return " " + SHORTCODES.get(name, name.replace("_", " ")) + " "


def slack_plain(text: str | None) -> str:
    """A Slack message's text (a slash command, a mention, a channel message) as plain text."""
    text = text or ""
    if text.strip() and not _SLACK_ENTITY.sub("", _SLACK_CHANNEL.sub("", text)).strip():
        # Nothing but mentions: the core answers "I only saw mentions" (a bare @name is one to
        # it), as it does on Discord; "#general" alone would read as a word to find GIFs for.
        return "@mention"
    text = _SLACK_LINK.sub(lambda m: " " + (m.group(2) or m.group(1)) + " ", text)
    text = _SLACK_CHANNEL.sub(lambda m: " #" + m.group(1) + " " if m.group(1) else " ", text)
    text = _SLACK_ENTITY.sub(" ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")  # all Slack escapes
    text = _SKIN_TONE.sub("", text)
    text = _SHORTCODE.sub(_shortcode, text)
    return _SPACES.sub(" ", text).strip()


def discord_plain(text: str | None) -> str:
    """A Discord message or slash-command option as plain text."""
    text = text or ""
    text = _DISCORD_EMOJI.sub(lambda m: " " + m.group(1).replace("_", " ") + " ", text)
    text = _DISCORD_ENTITY.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def discord_markup(text: str) -> str:
    """The core's Slack-style text in Discord's markdown: ``*bold*`` -> ``**bold**`` (a single
    star is italics on Discord, so "Did you mean *relief*?" would lose its emphasis). Code,
    ``_italics_`` and ``**bold**`` already in Discord's form are left as they are."""
    return _CODE_OR_BOLD.sub(lambda m: m.group(1) or f"**{m.group(2)}**", text)
