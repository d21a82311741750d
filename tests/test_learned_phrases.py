"""A workspace's own words (bot.learned_phrases): a request is read the way the asker, or
people in the same workspace, sent the same words before. End to end through BotCore on
real databases; the parser is the lexicon alone, so its readings are fixed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from test_core import Env

from bot.learned_phrases import Learned, learned_feeling, phrase_key
from bot.topics import Reading
from scorer.emotions import INDEX
from scorer.store import ChatSession, session_scope


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


async def _pick_and_send(env: Env, who: str, words: str, emotion: str, workspace: str = "T1") -> None:
    """`who` asks for `words`, switches to `emotion` unless it is already shown, and sends."""
    actor = dataclasses.replace(env.actor(who), workspace=workspace)
    r = await env.core.request(actor, words)
    assert r.kind == "preview", r
    if r.preview.emotion != emotion:
        r = await env.core.switch(actor, r.preview.session_id, emotion)
        assert r.kind == "preview" and r.preview.emotion == emotion
    assert (await env.core.send(actor, r.preview.session_id)).kind == "posted"


def test_phrase_keys_ignore_case_punctuation_and_spacing_but_not_emoji() -> None:
    assert phrase_key("  Monday   again...!! ") == phrase_key("monday again") == "monday again"
    assert phrase_key("can't even") == phrase_key("CAN'T EVEN")
    assert phrase_key("ugh 😭") != phrase_key("ugh 😂")
    assert phrase_key("ab " * 300) == "ab"  # said again and again: once
    assert phrase_key(" ".join(f"w{i}" for i in range(300)))[-3:] != "299"  # the column's width
    assert len(phrase_key(" ".join(f"w{i}" for i in range(300)))) == 200
    # drawn out or repeated, the same request; digits and other words stay apart
    assert phrase_key("ughhh") == phrase_key("Ugh ugh UGH!!") == phrase_key("ugh") == "ugh"
    assert phrase_key("looool 😭😭😭") == phrase_key("lol 😭") == "lol 😭"
    assert phrase_key("soooo tired") == phrase_key("so tired") != phrase_key("tired")
    assert phrase_key("1000 comments") != phrase_key("10 comments")
    assert phrase_key("good morning") == "good morning"
    assert phrase_key("!!!") == ""


async def test_your_own_pick_for_the_same_words_is_remembered_for_you(env: Env) -> None:
    alice, bob = env.actor("alice"), env.actor("bob")
    assert (await env.core.request(bob, "monday again")).preview.emotion == "sadness"  # the parser
    await _pick_and_send(env, "alice", "monday again", "anger")

    r = await env.core.request(alice, "Monday again!!")
    assert r.preview.emotion == "anger"
    assert "your last pick for these words" in r.preview.interpretation
    assert r.preview.alternatives[0] == "sadness"  # the parser's reading, one click away
    assert r.preview.cards[0].sha256 in env.best(INDEX["anger"], 2)  # the best was just posted here
    hint = env.core.interpret("monday again", alice)
    assert hint.emotion == "anger" and env.core.interpret("monday again").emotion == "sadness"
    # one person's pick is theirs: the rest of the workspace still gets the parser's reading
    assert (await env.core.request(bob, "monday again")).preview.emotion == "sadness"

    env.now[0] += 60
    await _pick_and_send(env, "alice", "monday again", "contempt")  # her latest pick wins
    assert (await env.core.request(alice, "monday again")).preview.emotion == "contempt"


async def test_unsure_words_are_read_the_way_most_people_here_sent_them(settings, engine) -> None:
    env = Env(settings, engine)  # on SQLite and on PostgreSQL
    for who in ("alice", "bob"):
        await _pick_and_send(env, who, "ugh", "contempt")  # the parser reads anger, 45 %
    for _ in range(3):  # one person sending again and again counts once
        env.now[0] += 60
        await _pick_and_send(env, "mallory", "ugh", "disgust")

    r = await env.core.request(env.actor("carol"), "UGH.")
    assert r.preview.emotion == "contempt"
    assert "how 2 of 3 people here sent these words" in r.preview.interpretation
    assert r.preview.confidence == pytest.approx(3 / 5)  # (2 + 1) / (3 + 2)
    assert r.preview.alternatives[0] == "anger"
    # a Send from the learned preview counts like any other
    assert (await env.core.send(env.actor("carol"), r.preview.session_id)).kind == "posted"
    r = await env.core.request(env.actor("dan"), "ugh")
    assert "how 3 of 4 people" in r.preview.interpretation

    other = dataclasses.replace(env.actor("carol"), workspace="T2")
    assert (await env.core.request(other, "ugh")).preview.emotion == "anger"  # never across workspaces


async def test_a_shuffle_keeps_the_reading_its_preview_opened_with(env: Env) -> None:
    """Others sending the same words as another feeling while a preview is open once made its
    Shuffle say "Read as feeling: contempt (how 2 of 2 people...); you picked anger": nobody
    picked anything, the person only shuffled."""
    opened = await env.core.request(env.actor("zoe"), "ugh")
    assert opened.preview.emotion == "anger" and "picked" not in opened.preview.interpretation
    for who in ("alice", "bob"):
        await _pick_and_send(env, who, "ugh", "contempt")
    again = await env.core.shuffle(env.actor("zoe"), opened.preview.session_id)
    assert again.kind == "preview" and again.preview.emotion == "anger"
    assert "picked" not in again.preview.interpretation, again.preview.interpretation
    switched = await env.core.switch(env.actor("zoe"), again.preview.session_id, "disgust")
    shuffled = await env.core.shuffle(env.actor("zoe"), switched.preview.session_id)
    assert "you picked disgust" in shuffled.preview.interpretation  # a real pick still says so


async def test_a_sure_reading_is_not_overruled_and_a_tie_changes_nothing(env: Env) -> None:
    for who in ("alice", "bob", "cy"):
        await _pick_and_send(env, who, "happy", "sadness")  # a prank: "happy" is 95 % sure
    r = await env.core.request(env.actor("dan"), "happy")
    assert r.preview.emotion == "happiness" and "people here" not in r.preview.interpretation
    assert (await env.core.request(env.actor("alice"), "happy")).preview.emotion == "happiness"  # hers too

    await _pick_and_send(env, "alice", "meh", "sadness")
    await _pick_and_send(env, "bob", "meh", "contentment")
    assert (await env.core.request(env.actor("dan"), "meh")).preview.emotion == "contempt"  # the parser


async def test_a_channel_may_turn_it_off_and_old_sends_are_forgotten(env: Env) -> None:
    admin = env.actor("ada", admin=True)
    off = await env.core.admin(admin, "channel", ["phrases", "off"])
    assert off.text == "phrases for this channel is now off."
    for who in ("alice", "bob"):
        await _pick_and_send(env, who, "ugh", "contempt")
    with session_scope(env.engine) as s:  # a channel with it off keeps no words for it
        assert {k for (k,) in s.query(ChatSession.query_key)} == {""}
    assert (await env.core.request(env.actor("carol"), "ugh")).preview.emotion == "anger"

    await env.core.admin(admin, "channel", ["phrases", "reset"])
    for who in ("alice", "bob"):
        await _pick_and_send(env, who, "ugh", "contempt")
    assert (await env.core.request(env.actor("carol"), "ugh")).preview.emotion == "contempt"
    env.now[0] += (env.settings.chat.phrase_memory_days + 1) * 86400
    assert (await env.core.request(env.actor("carol"), "ugh")).preview.emotion == "anger"


def test_the_rule_itself() -> None:
    from bot.intent import Intent

    unsure = Reading(Intent("anger", 0.45, [("contempt", 0.3)]))
    sure = Reading(Intent("happiness", 0.95, []))
    a, s, d = INDEX["anger"], INDEX["sadness"], INDEX["disgust"]
    assert learned_feeling({}, "me", unsure, sure=0.9) is None
    assert learned_feeling({"x": s}, "me", unsure, sure=0.9) is None  # one other person
    assert learned_feeling({"x": s, "y": s, "z": d}, "me", unsure, sure=0.9) == Learned("sadness", 2, 3, False)
    assert learned_feeling({"x": s, "y": s}, "me", sure, sure=0.9) is None
    assert learned_feeling({"me": d, "x": s, "y": s}, "me", sure, sure=0.9) is None
    assert learned_feeling({"me": d, "x": s, "y": s}, "me", unsure, sure=0.9) == Learned("disgust", 1, 3, True)
    assert learned_feeling({"x": s, "y": s, "z": a, "w": a}, "me", unsure, sure=0.9) is None  # a tie


async def test_a_did_you_mean_pick_opens_a_preview_for_the_words_asked_about(env: Env) -> None:
    alice, bob = env.actor("alice"), env.actor("bob")
    asked = await env.core.request(alice, "welp")
    assert asked.kind == "did_you_mean" and asked.ask_id
    assert asked.choices == ("sadness", "embarrassment", "contempt")
    assert (await env.core.choose(bob, asked.ask_id, "sadness")).kind == "forbidden"
    assert (await env.core.choose(alice, asked.ask_id, "smugness")).kind == "error"

    r = await env.core.choose(alice, asked.ask_id, "embarrassment")
    assert r.kind == "preview" and r.preview.query == "welp" and r.preview.emotion == "embarrassment"
    assert r.preview.interpretation == "You picked embarrassment"
    assert r.preview.alternatives == ("sadness", "contempt")  # the question's other guesses
    second = await env.core.choose(alice, asked.ask_id, "sadness")  # a double click: answered
    assert second.kind == "closed" and second.text == "That question was already answered."
    assert (await env.core.send(alice, r.preview.session_id)).kind == "posted"
    again = await env.core.request(alice, "welp")
    assert again.kind == "preview" and again.preview.emotion == "embarrassment"

    # an old question's button (or a forged id) answers as `/gif <feeling>` did before
    old = await env.core.request(bob, "welp")
    env.now[0] += env.settings.chat.preview_ttl_s + 1
    late = await env.core.choose(bob, old.ask_id, "contempt")
    assert late.kind == "preview" and late.preview.query == "contempt"
    assert (await env.core.choose(bob, "no-such-question", "sadness")).preview.query == "sadness"


async def test_closed_previews_forget_their_words_once_the_memory_has_passed(env: Env) -> None:
    from bot.serve import words_kept
    from bot.session import forget_old_words, to_datetime

    await _pick_and_send(env, "alice", "ugh", "contempt")  # one preview closed by the switch, one sent
    await env.core.request(env.actor("bob"), "monday again")  # still open
    now = to_datetime(env.now[0])
    kept = words_kept(env.settings)
    assert kept.days == env.settings.chat.phrase_memory_days
    assert forget_old_words(env.engine, now - kept) == 0  # too recent
    later = now + kept + dt.timedelta(seconds=1)
    assert forget_old_words(env.engine, later) == 2
    with session_scope(env.engine) as s:
        rows = sorted((st, q, k) for st, q, k in s.query(ChatSession.state, ChatSession.query,
                                                         ChatSession.query_key))
    assert rows == [("open", "monday again", "monday again"), ("sent", "", ""), ("switched", "", "")]
    assert forget_old_words(env.engine, later, since=later) == 0  # the next slice is empty


async def test_an_admin_sees_what_the_workspace_taught_and_can_forget_it(env: Env) -> None:
    admin = env.actor("ada", admin=True)
    assert "No words read the workspace's way yet" in (await env.core.admin(admin, "phrases", [])).text
    for who in ("alice", "bob"):
        await _pick_and_send(env, who, "ugh", "contempt")
    await _pick_and_send(env, "cy", "ugh", "disgust")
    await _pick_and_send(env, "cy", "monday again", "anger")  # one person: theirs alone, not listed
    for who in ("alice", "bob"):  # a sure feeling word teaches nothing: not listed either
        await _pick_and_send(env, who, "happy", "happiness")
    listed = (await env.core.admin(admin, "phrases", [])).text
    assert "“ugh” → contempt (2 of 3 people)" in listed and "monday" not in listed
    assert "happy" not in listed
    assert (await env.core.admin(env.actor("alice"), "phrases", [])).kind == "forbidden"

    gone = await env.core.admin(admin, "phrases", ["forget", "UGH!"])
    assert gone.text.startswith("Forgot “ugh”")
    assert "Nothing was learned" in (await env.core.admin(admin, "phrases", ["forget", "ugh"])).text
    assert (await env.core.request(env.actor("dan"), "ugh")).preview.emotion == "anger"
    assert (await env.core.request(env.actor("cy"), "ugh")).preview.emotion == "anger"  # own picks too
    assert (await env.core.admin(admin, "phrases", ["nonsense"])).kind == "error"


async def test_words_not_read_at_all_are_learned_from_the_feeling_picked(env: Env) -> None:
    alice, bob = env.actor("alice"), env.actor("bob")
    asked = await env.core.request(alice, "yeet")  # the parser knows no feeling in it
    assert asked.kind == "help" and asked.ask_id and len(asked.choices) == 17
    r = await env.core.choose(alice, asked.ask_id, "excitement")
    assert r.preview.query == "yeet" and r.preview.interpretation == "You picked excitement"
    assert (await env.core.send(alice, r.preview.session_id)).kind == "posted"
    again = await env.core.request(alice, "Yeet!")
    assert again.kind == "preview" and again.preview.emotion == "excitement"
    assert "your last pick for these words" in again.preview.interpretation
    assert again.preview.alternatives == ()
    assert len(again.preview.more_feelings) == 16  # changing your mind stays one pick away
    assert (await env.core.request(bob, "yeet")).kind == "help"  # one person's pick is theirs

    assert (await env.core.request(alice, "")).ask_id == ""  # the plain help asks about nothing


async def test_drawn_out_words_are_the_same_words(env: Env) -> None:
    await _pick_and_send(env, "alice", "monday again", "anger")
    r = await env.core.request(env.actor("alice"), "MONDAYYYY again again")
    assert r.preview.emotion == "anger" and "your last pick" in r.preview.interpretation
