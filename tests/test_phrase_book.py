"""Learned words found by likeness (bot.phrase_book): a teammate's other words for what people
here sent are read the same way, when the parser reads them alike. The book's own rules with
vectors made up for the test; then end to end through BotCore with the shipped parser and its
tuned encoder, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np
import pytest
from test_core import Env

import bot.phrase_book as pb
from bot import intent as intent_mod
from bot.intent import Intent, IntentParser
from bot.phrase_book import PhraseBook, first_choice, reads_alike

SPACE = object()


def _unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, np.float32)
    return v / np.linalg.norm(v)


VECTORS = {"prod is down again": _unit(1, 0, 0), "prod went down again": _unit(1, 0.3, 0),
           "lunch": _unit(0, 0, 1)}


class Fakes:
    def __init__(self) -> None:
        self.keys = {("slack", "T1"): ["prod is down again", "lunch"]}
        self.loads = 0
        self.space: object = SPACE

    def load_keys(self, platform: str, workspace: str) -> list[str]:
        self.loads += 1
        return list(self.keys.get((platform, workspace), []))

    def embed(self, texts: list[str]) -> tuple[np.ndarray, object] | None:
        if self.space is None:
            return None
        return np.stack([VECTORS[t] for t in texts]), self.space

    def read(self, text: str) -> Intent:
        return Intent("anger" if "prod" in text else "pleasure", 0.6)

    def asked(self, text: str) -> Callable[[], tuple[np.ndarray, object] | None]:
        return lambda: self.embed([text])


def test_a_cold_shelf_answers_nothing_and_loads_in_the_background() -> None:
    f = Fakes()
    book = PhraseBook(f.load_keys, f.embed, f.read)
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is None  # cold: never waits
    assert book.wait(10)
    near = book.nearest("slack", "T1", f.asked("prod went down again"))
    assert near is not None and near.key == "prod is down again" and near.likeness > 0.9
    assert near.first == "anger"  # the parser's reading of the key, read with the shelf
    # its own key is never its neighbour, and another workspace's shelf is another shelf
    assert book.nearest("slack", "T1", f.asked("prod is down again"), exclude="prod is down again") is None
    assert book.nearest("slack", "T2", f.asked("prod went down again")) is None
    assert book.wait(10) and f.loads == 2 and book.keys("slack", "T2") == []


def test_below_the_likeness_nothing_stands_in() -> None:
    f = Fakes()
    book = PhraseBook(f.load_keys, f.embed, f.read)
    book.refresh_soon("slack", "T1")
    assert book.wait(10)
    lunch_like = float(VECTORS["lunch"] @ VECTORS["prod went down again"])
    assert lunch_like < pb.LIKENESS
    f.keys[("slack", "T1")] = ["lunch"]
    book.stale("slack", "T1")
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is not None  # the old shelf, once
    assert book.wait(10) and book.keys("slack", "T1") == ["lunch"]
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is None


def test_a_send_makes_the_shelf_old_and_a_new_encoder_makes_it_stale() -> None:
    clock = [0.0]
    f = Fakes()
    book = PhraseBook(f.load_keys, f.embed, f.read, clock=lambda: clock[0])
    book.refresh_soon("slack", "T1")
    assert book.wait(10) and f.loads == 1
    book.nearest("slack", "T1", f.asked("lunch"))
    assert book.wait(10) and f.loads == 1  # fresh: no reload
    clock[0] += pb.REFRESH_S + 1
    book.nearest("slack", "T1", f.asked("lunch"))
    assert book.wait(10) and f.loads == 2  # old: reloaded

    f.space = object()  # the tuned encoder was rebuilt: old vectors do not compare
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is None
    assert book.wait(10) and f.loads == 3
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is not None

    f.space = None  # no encoder at all: nothing is alike, nothing breaks
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is None


def test_a_failing_load_is_logged_and_the_book_stays_usable(caplog: pytest.LogCaptureFixture) -> None:
    f = Fakes()

    def broken(platform: str, workspace: str) -> list[str]:
        raise RuntimeError("database is locked")

    book = PhraseBook(broken, f.embed, f.read)
    book.refresh_soon("slack", "T1")
    assert book.wait(10)
    assert "reloading slack/T1 failed" in caplog.text
    assert book.nearest("slack", "T1", f.asked("lunch")) is None


def test_the_book_holds_at_most_max_vectors_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pb, "MAX_VECTORS", 3)
    f = Fakes()
    f.keys = {("slack", w): ["prod is down again", "lunch"] for w in ("T1", "T2", "T3")}
    book = PhraseBook(f.load_keys, f.embed, f.read)
    for w in ("T1", "T2", "T3"):
        book.refresh_soon("slack", w)
        assert book.wait(10)
    assert book.keys("slack", "T1") == []  # the least recently used shelf went first
    assert book.keys("slack", "T3") == ["prod is down again", "lunch"]


def test_many_threads_ask_at_once() -> None:
    f = Fakes()
    book = PhraseBook(f.load_keys, f.embed, f.read)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(50):
                book.nearest("slack", "T1", f.asked("prod went down again"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and book.wait(10)
    assert book.nearest("slack", "T1", f.asked("prod went down again")) is not None


def test_reads_alike_is_the_same_first_choice() -> None:
    anger = Intent("anger", 0.7, [("sadness", 0.2)])
    assert first_choice(Intent(None, 0.3, [("anger", 0.3), ("fear", 0.2)], kind="did_you_mean")) == "anger"
    assert first_choice(Intent(None, 0.0, [], kind="unknown")) is None
    assert reads_alike(anger, "anger")
    assert not reads_alike(anger, "sadness")
    assert not reads_alike(anger, None)
    assert not reads_alike(Intent(None, 0.0, [], kind="unknown"), None)


# ---------------------------------------------------------------------- through the bot
@pytest.fixture(scope="module")
def tuned_parser() -> IntentParser:
    parser = IntentParser()
    if not intent_mod._EMBEDDER.load() or not intent_mod._EMBEDDER.wait_tuned(1800):
        pytest.fail("the tuned sentence model is not built (python -m bot.sentence_tuning)")
    return parser


async def _send_as(env: Env, who: str, words: str, emotion: str) -> None:
    actor = env.actor(who)
    r = await env.core.request(actor, words)
    assert r.kind == "preview", r
    if r.preview.emotion != emotion:
        r = await env.core.switch(actor, r.preview.session_id, emotion)
    assert (await env.core.send(actor, r.preview.session_id)).kind == "posted"


async def test_other_words_that_read_alike_follow_what_people_here_sent(settings, engine, tuned_parser) -> None:
    env = Env(settings, engine, parser=tuned_parser)  # on SQLite and on PostgreSQL
    carol = env.actor("carol")
    assert (await env.core.request(carol, "printer is jammed AGAIN")).preview.emotion == "anger"  # the parser
    for who in ("alice", "bob"):  # this team's idiom: a jammed printer is beneath contempt
        await _send_as(env, who, "the printer jammed again", "contempt")

    await env.core.request(carol, "printer is jammed AGAIN")  # the shelf was old after the Sends
    assert env.core.ctx.phrases.wait(30)
    r = await env.core.request(carol, "printer is jammed AGAIN")
    assert r.preview.emotion == "contempt"
    assert "how 2 of 2 people here sent “the printer jammed again”" in r.preview.interpretation
    assert r.preview.alternatives[0] == "anger"  # the parser's own reading, one click away

    # the same topic read as another feeling does not take the team's pick
    fixed = await env.core.request(carol, "the printer finally works again")
    assert fixed.preview.emotion in {"relief", "satisfaction"}, fixed.preview  # the parser's own
    assert "people here" not in fixed.preview.interpretation
    # nor does another workspace
    other = dataclasses.replace(carol, workspace="T2")
    assert (await env.core.request(other, "printer is jammed AGAIN")).preview.emotion == "anger"


async def test_your_own_pick_reaches_your_other_words_and_a_channel_may_opt_out(sqlite_settings, sqlite_engine,
                                                                                  tuned_parser) -> None:
    env = Env(sqlite_settings, sqlite_engine, parser=tuned_parser)
    await _send_as(env, "alice", "the printer jammed again", "amusement")
    await env.core.request(env.actor("alice"), "printer jammed again ffs")
    assert env.core.ctx.phrases.wait(30)
    r = await env.core.request(env.actor("alice"), "printer jammed again ffs")
    assert r.preview.emotion == "amusement"
    assert "your last pick for “the printer jammed again”" in r.preview.interpretation
    assert (await env.core.request(env.actor("bob"), "printer jammed again ffs")).preview.emotion == "anger"

    admin = env.actor("ada", admin=True)
    await env.core.admin(admin, "channel", ["phrases", "off"])
    assert (await env.core.request(env.actor("alice"), "printer jammed again ffs")).preview.emotion == "anger"
