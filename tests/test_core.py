"""BotCore end to end on a real database: previews, sends, votes, polls, admin, bad input."""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo
from sqlalchemy import select

from bot.core import BotCore, clean_text
from bot.events import Actor
from bot.flows.offers import WATCH_MIN_CONFIDENCE
from bot.intent import IntentParser
from scorer.emotions import INDEX, NAMES
from scorer.store import ChatSession, Comparison, Post, session_scope
from training.comparisons import reference_id

DATA = Path(__file__).parent / "data"

HAPPY = INDEX["happiness"]


class Env:
    def __init__(self, settings, engine, *, scored: bool = True, parser: IntentParser | None = None,
                 **overrides) -> None:
        self.settings = settings.override(**{
            "cooldown_s": 0.0, "poll_share": 0.0, "exploration": "none", **overrides})
        self.engine = engine
        self.pool = ingest_demo(self.settings, engine, demo_manifest())
        self.scores = designed_scores(len(self.pool.shas))
        if scored:
            add_model_version(engine, self.pool.shas, self.scores)
        self.now = [time.time()]
        self.core = BotCore(self.settings, engine,
                            intent_parser=parser or IntentParser(self.settings, use_embeddings=False),
                            clock=lambda: self.now[0], seed=1)

    def actor(self, user: str = "alice", channel: str = "general", admin: bool = False) -> Actor:
        return Actor("test", "T1", channel, user, user.title(), is_admin=admin)

    def best(self, emotion: int = HAPPY, n: int = 3) -> list[str]:
        order = np.argsort(-self.scores[:, emotion], kind="stable")
        return [self.pool.shas[i] for i in order[:n]]

    def comparisons(self) -> list[Comparison]:
        with session_scope(self.engine) as s:
            return list(s.scalars(select(Comparison).order_by(Comparison.id)))


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


async def test_request_shuffle_send_vote_lands_in_the_ledger(settings, engine) -> None:
    env = Env(settings, engine)  # on SQLite and on PostgreSQL
    alice = env.actor()
    r = await env.core.request(alice, "/gif happy")
    assert r.kind == "preview" and r.preview.emotion == "happiness"
    assert [c.sha256 for c in r.preview.cards] == env.best(n=1)
    assert r.preview.cards[0].local_path.is_file() and r.preview.can_shuffle
    sid = r.preview.session_id
    seen = [r.preview.cards[0].sha256]
    for _ in range(2):
        r = await env.core.shuffle(alice, sid)
        assert r.kind == "preview"
        seen.append(r.preview.cards[0].sha256)
    assert seen == env.best(n=3)  # greedy: the model's top three, never a repeat

    posted = await env.core.send(alice, sid)
    assert posted.kind == "posted" and posted.post.card.sha256 == seen[-1]
    assert posted.post.requested_by == "alice" and posted.post.emotion == "happiness"
    again = await env.core.send(alice, sid)  # a double click: a note beside "Sent"
    assert again.kind == "closed" and again.text == "That preview was already sent."
    sends = env.comparisons()
    assert sorted((c.winner, c.loser) for c in sends) == sorted(
        [(seen[2], seen[0]), (seen[2], seen[1])])
    assert all(c.source == "send" and c.emotion == HAPPY and c.post_id == posted.post.post_id
               for c in sends)
    assert all(c.who and c.who != "alice" for c in sends)  # hashed, never the raw id

    pid = posted.post.post_id
    bob = env.actor("bob")
    assert (await env.core.vote(bob, post_id=pid, up=True)).text.startswith("Thanks")
    assert (await env.core.vote(bob, post_id=pid, up=True)).text == "Already counted."
    assert (await env.core.vote(bob, post_id=pid, up=False)).text.startswith("Changed")
    votes = [c for c in env.comparisons() if c.source == "vote"]
    assert [(v.winner, v.loser) for v in votes] == [(reference_id(HAPPY), seen[2])]
    assert (await env.core.vote(bob, post_id=pid, up=None)).text == "Your vote was removed."
    assert [c for c in env.comparisons() if c.source == "vote"] == []
    assert len(env.comparisons()) == 2


async def test_someone_elses_or_an_expired_preview_records_nothing(env: Env) -> None:
    alice, bob = env.actor("alice"), env.actor("bob")
    r = await env.core.request(alice, "happy")
    sid = r.preview.session_id
    for call in (env.core.shuffle(bob, sid), env.core.send(bob, sid), env.core.cancel(bob, sid)):
        assert (await call).kind == "forbidden"
    other_platform = dataclasses.replace(alice, platform="web")
    assert (await env.core.send(other_platform, sid)).kind == "forbidden"
    assert (await env.core.send(alice, "no-such-session")).kind == "expired"
    env.now[0] += env.settings.chat.preview_ttl_s + 1
    assert (await env.core.send(alice, sid)).kind == "expired"
    assert (await env.core.shuffle(alice, sid)).kind == "expired"
    assert env.comparisons() == []
    with session_scope(env.engine) as s:
        assert s.query(Post).count() == 0
        assert s.get(ChatSession, sid).state == "expired"


async def test_cancel_and_a_send_after_it(env: Env) -> None:
    alice = env.actor()
    sid = (await env.core.request(alice, "happy")).preview.session_id
    assert (await env.core.cancel(alice, sid)).kind == "cancelled"
    assert (await env.core.cancel(alice, sid)).kind == "cancelled"  # idempotent
    assert (await env.core.send(alice, sid)).kind == "closed"
    assert env.comparisons() == []


async def test_send_refuses_a_gif_that_was_not_shown(env: Env) -> None:
    alice = env.actor()
    r = await env.core.request(alice, "happy")
    stranger = next(s for s in env.pool.shas if s != r.preview.cards[0].sha256)
    assert (await env.core.send(alice, r.preview.session_id, stranger)).kind == "error"
    assert (await env.core.send(alice, r.preview.session_id)).kind == "posted"


async def test_an_unsure_reading_offers_its_other_feelings_and_a_switch_keeps_the_request(
        sqlite_settings, sqlite_engine) -> None:
    env = Env(sqlite_settings, sqlite_engine, cooldown_s=30.0)  # a switch is not a new request
    alice, bob = env.actor("alice"), env.actor("bob")
    assert (await env.core.request(env.actor("cy"), "phew")).preview.alternatives == ()  # sure
    r = await env.core.request(alice, "ugh")  # anger 45 %, contempt 30 %, disgust and sadness 10 %
    assert r.preview.emotion == "anger"
    assert r.preview.alternatives == ("contempt", "disgust", "sadness")
    old = r.preview.session_id
    assert (await env.core.switch(bob, old, "contempt")).kind == "forbidden"
    assert (await env.core.switch(alice, old, "smugness")).kind == "error"

    r = await env.core.switch(alice, old, "contempt")
    assert r.kind == "preview" and r.preview.emotion == "contempt" and r.preview.query == "ugh"
    assert r.preview.alternatives[0] == "anger"  # the way back
    assert "contempt" not in r.preview.alternatives
    assert r.preview.interpretation.endswith("you picked contempt")
    assert r.preview.cards[0].sha256 == env.best(INDEX["contempt"], 1)[0]
    closed = await env.core.shuffle(alice, old)  # the old preview is closed, and says why
    assert closed.kind == "closed" and "switched to another feeling" in closed.text
    assert (await env.core.switch(alice, old, "disgust")).kind == "closed"
    sid = r.preview.session_id
    second = (await env.core.shuffle(alice, sid)).preview
    assert second.emotion == "contempt" and second.alternatives == r.preview.alternatives

    posted = await env.core.send(alice, sid)
    assert posted.kind == "posted" and posted.post.emotion == "contempt"
    sends = env.comparisons()
    assert len(sends) == 1 and sends[0].emotion == INDEX["contempt"]
    assert (sends[0].winner, sends[0].loser) == (second.cards[0].sha256, r.preview.cards[0].sha256)
    # the retrain's judgements: the contempt preview's, none from the anger one switched away from
    from training.judgements import preview_judgements

    judged = preview_judgements(env.engine, set(env.pool.shas))
    assert judged and {e for e, *_ in judged} == {INDEX["contempt"]}


async def test_cooldown_limits_requests_not_votes(sqlite_settings, sqlite_engine) -> None:
    env = Env(sqlite_settings, sqlite_engine, cooldown_s=3.0)
    alice, bob = env.actor("alice"), env.actor("bob")
    r = await env.core.request(alice, "happy")
    posted = await env.core.send(alice, r.preview.session_id)
    again = await env.core.request(alice, "sad")
    assert again.kind == "cooldown" and "3 s" in again.text
    assert (await env.core.request(bob, "sad")).kind == "preview"
    assert (await env.core.request(alice, "")).kind == "help"  # help is never rate-limited
    # a user on cooldown may still vote, once
    for _ in range(3):
        await env.core.vote(alice, post_id=posted.post.post_id, up=True)
    assert len([c for c in env.comparisons() if c.source == "vote"]) == 1
    env.now[0] += 3.0
    assert (await env.core.request(alice, "sad")).kind == "preview"
    pasted = await env.core.request(bob, "/gif-admin hide last")  # once a "-admin hide last" GIF
    assert pasted.kind != "preview" and "/gif-admin" in (pasted.text or ""), pasted
    # nor are its words topics, even where GIFs carry them ("list" once matched a "fist pump")
    from _adapter_core import give_words

    give_words(env.core, env.engine, title="Pools list help", tags=("pools", "list", "help", "stats"))
    for pasted_line in ("/gif-admin pools list", "/gif-admin help", "/gif-admin stats"):
        env.now[0] += 3.0
        pasted = await env.core.request(bob, pasted_line)
        assert pasted.kind != "preview" and "No " not in (pasted.text or "") and "/gif-admin" in (pasted.text or ""), pasted
    # a question is a request too: rate-limited when asked, and its answer opens at once
    carol = env.actor("carol")
    assert (await env.core.request(carol, "happy")).kind == "preview"
    assert (await env.core.request(carol, "welp")).kind == "cooldown"  # no free questions
    env.now[0] += 3.0
    asked = await env.core.request(carol, "welp")
    assert asked.kind == "did_you_mean"
    picked = await env.core.choose(carol, asked.ask_id, asked.choices[0])
    assert picked.kind == "preview"  # the question took the token, not the pick


@pytest.mark.parametrize(("text", "kind"), [
    ("", "help"),
    ("   ", "help"),
    ("help", "help"),
    ("x" * 10_000, "error"),
    ("asdfgh qwerty", "help"),
    ("<@U123ABC>", "help"),
    ("https://example.com/a.gif", "help"),
    ("これは何ですか", "help"),
    ("yay finally done", "did_you_mean"),
])
async def test_bad_or_unclear_input_never_gives_a_random_gif(env: Env, text: str, kind: str) -> None:
    r = await env.core.request(env.actor(), text)
    assert r.kind == kind and r.text
    if kind == "help":
        assert r.choices == NAMES
    if kind == "did_you_mean":
        assert set(r.choices) <= set(NAMES) and 1 <= len(r.choices) <= 3
    assert r.preview is None
    with session_scope(env.engine) as s:  # no preview; a question about words keeps them
        kinds = [k for (k,) in s.query(ChatSession.kind)]
    asks_about_words = kind == "did_you_mean" or text in ("asdfgh qwerty", "これは何ですか")
    assert kinds == (["ask"] if asks_about_words else [])
    assert bool(r.ask_id) == asks_about_words


@pytest.mark.parametrize(("text", "emotion"), [
    ("\x00hap\x07py\x1b", "happiness"),
    ("😂", "amusement"),
    ("/gif   scared\n\n", "fear"),
    ("<@U1> nailed it!! https://x.y", "pride"),
    ("happy\u202e", "happiness"),
])
async def test_messy_but_clear_requests_work(env: Env, text: str, emotion: str) -> None:
    r = await env.core.request(env.actor(), text)
    assert r.kind == "preview" and r.preview.emotion == emotion


def test_clean_text() -> None:
    assert clean_text("/gif  happy\x00 now") == "happy now"
    assert clean_text("gif") == ""
    assert clean_text("happy \ud800 cat") == "happy cat"  # a lone surrogate: no database stores it
    assert clean_text("gifts") == "gifts"


async def test_show_three_and_the_channel_repeat_window(env: Env) -> None:
    admin = env.actor("ada", admin=True)
    assert (await env.core.admin(admin, "channel", ["preview", "3"])).kind == "ack"
    alice = env.actor()
    r = await env.core.request(alice, "happy")
    assert [c.sha256 for c in r.preview.cards] == env.best(n=3)
    middle = r.preview.cards[1].sha256
    posted = await env.core.send(alice, r.preview.session_id, middle)
    assert posted.post.card.sha256 == middle
    assert sorted(c.loser for c in env.comparisons()) == sorted(
        [r.preview.cards[0].sha256, r.preview.cards[2].sha256])
    # the posted GIF is not offered again in this channel, but still is elsewhere
    again = await env.core.request(alice, "happy")
    assert middle not in [c.sha256 for c in again.preview.cards]
    elsewhere = await env.core.request(env.actor(channel="random"), "happy")
    assert len(elsewhere.preview.cards) == 1  # preview count 3 was set for #general only
    assert elsewhere.preview.cards[0].sha256 == env.best(n=1)[0]


async def test_shuffle_runs_out(sqlite_settings, sqlite_engine) -> None:
    env = Env(sqlite_settings, sqlite_engine)
    alice, admin = env.actor(), env.actor("ada", admin=True)
    # rating ceiling g leaves only the demo pool's g-rated GIFs
    await env.core.admin(admin, "rating", ["g"])
    from scorer.store import Gif

    with session_scope(env.engine) as s:
        n_g = s.query(Gif).filter(Gif.rating == "g").count()
    assert n_g >= 1
    sid = (await env.core.request(alice, "happy")).preview.session_id
    kinds = [(await env.core.shuffle(alice, sid)).kind for _ in range(n_g)]
    assert kinds[-1] == "exhausted" and kinds.count("preview") == n_g - 1
    assert (await env.core.send(alice, sid)).kind == "posted"


async def test_polls_record_one_answer(sqlite_settings, sqlite_engine) -> None:
    env = Env(sqlite_settings, sqlite_engine, poll_share=1.0)
    alice, bob = env.actor(), env.actor("bob")
    assert await env.core.maybe_poll(alice, "not-an-emotion") is None
    poll = await env.core.maybe_poll(alice, "happiness")
    assert poll.kind == "poll" and "happiness" in poll.text
    left, right = poll.poll.left.sha256, poll.poll.right.sha256
    assert left != right
    assert (await env.core.answer_poll(bob, poll.poll.poll_id, "left")).kind == "forbidden"
    assert (await env.core.answer_poll(alice, poll.poll.poll_id, "up")).kind == "error"
    assert (await env.core.answer_poll(alice, poll.poll.poll_id, "right")).kind == "ack"
    assert (await env.core.answer_poll(alice, poll.poll.poll_id, "left")).kind == "closed"
    second = await env.core.maybe_poll(alice, "happiness")
    assert (await env.core.answer_poll(alice, second.poll.poll_id, "Neither")).kind == "ack"
    rows = env.comparisons()
    first = rows[0]
    assert (first.winner, first.loser, first.tie, first.source) == (right, left, False, "poll")
    assert rows[1].tie and len(rows) == 2
    # a poll id is not a preview, and a preview id is not a poll
    assert (await env.core.send(alice, second.poll.poll_id)).kind == "expired"
    none = Env.__new__(Env)
    none.core = BotCore(env.settings.override(ranking__poll_share=0.0), env.engine,
                        intent_parser=env.core.parser)
    assert await none.core.maybe_poll(alice, "happiness") is None


async def test_votes_by_message_ref_and_reactions(env: Env) -> None:
    alice, bob = env.actor(), env.actor("bob")
    r = await env.core.request(alice, "happy")
    posted = await env.core.send(alice, r.preview.session_id)
    await env.core.attach_message(posted.post.post_id, "1700000000.0001")
    ok = await env.core.vote(bob, message_ref="1700000000.0001", up=True, source="reaction")
    assert ok.kind == "ack"
    assert [c.source for c in env.comparisons() if c.post_id == posted.post.post_id][-1] == "reaction"
    assert (await env.core.vote(bob, message_ref="nope", up=True)).kind == "expired"
    outsider = Actor("test", "T2", "general", "eve")
    assert (await env.core.vote(outsider, post_id=posted.post.post_id, up=True)).kind == "expired"
    assert (await env.core.vote(bob, post_id=99999, up=True)).kind == "expired"


async def test_unscored_pool_and_empty_pool(sqlite_settings, sqlite_engine, tmp_path) -> None:
    env = Env(sqlite_settings, sqlite_engine, scored=False)
    r = await env.core.request(env.actor(), "happy")
    assert r.kind == "preview" and "not scored yet" in r.text
    ada = env.actor("ada", admin=True)
    for typo in (["nonexistent"], ["demo", "typo"], ["Demo"]):  # refused, naming the pools there are
        refused = await env.core.admin(ada, "channel", ["pools", *typo])
        assert refused.kind == "error" and "the pools are demo" in refused.text, refused.text
    assert (await env.core.request(env.actor("dan"), "happy")).kind == "preview"  # nothing changed
    assert (await env.core.admin(ada, "channel", ["pools", "demo"])).kind == "ack"
    from bot.scoped_settings import set_scoped  # a pool chosen here, then removed
    set_scoped(sqlite_engine, "test", "T1", "general", "pools", ["removed-since"])
    empty = await env.core.request(env.actor("carol"), "happy")
    assert empty.kind == "empty_pool" and "happiness" in empty.text
    assert "no longer exist (removed-since)" in empty.text and "`/gif-admin channel`" in empty.text


async def test_admin_commands(env: Env) -> None:
    alice, ada = env.actor(), env.actor("ada", admin=True)
    assert (await env.core.admin(alice, "stats", [])).kind == "forbidden"
    assert "demo:" in (await env.core.admin(ada, "pools", [])).text
    assert (await env.core.admin(ada, "rating", ["nc-17"])).kind == "error"
    assert (await env.core.admin(ada, "channel", ["cooldown", "10"])).kind == "ack"
    shown = (await env.core.admin(ada, "channel", ["show"])).text
    assert "cooldown: 10" in shown and "every pool" in shown
    bad = await env.core.admin(ada, "channel", ["cooldown", "-5"])
    assert bad.kind == "error" and bad.text.startswith("cooldown: ") and "cooldown_s" not in bad.text
    assert bad.text.endswith("Nothing was changed.")
    reset = await env.core.admin(ada, "channel", ["cooldown", "reset"])
    assert reset.text == "cooldown for this channel now follows the workspace's setting: 0."
    assert "cooldown: 0" in (await env.core.admin(ada, "channel", [])).text
    await env.core.admin(ada, "channel", ["rating", "g"])
    wide = await env.core.admin(ada, "rating", ["r"])  # the channel's own ceiling stays: say so
    assert wide.text == ("Rating ceiling for this workspace is now r. 1 channel keeps its own ceiling "
                         "(`channel rating reset` there follows this one).")
    await env.core.admin(ada, "channel", ["rating", "reset"])
    assert (await env.core.admin(ada, "rating", ["pg-13"])).text == "Rating ceiling for this workspace is now pg-13."
    stats = (await env.core.admin(ada, "stats", [])).text
    assert "GIFs ranked (this workspace): 24" in stats and "active model: #" in stats
    assert (await env.core.admin(ada, "what", [])).kind == "help"


async def test_watch_offers_privately_and_rarely(env: Env) -> None:
    alice, ada = env.actor(), env.actor("ada", admin=True)
    assert await env.core.watch(alice, "so happy today") is None  # not opted in
    await env.core.admin(ada, "channel", ["watch", "on"])
    assert await env.core.watch(alice, "meeting at 3") is None
    offer = await env.core.watch(alice, "so happy today")
    assert offer.kind == "preview" and "happiness" in offer.text
    assert await env.core.watch(alice, "so happy today") is None  # once per watch_cooldown_min
    assert (await env.core.watch(env.actor("bob"), "lol")).kind == "preview"
    env.now[0] += env.settings.chat.watch_cooldown_min * 60
    assert (await env.core.watch(alice, "lol")).kind == "preview"
    assert env.comparisons() == []  # an offer alone records nothing


def _flat_lines() -> list[str]:
    """Logistics chat with no feeling in it (the flat evaluation sets), the line this test
    was written with first."""
    lines = ["the discord event for movie night is set for friday 9pm"]
    for name in ("no_feeling_eval2.csv", "no_feeling_eval3.csv", "no_feeling_eval5.csv"):
        with (DATA / name).open(newline="", encoding="utf-8") as fh:
            lines += [row["text"] for row in csv.DictReader(fh)]
    return lines


@pytest.mark.slow  # loads the sentence model
async def test_a_strict_channel_offers_only_where_the_model_finds_a_feeling(sqlite_settings, sqlite_engine) -> None:
    from bot import intent as intent_mod
    from bot.sentence_tuning import BUILD_TIMEOUT_S

    parser = IntentParser(sqlite_settings)
    if not intent_mod._EMBEDDER.load() or not intent_mod._EMBEDDER.wait_tuned(BUILD_TIMEOUT_S):
        pytest.fail(f"the tuned sentence model is not available: {intent_mod._EMBEDDER.error}")
    env = Env(sqlite_settings, sqlite_engine, parser=parser)
    ada = env.actor("ada", admin=True)
    # The case the setting is for: the bank's words read a clear feeling into a logistics
    # line that the fine-tuned model itself finds flat. Which flat lines do that depends on
    # the build (int8 weights differ a little between CPUs), so the line is looked up.
    flat = next((t for t in _flat_lines() if parser.parse(t).confidence >= WATCH_MIN_CONFIDENCE
                 and parser.feeling_share(t) < 0.2), None)
    assert flat is not None, "no flat line that the lexicon reads as a clear feeling"
    felt = "someone microwaved fish in the office again"
    assert parser.feeling_share(felt) > 0.8
    await env.core.admin(ada, "channel", ["watch", "on"])
    assert (await env.core.watch(env.actor("bob"), flat)).kind == "preview"
    assert (await env.core.admin(ada, "channel", ["strict", "on"])).text == "strict for this channel is now on."
    assert "strict: on" in (await env.core.admin(ada, "channel", ["show"])).text
    assert await env.core.watch(env.actor("cy"), flat) is None
    offer = await env.core.watch(env.actor("di"), felt)
    assert offer.kind == "preview" and "disgust" in offer.text
    assert (await env.core.watch(env.actor("ed"), "so happy today")).kind == "preview"  # short: the lexicon's
    await env.core.admin(ada, "channel", ["strict", "reset"])
    assert (await env.core.watch(env.actor("flo"), flat)).kind == "preview"
    # a few words with no feeling word or emoji are no clear case, however sure the vote
    # over the bank ("standup in 5" read contentment at 100 % and drew an offer)
    for i, line in enumerate(("standup in 5", "pr review", "status update", "meeting at 3")):
        read = parser.parse(line)
        assert read.is_guess, read
        assert await env.core.watch(env.actor(f"g{i}"), line) is None, line
    assert (await env.core.watch(env.actor("gil"), "standup in 5 😂")).kind == "preview"  # the emoji says it
    # the examples docs/slack.md and docs/discord.md give of a line that draws an offer
    for i, line in enumerate(("lol that demo was hilarious 😂", "this is outrageous, they cancelled our launch 😡")):
        assert (await env.core.watch(env.actor(f"doc{i}"), line)).kind == "preview", line


async def test_demo_virtual_users_land_in_the_ledger(sqlite_settings, sqlite_engine) -> None:
    from bot.demo import SIM_PLATFORM, simulate
    from scorer.demo_pool import read_truth

    env = Env(sqlite_settings, sqlite_engine, scored=False, poll_share=0.5,
              repeat_window_hours=0.0)
    truth = read_truth(env.pool.manifest)
    report = await simulate(env.core, truth, sessions=60, seed=3)
    assert report.sessions == 60 and report.sends > 20 and report.votes > 0 and report.polls > 0
    rows = env.comparisons()
    assert rows and {c.platform for c in rows} == {SIM_PLATFORM}
    sends = [c for c in rows if c.source == "send"]
    # the virtual users follow the truth: what they send beats what they skip on it
    gain = np.mean([truth[c.winner][c.emotion] - truth[c.loser][c.emotion] for c in sends])
    assert gain > 0.05


async def test_a_click_forged_for_another_channel_or_workspace_is_refused(env: Env) -> None:
    alice = env.actor()
    sid = (await env.core.request(alice, "happy")).preview.session_id
    for forged in (env.actor(channel="random"), dataclasses.replace(alice, workspace="T2")):
        assert (await env.core.send(forged, sid)).kind == "forbidden"
    with session_scope(env.engine) as s:
        assert s.query(Post).count() == 0
