"""Topics (issue 15): the index, reading a request, and topic requests through the bot core
on a real database, with and without a feeling, and the no-match fallback."""

from __future__ import annotations

import time

import numpy as np
import pytest
from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo
from sqlalchemy import select, update

from bot.core import BotCore
from bot.events import Actor
from bot.intent import IntentParser
from bot.topics import SITUATION_MIN_CONFIDENCE, Reading, TopicIndex, gif_words, read_request, stem
from scorer.emotions import INDEX
from scorer.store import ChatSession, Comparison, Gif, session_scope

HAPPY = INDEX["happiness"]


# --- the index ----------------------------------------------------------------------------
def test_stem_is_consistent_for_plurals_and_endings() -> None:
    for a, b in [("cats", "cat"), ("puppies", "puppy"), ("dancing", "dance"), ("danced", "dance"),
                 ("boxes", "box"), ("running", "run"), ("coffees", "coffee")]:
        assert stem(a) == stem(b), (a, b)
    assert stem("glass") == stem("glass") and stem("bus") == "bus"


def test_gif_words_reads_title_tags_alt_text_and_slug() -> None:
    words = gif_words("Happy Cat Dance", ["Kitten", "funny"], "a cat dancing on a table",
                      "happy-cat-dance-x8Fq2LmZ9")
    assert {stem("cat"), stem("kitten"), stem("dance"), stem("table"), stem("funny")} <= words
    assert "x8fq2lmz9" not in words and "a" not in words  # ids and stop words are not topics
    assert gif_words(None, None, None, None) == set()
    assert stem("tag") in gif_words("", "tag;other", "", "")


def test_lookup_exact_plural_and_fuzzy() -> None:
    index = TopicIndex.build([gif_words("cat", [], "", ""), gif_words("dog", [], "", ""),
                              gif_words("coffee cat", [], "", ""), gif_words("dog", [], "", "")])
    assert index.lookup("cat")[1].tolist() == [0, 2]
    assert index.lookup("Cats")[1].tolist() == [0, 2]
    assert index.lookup("coffe")[1].tolist() == [2]  # one edit away
    assert index.lookup("zebra")[0] is None and index.lookup("zebra")[1].size == 0
    # a typo's neighbour is never a feeling word: "star" once found "scared" GIFs (scar),
    # "bear" crying ones (tear); the feeling word itself still matches
    felt = TopicIndex.build([gif_words("scared austin powers", ["tears"], "", ""),
                             gif_words("star trek", [], "", "")])
    assert felt.lookup("star")[1].tolist() == [1] and felt.lookup("bear")[0] is None
    assert felt.lookup("scared")[1].tolist() == [0]
    # a real word is never corrected: "prom" and "prof" found the "prod" GIFs
    prod = TopicIndex.build([gif_words("prod is on fire", [], "", "")])
    assert prod.lookup("prom")[0] is None and prod.lookup("prof")[0] is None
    assert prod.lookup("prood")[1].tolist() == [0]  # a typo still is
    both = index.rows_for([index.lookup("cat")[1], index.lookup("coffee")[1]])
    assert both.tolist() == [2]  # GIFs with every word first
    rarest = index.rows_for([index.lookup("dog")[1], index.lookup("coffee")[1]])
    assert rarest.tolist() == [2]  # none has both: the rarer word's GIFs


def test_lookup_among_the_rows_one_workspace_sees() -> None:
    """Rows of pools the asker may not see are not there: a word only they have is missing,
    and is no obstacle to a typo's neighbour the asker does see."""
    index = TopicIndex.build([gif_words("coffee", [], "", ""), gif_words("coffey", [], "", ""),
                              gif_words("coffee", [], "", "")])
    theirs = np.array([True, False, True])  # row 1 is another workspace's
    assert index.lookup("coffey")[1].tolist() == [1]
    assert index.lookup("coffey", theirs)[1].tolist() == [0, 2]  # read as its neighbour
    assert index.lookup("coffee", np.array([False, True, False]))[0] is None


def test_what_words_share_only_in_gifs_the_asker_may_not_see_is_not_offered() -> None:
    """Lookups return whole lists (a cut of a long one cost 2 ms a word at 1M GIFs); what the
    words share is settled among the asker's rows when the shared GIFs are others' alone."""
    index = TopicIndex.build([gif_words("coffee", [], "", ""), gif_words("coffee giraffe", [], "", ""),
                              gif_words("giraffe", [], "", "")])
    mine = np.array([True, False, True])  # row 1 is another workspace's
    found = [index.lookup(w, mine)[1] for w in ("coffee", "giraffe")]
    assert index.rows_seen(found, None).tolist() == [1]  # the operator sees the GIF of both
    seen = index.rows_seen(found, mine).tolist()
    assert seen in ([0], [2])  # the rarer word's own GIFs, never "not allowed here" about row 1
    assert index.rows_seen(found, mine, every=True).tolist() == []


def test_reading_splits_feeling_and_topic() -> None:
    parser = IntentParser(use_embeddings=False)
    index = TopicIndex.build([gif_words("cat", ["kitten"], "", ""),
                              gif_words("coffee time", [], "", ""), gif_words("dog", [], "", "")])
    r = read_request(parser, index, "happy cat")
    assert r.emotion == "happiness" and r.topic == ("cat",) and r.rows.tolist() == [0]
    r = read_request(parser, index, "cat")
    assert r.emotion is None and r.topic_only and r.rows.tolist() == [0]
    r = read_request(parser, index, "coffee monday")
    assert r.topic == ("coffee",) and r.emotion == "sadness"
    r = read_request(parser, index, "happy unicorn")
    assert r.emotion == "happiness" and r.rows is None and r.missing == ("unicorn",)
    r = read_request(parser, index, "the build finally passed")  # a situation told short: no topic to miss
    assert r.rows is None and r.missing == () and r.topic == ()
    r = read_request(parser, index, "my cat knocked the vase over again")  # a sentence
    assert r.rows is None and r.topic == ()
    assert read_request(parser, index, "").intent.kind == "help"
    assert read_request(parser, None, "happy cat").emotion == "happiness"  # no index yet


def test_a_gifs_own_title_finds_it_though_it_reads_as_a_situation() -> None:
    """`/gif keyboard smash` (a pool GIF's title) read as disgust over the whole pool: every
    word matched, so the confident sentence model made it a situation, not a subject."""
    parser = IntentParser()
    index = TopicIndex.build([gif_words("keyboard smash", [], "", ""), gif_words("keyboard cat", [], "", ""),
                              gif_words("smash bros", [], "", "")])
    full = parser.parse("keyboard smash")
    assert full.kind == "match" and full.confidence >= SITUATION_MIN_CONFIDENCE  # the case at hand
    r = read_request(parser, index, "keyboard smash")
    assert r.rows.tolist() == [0] and r.emotion == full.emotion
    none_has_both = TopicIndex.build([gif_words("keyboard cat", [], "", ""), gif_words("smash bros", [], "", "")])
    assert read_request(parser, none_has_both, "keyboard smash").rows is None  # a situation, then


def test_accented_words_are_whole_words_typed_either_way() -> None:
    parser = IntentParser(use_embeddings=False)
    index = TopicIndex.build([gif_words("Café au lait", ["Jalapeño"], "", ""), gif_words("señor", [], "", "")])
    for typed in ("happy café", "happy cafe"):  # was read as the topic "caf"
        r = read_request(parser, index, typed)
        assert r.emotion == "happiness" and r.topic == ("cafe",) and r.rows.tolist() == [0], typed
    assert read_request(parser, index, "jalapeno").rows.tolist() == [0]
    assert read_request(parser, index, "señor").topic == ("senor",)  # not "se" and "or"


# --- through the core ---------------------------------------------------------------------
CATS = (0, 3, 5, 8)  # positions in the demo pool given cat words
COFFEE = (1, 3)


class Env:
    def __init__(self, settings, engine) -> None:
        self.settings = settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.0,
                                          ranking__exploration="none", chat__preview_count=1)
        self.engine = engine
        self.pool = ingest_demo(self.settings, engine, demo_manifest())
        self.scores = designed_scores(len(self.pool.shas))
        add_model_version(engine, self.pool.shas, self.scores)
        with session_scope(engine) as s:  # what ingest keeps from titles, tags and slugs
            for i in CATS:
                s.execute(update(Gif).where(Gif.sha256 == self.pool.shas[i]).values(
                    title="Cat being silly", tags=["cats", "kitten"], slug="cat-silly-a1b2c3d4e5"))
            for i in COFFEE:
                s.execute(update(Gif).where(Gif.sha256 == self.pool.shas[i]).values(
                    alt_text="a cup of coffee" + (" and a cat" if i in CATS else "")))
        self.core = BotCore(self.settings, engine,
                            intent_parser=IntentParser(self.settings, use_embeddings=False),
                            clock=time.time, seed=1)
        self.alice = Actor("test", "T1", "general", "alice", "Alice")

    def shas(self, positions: tuple[int, ...]) -> set[str]:
        return {self.pool.shas[i] for i in positions}

    def best_among(self, positions: tuple[int, ...], emotion: int) -> str:
        return self.pool.shas[max(positions, key=lambda i: (self.scores[i, emotion], -i))]


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


async def test_feeling_and_topic(env: Env) -> None:
    r = await env.core.request(env.alice, "/gif happy cat")
    assert r.kind == "preview" and r.preview.emotion == "happiness"
    assert r.preview.cards[0].sha256 == env.best_among(CATS, HAPPY)  # best happy among cats
    assert r.preview.topic == "cat"
    assert "happiness" in r.preview.interpretation and "topic: cat" in r.preview.interpretation
    seen = {r.preview.cards[0].sha256}
    for _ in range(len(CATS) - 1):  # shuffle keeps the topic
        r = await env.core.shuffle(env.alice, r.preview.session_id)
        assert r.kind == "preview"
        seen.add(r.preview.cards[0].sha256)
    assert seen == env.shas(CATS)
    r = await env.core.shuffle(env.alice, r.preview.session_id)
    assert r.kind == "exhausted"


async def test_topic_alone_ranks_by_appeal_and_keeps_the_ledger_clean(env: Env) -> None:
    r = await env.core.request(env.alice, "/gif cats")
    assert r.kind == "preview" and r.preview.topic == "cats"  # as typed
    appeal = {i: env.scores[i].max() for i in CATS}
    assert r.preview.cards[0].sha256 == env.pool.shas[max(CATS, key=lambda i: (appeal[i], -i))]
    assert "best-liked" in r.preview.interpretation and "feeling:" not in r.preview.interpretation
    r = await env.core.shuffle(env.alice, r.preview.session_id)
    assert r.preview.cards[0].sha256 in env.shas(CATS)
    posted = await env.core.send(env.alice, r.preview.session_id)
    assert posted.kind == "posted"
    # the post says what was asked for, not the first GIF's clearest feeling standing in
    assert posted.post.topic == "cats" and posted.post.caption == "topic: cats"
    bob = Actor("test", "T1", "general", "bob", "Bob")
    voted = await env.core.vote(bob, post_id=posted.post.post_id, up=True)
    assert voted.kind == "ack" and "not counted" in voted.text
    with session_scope(env.engine) as s:  # no feeling was asked for: nothing to compare
        assert list(s.scalars(select(Comparison))) == []
    from training.judgements import preview_judgements

    assert preview_judgements(env.engine, set(env.pool.shas)) == []  # nor a send bar to judge
    happy = await env.core.request(env.alice, "/gif happy cat")  # a feeling and a topic: it counts
    sent = await env.core.send(env.alice, happy.preview.session_id)
    assert sent.post.caption == "happiness" and not sent.post.topic
    assert "Thanks! Noted" in (await env.core.vote(bob, post_id=sent.post.post_id, up=True)).text
    assert preview_judgements(env.engine, set(env.pool.shas))


async def test_a_topic_with_more_gifs_offers_shuffle(env: Env) -> None:
    """The topic's GIF count was taken after narrowing it to the k needed: no Shuffle button
    on any platform for `/gif cats`, though three more cat GIFs were there."""
    r = await env.core.request(env.alice, "/gif cats")
    assert r.kind == "preview" and r.preview.can_shuffle
    for _ in range(len(CATS) - 1):
        r = await env.core.shuffle(env.alice, r.preview.session_id)
    assert r.kind == "preview" and not r.preview.can_shuffle  # the last cat: nothing left


async def test_words_beside_a_found_topic_are_part_of_the_sentence(env: Env) -> None:
    """"No broke GIFs in this pool" was said for `/gif i broke cats`: beside a topic that was
    found, an unmatched word is what is said about it, not a subject the pool lacks. And the
    feeling is the whole request's, as `moodgif intent` reads it."""
    for text in ("i broke the cats", "great, another cat", "my cat died"):
        r = await env.core.request(env.alice, f"/gif {text}")
        assert "No " not in (r.text or "") and "no GIFs here" not in (
            r.preview.interpretation if r.preview else ""), (text, r.text)
        reading = env.core.interpret(text)
        assert reading.topic and reading.emotion == env.core.parser.parse(text).emotion, text


async def test_a_typo_of_a_topic_word_is_that_topic(env: Env) -> None:
    """`coffe` was read as the feeling of "coffee" (a lexicon word), never looked up."""
    r = await env.core.request(env.alice, "/gif coffe")
    assert r.kind == "preview" and r.preview.cards[0].sha256 in env.shas(COFFEE)
    assert r.preview.topic == "coffee" and r.preview.topic_only
    assert "topic: coffee (nearest to “coffe”)" in r.preview.interpretation


async def test_a_word_read_as_its_neighbour_says_which(env: Env) -> None:
    """`/gif toffee` showed coffee GIFs under "topic: toffee": the preview now says what the
    word was read as, and the GIFs' caption names what they are about."""
    r = await env.core.request(env.alice, "/gif toffee")
    assert r.kind == "preview" and r.preview.cards[0].sha256 in env.shas(COFFEE)
    assert r.preview.topic == "coffee"
    assert "topic: coffee (nearest to “toffee”)" in r.preview.interpretation
    exact = await env.core.request(env.alice, "/gif coffee")
    assert "nearest" not in exact.preview.interpretation  # a word GIFs here say: no note


async def test_topic_words_combine_and_forgive_typos(env: Env) -> None:
    r = await env.core.request(env.alice, "/gif coffee monday")
    assert r.kind == "preview" and r.preview.emotion == "sadness"
    assert r.preview.cards[0].sha256 in env.shas(COFFEE) and r.preview.topic == "coffee"
    r = await env.core.request(env.alice, "/gif happy kittens")
    assert r.preview.cards[0].sha256 in env.shas(CATS)
    r = await env.core.request(env.alice, "/gif kiten")  # a typo of a GIF's word
    assert r.preview.cards[0].sha256 in env.shas(CATS)
    r = await env.core.request(env.alice, "/gif coffee cat")  # GIFs with both words first
    assert r.preview.cards[0].sha256 in env.shas(tuple(set(COFFEE) & set(CATS)))


async def test_no_match_falls_back_to_the_feeling_and_says_so(env: Env) -> None:
    r = await env.core.request(env.alice, "/gif happy unicorn")
    assert r.kind == "preview" and r.preview.emotion == "happiness"
    assert r.text == "No unicorn GIFs in this pool; here's happiness."
    assert "no GIFs here about “unicorn”" in r.preview.interpretation
    assert r.preview.cards[0].sha256 == env.pool.shas[int(np.argmax(env.scores[:, HAPPY]))]
    alone = await env.core.request(env.alice, "/gif unicorn")
    assert alone.kind in {"help", "did_you_mean"} and alone.preview is None  # never a random GIF
    assert alone.text.startswith("No unicorn GIFs in this pool.")
    for typed in ("asdfghjkl", "x" * 30):  # no word: nothing to lack (thirty x's read as "xx")
        mash = await env.core.request(env.alice, f"/gif {typed}")
        assert mash.preview is None and "No " not in mash.text, mash.text


async def test_a_sentence_is_a_feeling_not_a_topic(env: Env) -> None:
    r = await env.core.request(env.alice, "/gif my cat is so happy today")
    assert r.kind == "preview" and r.preview.emotion == "happiness" and r.preview.topic == ""


@pytest.mark.parametrize("text", [
    "x" * 5000,
    "```python\ndef f(x):\n    return x * 2\n```",
    "https://example.com/some/page?x=1 <https://example.com|link>",
    "<@U123ABC> <#C42|general> @here",
    "これはテストです", "Привет, как дела?", "¿Qué tal?",
    "!!!???...", "\u200b\u200c\u200d\ufeff", "🦄" * 50,
])
async def test_bad_input_is_never_a_random_gif(env: Env, text: str) -> None:
    r = await env.core.request(env.alice, text)
    assert r.kind in {"help", "did_you_mean", "error"}, (text[:40], r)
    assert r.text and r.preview is None


async def test_many_emoji_read_clearly(env: Env) -> None:
    r = await env.core.request(env.alice, "😂" * 50)
    assert r.kind == "preview" and r.preview.emotion == "amusement"


async def test_a_topic_the_channel_filters_out_falls_back_to_the_feeling(env: Env) -> None:
    with session_scope(env.engine) as s:  # every cat GIF above the default pg-13 ceiling
        s.execute(update(Gif).where(Gif.sha256.in_(env.shas(CATS))).values(rating="r"))
    env.core.ctx.ranker.refresh()
    r = await env.core.request(env.alice, "/gif happy cat")
    assert r.kind == "preview" and r.preview.emotion == "happiness"
    assert r.text == "No cat GIFs allowed in this channel; here's happiness."
    assert r.preview.topic == "cat" and r.preview.cards[0].sha256 not in env.shas(CATS)
    alone = await env.core.request(env.alice, "/gif cats")  # no feeling to fall back to
    assert alone.kind == "empty_pool" and alone.text.startswith("I have no GIFs for cats")


async def test_a_topic_alone_teaches_no_feeling_and_a_learned_feeling_keeps_its_topic(env: Env) -> None:
    r = await env.core.request(env.alice, "cats")
    assert (await env.core.send(env.alice, r.preview.session_id)).kind == "posted"
    with session_scope(env.engine) as s:  # a topic alone named no feeling: nothing learned
        assert s.scalar(select(ChatSession.query_key)) == ""

    for who in ("bob", "cy"):  # "ugh cats" reads anger; both wanted contempt
        actor = Actor("test", "T1", "general", who, who)
        r = await env.core.request(actor, "ugh cats")
        r = await env.core.switch(actor, r.preview.session_id, "contempt")
        assert (await env.core.send(actor, r.preview.session_id)).kind == "posted"
    r = await env.core.request(Actor("test", "T1", "general", "dan", "Dan"), "ugh cats")
    assert r.preview.emotion == "contempt" and r.preview.topic == "cats"
    assert r.preview.cards[0].sha256 in env.shas(CATS)
    assert "people here" in r.preview.interpretation and "topic: cats" in r.preview.interpretation


def test_a_pool_lacking_the_words_is_said_plainly_not_read_as() -> None:
    """A "did you mean" pick for words no GIF has once said "Read as no GIFs here about
    “printer”; you picked surprise"."""
    from bot.intent import Intent

    asked = Reading(Intent(None, 0.3, [("amusement", 0.3)], "did you mean?", "did_you_mean"), missing=("printer",))
    assert asked.describe() == "No GIFs here about “printer”"
    felt = Reading(Intent("happiness", 0.95), missing=("unicorn",))
    assert felt.describe() == "Read as feeling: happiness (95%); no GIFs here about “unicorn”"


def test_the_typing_hint_shows_the_guesses_an_unsure_reading_will_offer() -> None:
    """A faint reading ("can you send me the link") answers with its guesses as buttons, so
    Discord's autocomplete shows them while typing, as it does for a "did you mean"."""
    from bot.hints import reading_line
    from bot.intent import Intent

    faint = Reading(Intent(None, 0.2, [("fear", 0.2), ("contempt", 0.1)], "I couldn't read a clear feeling in that", "unknown"))
    assert reading_line(faint) == "did you mean fear / contempt"
    assert reading_line(Reading(Intent(None, 0.0, [], "nothing read", "unknown"))) == ""
