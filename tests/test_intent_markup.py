"""bot.adapters.markup: Slack and Discord markup becomes the plain text the user saw, so the
intent parser reads clean text (issue 13 point 4)."""

from __future__ import annotations

import pytest

from bot.adapters.markup import discord_markup, discord_plain, slack_plain
from bot.intent import IntentParser


@pytest.fixture(scope="module")
def lex() -> IntentParser:
    return IntentParser(use_embeddings=False)


@pytest.mark.parametrize(("wire", "plain"), [
    ("<@U123ABC> happy", "happy"),
    ("<@U123ABC|bob> so sad", "so sad"),
    ("<!here> <!channel> <!subteam^S1|@devs> yay", "yay"),
    ("see <#C42|general>", "see #general"),
    ("<#C42|general>", "@mention"),  # mentions alone: "I only saw mentions", as on Discord
    ("<@U1> <#C42|general> <!here>", "@mention"),
    ("<#C42> lol", "lol"),
    ("<https://x.example/a|the deploy> broke", "the deploy broke"),
    ("<https://x.example/a> lol", "https://x.example/a lol"),
    ("<mailto:a@b.example|mail me>", "mail me"),
    ("fish &amp; chips &lt;3", "fish & chips <3"),
    (":joy:", "😂"),
    (":thumbsup::skin-tone-3: nice", "👍 nice"),
    (":thinking_face:", "thinking face"),
    ("", ""),
    (None, ""),
])
def test_slack_plain(wire: str | None, plain: str) -> None:
    assert slack_plain(wire) == plain


@pytest.mark.parametrize(("wire", "plain"), [
    ("<@950000000000000001> happy", "happy"),
    ("<@!950000000000000001> <@&12345> yay", "yay"),
    ("<#123456789> lol", "lol"),
    ("<:pepe_sad:1234567>", "pepe sad"),
    ("<a:party_parrot:99> woo", "party parrot woo"),
    ("see you <t:1700000000:R>", "see you"),
    ("try </gif:1234567890>", "try"),
    ("ugh 😤", "ugh 😤"),
    (None, ""),
])
def test_discord_plain(wire: str | None, plain: str) -> None:
    assert discord_plain(wire) == plain


def test_line_breaks_survive_so_code_blocks_stay_code() -> None:
    assert slack_plain("```\nhappy\n``` <@U1>  ugh") == "```\nhappy\n``` ugh"


@pytest.mark.parametrize(("wire", "clean", "emotion"), [
    (":joy:", slack_plain, "amusement"),  # Slack's name for 😂, not the word "joy"
    (":sob: <@U1>", slack_plain, "sadness"),
    ("<@U1> <https://x.example|nailed it>", slack_plain, "pride"),
    ("<:pepe_sad:1234567>", discord_plain, "sadness"),
    ("<@!1> <a:rage_face:2>", discord_plain, "anger"),
])
def test_cleaned_markup_reads_as_the_user_meant(lex: IntentParser, wire, clean, emotion) -> None:
    assert lex.parse(clean(wire)).emotion == emotion


def test_a_lone_slack_channel_mention_is_a_mention_not_a_word(lex: IntentParser) -> None:
    """`/gif <#C0123|general>` answered "No general GIFs in this pool. Did you mean ...?"."""
    res = lex.parse(slack_plain("<#C0123|general>"))
    assert res.kind == "unknown" and res.reason.startswith("I only saw mentions")


def test_intent_drops_leftover_markup_without_reading_it(lex: IntentParser) -> None:
    # An adapter that did not clean never makes "U123ABC" or a channel id a word.
    res = lex.parse("<@U123ABC> <#C42|general>")
    assert res.emotion is None and res.kind == "unknown"


@pytest.mark.parametrize(("core", "discord"), [
    # Slack's *bold* is italics on Discord: "Did you mean *relief*?" lost its emphasis there
    ("Did you mean *relief*, *pride* or *joy*?", "Did you mean **relief**, **pride** or **joy**?"),
    ("Quick question: which is more *happiness*?", "Quick question: which is more **happiness**?"),
    ("*a*", "**a**"),
    ("already **bold** on Discord", "already **bold** on Discord"),
    ("_italics_ read the same on both", "_italics_ read the same on both"),
    ("code stays as typed: `a *b* c` and ```x *y*```", "code stays as typed: `a *b* c` and ```x *y*```"),
    ("2*3*4 is arithmetic", "2*3*4 is arithmetic"),
    ("a lone * star and * another", "a lone * star and * another"),
    ("not * spaced *", "not * spaced *"),
    ("*across\nlines*", "*across\nlines*"),
])
def test_the_cores_bold_is_discords_bold(core: str, discord: str) -> None:
    assert discord_markup(core) == discord
