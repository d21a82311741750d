"""The GIF-title reaction vocabulary: "slow clap", "facepalm", "thumbs up" -> the 17 axes.

GIF titles and slugs name the reaction a GIF is posted as, words the bot's intent lexicon
(written for chat requests) mostly does not know. `scorer/data/reaction_words.tsv` maps them
by meaning (its header gives the source and the rule); `reading(text)` finds them in a GIF's
words. The prior's words channel (`scorer.prior.word_channel`) merges this reading with the
intent model's. Never raises on any text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

import numpy as np

from scorer.emotions import INDEX, N_EMOTIONS

FILE = "reaction_words.tsv"
MAX_WORDS = 200  # words of a GIF's text looked at: titles and tags, not essays
_REPEAT = re.compile(r"(.)\1{2,}")
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def words(text: str) -> list[str]:
    """Lower-case words: apostrophes dropped, anything but a letter or digit splits, and a
    letter repeated 3+ times counts twice ("Awwww!!" -> ["aww"])."""
    text = unicodedata.normalize("NFKD", str(text or "")).lower().replace("’", "").replace("'", "")
    text = _REPEAT.sub(r"\1\1", text)
    return [w for w in _NOT_WORD.split(text) if w][:MAX_WORDS]


class VocabularyError(ValueError):
    pass


@lru_cache(maxsize=1)
def vocabulary() -> dict[tuple[str, ...], np.ndarray]:
    """term words -> (17,) weights; a phrase is also keyed as one joined word ("facepalm")."""
    text = resources.files("scorer").joinpath("data", FILE).read_text(encoding="utf-8")
    out: dict[tuple[str, ...], np.ndarray] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        term, *fields = line.split("\t")
        vec = np.zeros(N_EMOTIONS)
        for field in fields:
            name, _, weight = field.partition(":")
            if name not in INDEX or not weight:
                raise VocabularyError(f"{FILE}:{lineno}: bad field {field!r}")
            vec[INDEX[name]] = float(weight)
        key = tuple(words(term))
        if not key or not fields or not 0 < vec.max() <= 1:
            raise VocabularyError(f"{FILE}:{lineno}: {line!r}")
        for k in {key, ("".join(key),)}:
            if k in out and not np.array_equal(out[k], vec):
                raise VocabularyError(f"{FILE}:{lineno}: {term!r} is defined twice differently")
            out[k] = vec
    return out


def reading(text: str) -> np.ndarray | None:
    """(17,) evidence of the reaction terms in `text`, None when it has none. Longest match
    first, each word read once ("slow clap" is contempt, not also "clap"); several terms
    add up and the top is capped at the strongest term's weight, so two reactions spread
    the reading without making it surer than either."""
    vocab = vocabulary()
    longest = max(len(k) for k in vocab)
    tokens = words(text)
    total = np.zeros(N_EMOTIONS)
    top = 0.0
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            vec = vocab.get(tuple(tokens[i:i + n]))
            if vec is not None:
                total += vec
                top = max(top, float(vec.max()))
                i += n
                break
        else:
            i += 1
    if top == 0:
        return None
    return total / total.max() * top


__all__ = ["FILE", "VocabularyError", "reading", "vocabulary", "words"]
