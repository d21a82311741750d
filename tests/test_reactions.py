"""The words channel's GIF-title reading: the reaction vocabulary and the softened intent reading."""

from __future__ import annotations

import numpy as np
import pytest

from bot.intent import IntentParser
from scorer import reactions
from scorer.emotions import INDEX, N_EMOTIONS, NAMES
from scorer.prior import (
    NONE,
    REACTION_CONF,
    SD_WIDE,
    WORD_SPREAD,
    WORD_TEMPERATURE,
    affinity_matrix,
    combine,
    gif_text,
    intent_reading,
    spread,
    word_channel,
)

LEXICON = IntentParser(use_embeddings=False).distribution  # the bot's own lexicon stage


def _top(text: str) -> str:
    ch = word_channel(text, LEXICON)
    assert ch.confidence > 0, text
    return NAMES[int(ch.evidence.argmax())]


def test_vocabulary_loads_and_every_entry_is_valid() -> None:
    vocab = reactions.vocabulary()
    assert len(vocab) > 60
    for key, vec in vocab.items():
        assert key and all(key) and vec.shape == (N_EMOTIONS,)
        assert 0 < vec.max() <= 1 and (vec >= 0).all()
    # A phrase is also found written as one word, as titles and slugs write it.
    assert np.array_equal(vocab[("slow", "clap")], vocab[("slowclap",)])


@pytest.mark.parametrize(("title", "emotion"), [
    ("slow clap", "contempt"),            # the longer phrase wins over "clap"
    ("clap", "excitement"),
    ("Tableflip", "anger"),
    ("conan-ragequit", "anger"),
    ("thumbs up", "satisfaction"),
    ("thumbsup", "satisfaction"),
    ("picard facepalm", "embarrassment"),
    ("AWWWWW puppy", "contentment"),       # letters repeated 3+ times count twice
    ("mic drop", "pride"),
    ("happy dance", "happiness"),
])
def test_a_title_with_a_reaction_word_reads_as_its_emotion(title: str, emotion: str) -> None:
    assert _top(title) == emotion
    assert _top(gif_text(title, [], "", "")) == emotion


def test_a_reaction_is_read_even_where_the_lexicon_reads_nothing() -> None:
    # "clap" means nothing to the request lexicon: before the vocabulary, no words channel.
    assert LEXICON("clap")[1] == ""
    ch = word_channel("clap", LEXICON)
    assert ch.confidence == REACTION_CONF
    # And a text model that fails still leaves the vocabulary's reading.
    def broken(_text: str):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    assert word_channel("facepalm", broken).evidence.argmax() == INDEX["embarrassment"]


def test_several_reactions_spread_without_getting_surer() -> None:
    one = reactions.reading("mic drop")
    two = reactions.reading("mic drop ; facepalm")
    assert one is not None and two is not None
    assert two.max() == pytest.approx(one.max())
    assert two[INDEX["embarrassment"]] > 0 and two[INDEX["pride"]] > 0


def test_words_that_are_not_reactions_are_not_read() -> None:
    for text in ("", "   ", "white guys", "george costanza", "clapton", "yesterday", "dancer's"):
        assert reactions.reading(text) is None, text


@pytest.mark.parametrize("text", [
    "", "x" * 100_000, "<script>alert(1)</script> facepalm", "\x00\x07\u202e", "悲しい猫", "حزين",
    "0123456789abcdef", "😂😂😂", "ｆａｃｅｐａｌｍ", "face\u200bpalm", "a" * 5000 + " lol",
    " ; ".join(["thumbs up"] * 5000),
])
def test_odd_titles_never_crash(text: str) -> None:
    got = reactions.reading(text)
    assert got is None or (got.shape == (N_EMOTIONS,) and np.isfinite(got).all() and got.max() <= 1)
    ch = word_channel(text, LEXICON)
    assert np.isfinite(ch.evidence).all() and 0 <= ch.confidence <= 1


def _fixed(probs: dict[str, float], path: str = "lexicon"):  # type: ignore[no-untyped-def]
    vec = [0.0] * N_EMOTIONS
    for name, p in probs.items():
        vec[INDEX[name]] = p
    return lambda _text: (vec, path)


def test_softness_keeps_the_second_and_third_readings_in_the_ranking() -> None:
    assert WORD_TEMPERATURE > 1
    model = _fixed({"anger": 0.9, "contempt": 0.09, "disgust": 0.01})
    soft = intent_reading("a title", model).evidence  # before spreading
    assert soft.argmax() == INDEX["anger"] and soft[INDEX["anger"]] == pytest.approx(1.0)
    # The root of the ratio to the top, not the ratio: 0.1 -> 0.32, 0.011 -> 0.105.
    assert soft[INDEX["contempt"]] == pytest.approx((0.09 / 0.9) ** (1 / WORD_TEMPERATURE))
    ch = word_channel("a title", model)
    ev = ch.evidence
    assert ev.argmax() == INDEX["anger"] and ev[INDEX["anger"]] == pytest.approx(ev.max())
    assert ev[INDEX["anger"]] > ev[INDEX["contempt"]] > ev[INDEX["disgust"]] > 0.1
    # So on the contempt axis this GIF ranks above a GIF with no words, and above one whose
    # words read something else entirely.
    wide = combine(NONE, NONE)[0][INDEX["contempt"]]
    other = combine(word_channel("t", _fixed({"happiness": 1.0})), NONE)[0][INDEX["contempt"]]
    here = combine(ch, NONE)[0][INDEX["contempt"]]
    assert here > wide > other


def test_a_gif_with_no_words_stays_wide() -> None:
    for text, model in (("", LEXICON), ("   ", LEXICON), ("unreadable", _fixed({}, "")),
                        ("facepalm", None)):
        ch = word_channel(text, model)
        assert ch is NONE or ch.confidence == 0
        _, sd, total = combine(ch, NONE)
        assert total == 0 and np.allclose(sd, SD_WIDE)


# --- titles of actions, and spreading (issue 11, the titles set) ---------------------------

@pytest.mark.parametrize(("title", "emotion"), [
    ("guy-slips-on-ice", "amusement"),            # a fail, not the poster's embarrassment
    ("Man_Punches_Wall", "anger"),
    ("dog caught chewing shoe", "guilt"),
    ("puppy hangs head", "shame"),
    ("kitten-falls-asleep", "contentment"),       # "falls asleep" before "falls"
    ("toddler throws up", "disgust"),
    ("jump scare compilation", "fear"),
    ("oddly satisfying paint mixing", "satisfaction"),
    ("bodybuilder strutting", "pride"),
    ("grandpa eating pie", "pleasure"),
])
def test_a_title_of_nouns_and_actions_reads_as_its_situation(title: str, emotion: str) -> None:
    from scorer.words import title_from_path

    assert _top(gif_text(title_from_path(title), [], "", "")) == emotion


def test_the_affinity_matrix_spreads_by_meaning() -> None:
    a = affinity_matrix()
    assert a.shape == (N_EMOTIONS, N_EMOTIONS) and np.allclose(np.diag(a), 0)
    assert np.allclose(a.sum(axis=1), 1.0)  # every axis has companions; a row passes on its own mass
    assert ((a > 0) == (a.T > 0)).all()
    assert a[INDEX["guilt"], INDEX["shame"]] > 0 and a[INDEX["guilt"], INDEX["excitement"]] == 0


def test_spreading_gives_a_co_emotion_a_ranking() -> None:
    assert 0 < WORD_SPREAD < 1
    # A laugh is read as amusement only; spread, it also ranks the GIF on happiness above
    # a GIF read as fear, which it did not before (both 0).
    laugh, fear = word_channel("lol", LEXICON), word_channel("scared", LEXICON)
    assert laugh.evidence.argmax() == INDEX["amusement"]
    assert laugh.evidence[INDEX["happiness"]] > fear.evidence[INDEX["happiness"]]
    assert fear.evidence[INDEX["surprise"]] > laugh.evidence[INDEX["surprise"]]
    on_happy = [combine(ch, NONE)[0][INDEX["happiness"]] for ch in (laugh, fear)]
    assert on_happy[0] > on_happy[1]
    # Spreading never lifts a reading past its own top, and leaves no reading at none.
    e = np.zeros(N_EMOTIONS)
    e[INDEX["guilt"]] = 0.6
    out = spread(e)
    assert out.max() == pytest.approx(out[INDEX["guilt"]]) and out.max() <= 0.6
    assert out[INDEX["shame"]] > 0 and out[INDEX["pride"]] == 0
    assert (spread(np.zeros(N_EMOTIONS)) == 0).all()


def test_a_hash_named_gif_stays_wide_after_spreading() -> None:
    from scorer.words import title_from_path

    title = title_from_path("71933b59c9a76424162a91b99896070c915e33cf8fbd06b367c0c4e874e3f660.gif")
    ch = word_channel(gif_text(title, [], "", ""), LEXICON)
    mean, sd, total = combine(ch, NONE)
    assert total == 0 and np.allclose(sd, SD_WIDE) and np.allclose(mean, mean[0])
