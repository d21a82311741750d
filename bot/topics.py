"""Topics: the words of a request that name a subject, not a feeling ("cat" in `/gif happy cat`).

A GIF's own words (title, tags, alt text, URL slug) are indexed with every ranking snapshot
(`attach_topics`, called by `Ranker.refresh`): word -> light stem -> a sorted int32 array of
the GIF's rows in the snapshot's score matrix (an inverted index). A lookup is one dict get,
and for a word the index lacks up to a few hundred one-edit variants ("kat" -> "cat"), then a
union or intersection of sorted arrays: cheap at a million GIFs (benchmarks/bench_suggest.py
--topics).

How a request is read (`read_request`):

- a short request (at most `TOPIC_MAX_WORDS` content words, `TOPIC_MAX_TOKENS` words) may
  name a topic: a word that is
  not an emotion word (or is a thing a GIF can show, like "coffee") and that GIFs here have;
- the rest of the request is the feeling: `/gif happy cat` is happiness among cat GIFs,
  `/gif coffee monday` is Monday's feeling among coffee GIFs;
- only a topic (`/gif cat`): the topic's GIFs ranked by their overall appeal (`appeal`);
- a topic nothing matches: said so, and the feeling alone is used ("no cat GIFs here"); only
  a single unknown word is said to be missing, since several are a situation told short.
A sentence is a situation, never a topic: "i broke prod" asks for a feeling.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.intent_lexicon import fold_accents

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bot.intent import Intent, IntentParser
    from bot.score_matrix import ScoreMatrix

log = logging.getLogger("moodgif.bot.topics")

# A request longer than this (content words / all words) is a sentence: a situation, not a topic.
TOPIC_MAX_WORDS = 3
TOPIC_MAX_TOKENS = 4
# When every word of a 2-3 word request matches GIF words, it is still read as a situation
# if the sentence model is at least this sure of a feeling ("deadline missed").
SITUATION_MIN_CONFIDENCE = 0.6
# Words of a GIF that never make a topic: too common to mean anything.
_GIF_STOPWORDS = frozenset(re.findall(r"\S+", """
    a an the and or of to in on at by for with from is are was be it this that gif gifs
    animated animation reaction giphy tenor via com www http https
"""))
_TOKEN = re.compile(r"[a-z0-9]+")
_ID_LIKE = re.compile(r"^(?=.*\d)[a-z0-9]{8,}$")  # slug tails such as "abc123xyz9" are ids


def stem(word: str) -> str:
    """A light stemmer for GIF words and requests alike (cats -> cat, dancing -> danc,
    puppies -> puppy). Both sides go through it, so it only has to be consistent."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix, min_len in (("ing", 6), ("ed", 5)):
        if len(w) >= min_len and w.endswith(suffix):
            w = w[: -len(suffix)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":  # running -> run
                w = w[:-1]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def gif_words(title: str | None, tags: Any, alt_text: str | None, slug: str | None) -> set[str]:
    """The stems a GIF can be found by."""
    parts = [title or "", alt_text or "", (slug or "").replace("-", " ").replace("_", " ")]
    if isinstance(tags, (list, tuple)):
        parts += [str(t) for t in tags]
    elif isinstance(tags, str):
        parts.append(tags)
    out = set()
    for tok in _TOKEN.findall(fold_accents(" ".join(parts).lower())):
        if tok in _GIF_STOPWORDS or len(tok) < 2 or tok.isdigit() or _ID_LIKE.match(tok):
            continue
        out.add(stem(tok))
    return out


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=1)
def _feeling_stems() -> frozenset[str]:
    """Stems of the lexicon's one-word feeling terms and the 17 names (scared -> scar); not
    its weak words, which are things as well ("coffee", "beer", "birthday")."""
    from bot.intent_lexicon import TOPIC_WORDS, load_lexicon
    from scorer.emotions import NAMES

    words, _symbols = load_lexicon()
    felt = [w for w, entry in words.items() if not entry.weak and w not in TOPIC_WORDS]
    return frozenset(stem(w) for w in [*felt, *NAMES] if " " not in w and w.isalpha())


def _edits1(word: str) -> set[str]:
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    subs = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return (deletes | swaps | subs | inserts) - {word}


def _seen(rows: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    """`rows` cut to the `visible` ones (None: all of them)."""
    return rows if visible is None else rows[visible[rows]]


_PEEK = 1024  # rows looked at first: a common word's list almost always has a visible one there


def _any_seen(rows: np.ndarray | None, visible: np.ndarray | None) -> bool:
    """Does any of `rows` lie in the `visible` mask (None: all)? Cheap for a long list: its
    first rows first (a cut of a 775k-row list was 2 ms at 1M GIFs, per word, per request)."""
    if rows is None or not rows.size:
        return False
    return visible is None or bool(visible[rows[:_PEEK]].any()) or bool(visible[rows[_PEEK:]].any())


@dataclass
class TopicIndex:
    """Inverted index over one snapshot's GIFs, plus each GIF's overall appeal."""

    postings: dict[str, np.ndarray]  # stem -> sorted int32 row indices
    size: int
    appeal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    appeal_sd: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _bitmaps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _ids: frozenset[int] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, words_per_row: list[set[str]], matrix: ScoreMatrix | None = None) -> TopicIndex:
        lists: dict[str, list[int]] = {}
        for i, words in enumerate(words_per_row):
            for w in words:
                lst = lists.get(w)
                if lst is None:
                    lists[w] = [i]
                else:
                    lst.append(i)
        postings = {w: np.asarray(rows, dtype=np.int32) for w, rows in lists.items()}
        index = cls(postings, len(words_per_row))
        if matrix is not None:
            index.appeal, index.appeal_sd = appeal_of(matrix)
        return index

    def lookup(self, word: str, visible: np.ndarray | None = None) -> tuple[str | None, np.ndarray]:
        """(the indexed stem that matched, its rows); (None, empty) when nothing does.
        Exact stem first, then the most common stem one edit away (for words of 4+ letters
        that are no English word: "prom" is not a typo of "prod"). `visible`: a mask of the
        rows the asker may see (`ScoreMatrix.visible_rows`): a stem none of whose GIFs it may
        see is not there. The rows are the whole list (the ranking leaves out what the asker
        may not see); `rows_seen` settles what several words share."""
        from bot.intent_reader import english_vocab

        s = stem(word)
        rows = self.postings.get(s)
        if rows is not None and _any_seen(rows, visible):
            return s, rows
        if len(s) >= 4 and word.casefold() not in english_vocab():
            # a typo's neighbour, never a feeling word's stem: "star" is one edit from "scar"
            # (scared) and "bear" from "tear", and found scared and crying GIFs
            near = [c for c in _edits1(s) if c in self.postings and c not in _feeling_stems()
                    and _any_seen(self.postings[c], visible)]
            if near:
                best = max(near, key=lambda c: (self.postings[c].size, c))
                return best, self.postings[best]
        return None, np.zeros(0, dtype=np.int32)

    def rows_seen(self, found: list[np.ndarray], visible: np.ndarray | None, *,
                  every: bool = False) -> np.ndarray:
        """`rows_for` (`rows_with_all` when `every`) as an asker who sees `visible` would
        have them: when what the words share lies only in GIFs it may not see, the same
        among its own (the rarest word's, say), never "not allowed here" about others' GIFs."""
        pick = self.rows_with_all if every else self.rows_for
        rows = pick(found)
        if visible is None or not rows.size or _any_seen(rows, visible):
            return rows
        return pick([_seen(r, visible) for r in found])  # rare: a cut of each list

    def rows_for(self, found: list[np.ndarray]) -> np.ndarray:
        """GIFs with every topic word; when no GIF has them all, GIFs with the rarest one
        (the most specific word: "coffee cat" with no GIF of both is the rarer of the two)."""
        if not found:
            return np.zeros(0, dtype=np.int32)
        rows = self.rows_with_all(found)
        return rows if rows.size else min(found, key=lambda a: a.size)

    def rows_with_all(self, found: list[np.ndarray]) -> np.ndarray:
        """GIFs with every topic word (maybe none). Never a merge of long lists, so a very
        common word costs nothing extra."""
        if not found:
            return np.zeros(0, dtype=np.int32)
        found = sorted({id(a): a for a in found}.values(), key=lambda a: a.size)
        rows = found[0]
        for other in found[1:]:
            if other.size * 16 > self.size:
                # A word in many GIFs: one gather from its cached bitmap, O(small).
                rows = rows[self._bitmap(other)[rows]]
            else:
                # Binary search of the smaller list in the larger: O(small * log large).
                at = np.minimum(np.searchsorted(other, rows), other.size - 1)
                rows = rows[other[at] == rows]
        return rows

    def _bitmap(self, rows: np.ndarray) -> np.ndarray:
        """A bool mask over all rows for a common word's list, made once per snapshot
        (few words are in more than 1/16 of the GIFs, so this stays small)."""
        key = id(rows)  # the postings arrays live as long as the index: ids are stable
        mask = self._bitmaps.get(key)
        if mask is None:
            mask = np.zeros(self.size, dtype=bool)
            mask[rows] = True
            # Only a postings list's: a list cut to what one asker sees (`lookup`) is gone
            # after the request, and its id could name another list later.
            if len(self._bitmaps) < 256 and key in self._posting_ids():
                self._bitmaps[key] = mask
        return mask

    def _posting_ids(self) -> frozenset[int]:
        if self._ids is None:
            self._ids = frozenset(id(rows) for rows in self.postings.values())
        return self._ids


def appeal_of(matrix: ScoreMatrix) -> tuple[np.ndarray, np.ndarray]:
    """A GIF's overall appeal: the posterior mean of its clearest emotion (the model's
    prediction moved by people's votes), and that estimate's standard deviation. A GIF that
    says one thing strongly beats a vague one; votes count through the posterior."""
    if matrix.size == 0:
        z = np.zeros(0, np.float32)
        return z, z
    best = np.argmax(matrix.mean, axis=0)
    cols = np.arange(matrix.size)
    return (matrix.mean[best, cols].astype(np.float32), matrix.sd[best, cols].astype(np.float32))


def load_words(engine: Engine, shas: list[str], chunk: int = 5000) -> list[set[str]]:
    """Each snapshot row's stems, read from the gifs table in chunks."""
    from sqlalchemy import select

    from scorer.store import Gif

    index = {s: i for i, s in enumerate(shas)}
    out: list[set[str]] = [set() for _ in shas]
    with engine.connect() as conn:
        for start in range(0, len(shas), chunk):
            part = shas[start: start + chunk]
            for sha, title, tags, alt, slug in conn.execute(
                    select(Gif.sha256, Gif.title, Gif.tags, Gif.alt_text, Gif.slug)
                    .where(Gif.sha256.in_(part))):
                out[index[sha]] = gif_words(title, tags, alt, slug)
    return out


def attach_topics(engine: Engine, matrix: ScoreMatrix) -> None:
    """Build the snapshot's topic index (called with every rebuild; never fails a rebuild)."""
    try:
        matrix.topics = TopicIndex.build(load_words(engine, matrix.shas), matrix)
    except Exception:
        log.exception("topics: index not built; topic words are ignored until the next rebuild")
        matrix.topics = None


# ---------------------------------------------------------------------------------------
# Reading a request
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """How a request was read: its feeling (`intent`) and its topic, if any."""

    intent: Intent
    topic: tuple[str, ...] = ()  # topic words as typed that GIFs here have
    rows: np.ndarray | None = None  # those GIFs' rows in the snapshot; None: no topic
    missing: tuple[str, ...] = ()  # topic words no GIF here has
    # Where the feeling came from when not the parser ("your last pick for these words",
    # bot.learned_phrases); "" shows the parser's confidence instead.
    feeling_source: str = ""
    # (typed, found) for a topic word no GIF here says, read as the nearest one that some do
    # ("toffee" -> "coffee"): `topic` holds the found word, and the preview says so.
    guessed: tuple[tuple[str, str], ...] = ()

    @property
    def emotion(self) -> str | None:
        return self.intent.emotion if self.intent.kind == "match" else None

    @property
    def topic_only(self) -> bool:
        return self.rows is not None and self.emotion is None

    def describe(self) -> str:
        """One line for the preview: how the request was read."""
        parts = []
        if self.emotion:
            parts.append(f"feeling: {self.emotion} ({self.feeling_source or f'{self.intent.confidence:.0%}'})")
        if self.topic:
            near = {found: typed for typed, found in self.guessed}
            parts.append("topic: " + " ".join(
                f"{w} (nearest to “{near[w]}”)" if w in near else w for w in self.topic))
        if self.topic_only:
            parts.append("no feeling named, so the best-liked ones first")
        line = "Read as " + "; ".join(parts) if parts else ""
        if self.missing:  # not a reading: what the pool lacks ("Read as no GIFs..." read oddly)
            lacking = "no GIFs here about " + _quote(self.missing)
            line = f"{line}; {lacking}" if line else lacking[0].upper() + lacking[1:]
        return line[:300]


def _quote(words: tuple[str, ...]) -> str:
    return " ".join(f"“{w}”" for w in words)


def missing_note(reading: Reading) -> str:
    """"no cat GIFs in this pool; here's happiness" when a topic matched nothing."""
    if not reading.missing:
        return ""
    what = " ".join(reading.missing)
    if reading.emotion:
        return f"No {what} GIFs in this pool; here's {reading.emotion}."
    return f"No {what} GIFs in this pool."


def read_request(parser: IntentParser, index: TopicIndex | None, text: str,
                 visible: np.ndarray | None = None) -> Reading:
    """Split a request into its feeling and its topic (see the module docstring), among the
    `visible` rows of the index only (None: all): another workspace's GIFs are not there."""
    from bot.intent_lexicon import TOPIC_WORDS

    full = parser.parse(text)
    roles = parser.word_roles(text)
    content = [(t, r) for t, r in roles if r != "function"]
    if (not content or len(content) > TOPIC_MAX_WORDS or len(roles) > TOPIC_MAX_TOKENS
            or full.kind == "help" or full.whole):
        return Reading(full)
    candidates = [t for t, r in content if r == "other" or t in TOPIC_WORDS]
    if not candidates:
        return Reading(full)
    found, missing, guessed = _looked_up(index, candidates, visible)
    reading = _topic_reading(parser, index, visible, text, full, content, found, missing)
    if not guessed or not reading.topic:
        return reading
    return replace(reading, topic=tuple(guessed.get(w, w) for w in reading.topic),
                   guessed=tuple((w, guessed[w]) for w in reading.topic if w in guessed))


def _topic_reading(parser: IntentParser, index: TopicIndex | None, visible: np.ndarray | None,
                   text: str, full: Intent, content: list[tuple[str, str]],
                   found: dict[str, np.ndarray], missing: list[str]) -> Reading:
    """The reading once the topic words are looked up (`found`, `missing`: as typed)."""
    feeling_words = [t for t, r in content if r in ("feeling", "weak") and t not in found]
    if not found:
        # Nothing here shows those words: say so, and answer the feeling (if any) alone. Only
        # for one word ("happy unicorn"): two or more unknown words are a situation told short
        # ("the build finally passed"), not a subject the pool lacks; nor for letters that are
        # no word at all ("asdfghjkl").
        if (feeling_words or len(content) == 1) and len(missing) == 1 and not _mash(parser, text):
            return Reading(full, missing=tuple(missing))
        return Reading(full)
    # Beside a topic that was found, an unmatched word is part of what is said ("i broke
    # prod": "broke"), not a subject the pool lacks.
    if feeling_words or [t for t, _ in content if t not in found]:
        return _with_feeling(_feeling_beside(parser, text, full, tuple(found)), index, found, visible)
    if (len(content) >= 2 and all(r == "other" for _, r in content) and full.kind == "match"
            and full.confidence >= SITUATION_MIN_CONFIDENCE):
        return _situation_in_nouns(full, index, found, visible)
    return _with_feeling(None, index, found, visible)


def _looked_up(index: TopicIndex | None, words: list[str], visible: np.ndarray | None
               ) -> tuple[dict[str, np.ndarray], list[str], dict[str, str]]:
    """The words that GIFs here say (with their rows), those no GIF says, and for a word
    found only as a typo's neighbour, the word it was read as ("toffee" -> "coffee")."""
    found: dict[str, np.ndarray] = {}
    missing: list[str] = []
    guessed: dict[str, str] = {}
    for word in dict.fromkeys(words):
        if index is None:
            missing.append(word)
            continue
        matched, rows = index.lookup(word, visible)
        if not rows.size:
            missing.append(word)
            continue
        found[word] = rows
        if matched != stem(word):
            guessed[word] = _as_word(matched or "")
    return found, missing, guessed


def _as_word(found_stem: str) -> str:
    """A stem as the word people know ("coffe" -> "coffee"), where one is near to hand."""
    from bot.intent_reader import english_vocab

    vocab = english_vocab()
    return next((w for w in (found_stem, found_stem + "e", found_stem + "s") if w in vocab), found_stem)


def _with_feeling(intent: Intent | None, index: TopicIndex | None,
                  found: dict[str, np.ndarray], visible: np.ndarray | None) -> Reading:
    """The topic's GIFs, ranked by the feeling when one was read, else by their appeal."""
    from bot.intent import Intent

    rows = index.rows_seen(list(found.values()), visible) if index is not None else None
    if intent is None or intent.kind != "match":
        intent = _no_feeling(Intent)
    return Reading(intent, tuple(found), rows)


def _situation_in_nouns(full: Intent, index: TopicIndex | None,
                        found: dict[str, np.ndarray], visible: np.ndarray | None) -> Reading:
    """A situation told in nouns ("deadline moved"), not a subject; but GIFs that say every
    one of its words ("keyboard smash", a GIF's own title) are what was asked for."""
    both = (index.rows_seen(list(found.values()), visible, every=True)
            if index is not None else None)
    if both is not None and both.size:
        return Reading(full, tuple(found), both)
    return Reading(full)


def _feeling_beside(parser: IntentParser, text: str, full: Intent, topic: tuple[str, ...]) -> Intent:
    """The feeling of a request that also names a topic: the whole request's reading, so it
    reads as `moodgif intent` and every surface read it, and a noun keeps its sentence ("prod is
    down" without "prod" is another situation); only a topic that is a feeling word of its own
    ("coffee monday": coffee, pizza, party; `TOPIC_WORDS`) is left out of it."""
    from bot.intent_lexicon import TOPIC_WORDS

    loaded = tuple(w for w in topic if w in TOPIC_WORDS)
    return parser.parse(_without(text, loaded)) if loaded else full


def _mash(parser: IntentParser, text: str) -> bool:
    """The request as typed is a keyboard mash (thirty x's read as the word "xx")."""
    from bot.intent import not_words, readable_text

    lex = getattr(parser, "lex", None)
    return lex is not None and not_words(lex, readable_text(text))


def _no_feeling(intent_cls: Any) -> Intent:
    return intent_cls(None, 0.0, [], "no feeling named", "topic")


def _without(text: str, words: tuple[str, ...]) -> str:
    out = text
    for w in words:
        out = re.sub(r"(?<![\w'])" + re.escape(w) + r"(?![\w'])", " ", out, flags=re.IGNORECASE)
    return " ".join(out.split())


def rank_topic(matrix: ScoreMatrix, index: TopicIndex, rows: np.ndarray, k: int, *,
               rng: np.random.Generator, pools: Sequence[str] | None, ceiling: str,
               rate: float = 1.0, exclude: tuple[str, ...] | list[str] = (),
               soft_exclude: tuple[str, ...] | list[str] = ()) -> tuple[list[str], int]:
    """A topic's GIFs by overall appeal, Thompson-sampled like the emotion ranking; only the
    topic's rows are scored, so a small topic is cheap in a huge pool.
    Returns (shas, how many of the topic's GIFs this channel allows)."""
    if rows.size == 0 or k <= 0:
        return [], 0
    pen, _ = matrix.penalty(pools, ceiling)
    allowed = rows[np.isfinite(pen[rows])]
    if allowed.size == 0:
        return [], 0
    if matrix.scored and index.appeal.size == matrix.size:
        score = index.appeal[allowed].copy()
        if rate > 0:
            score += rng.standard_normal(allowed.size).astype(np.float32) * index.appeal_sd[allowed] * rate
    else:
        score = rng.random(allowed.size, dtype=np.float32)
    eligible = int(allowed.size)  # before the selection below narrows `allowed` to `need`
    hard = set(exclude)
    soft = set(soft_exclude)
    need = k + len(hard) + len(soft)
    if allowed.size > need:  # select before sorting: a huge topic costs one partition
        top = np.argpartition(-score, need - 1)[:need]
        allowed, score = allowed[top], score[top]
    order = allowed[np.argsort(-score, kind="stable")]
    fresh = [matrix.shas[i] for i in order if matrix.shas[i] not in hard and matrix.shas[i] not in soft]
    picked = fresh[:k]
    if len(picked) < k:  # everything fresh is used up: the channel's recent ones again
        picked += [matrix.shas[i] for i in order
                   if matrix.shas[i] in soft and matrix.shas[i] not in hard][: k - len(picked)]
    return picked, eligible
