"""Which words the situation bank uses for each emotion: a naive Bayes word model beside
the sentence embedding.

MiniLM's mean-pooled embedding is dominated by a sentence's topic ("meeting", "lunch"), so
the nearest bank lines often share the topic and miss the feeling. The words that tell
feelings apart inside a topic ("cancelled", "again", "finally", "first try") are few and
repeated across the bank; counting them per emotion is cheap, needs no model, and on the
bank's own 5-fold cross-validation and the tune splits it corrects the kNN vote
(docs/bench/intent.md). `bot.intent` builds it from the same lines it embeds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from itertools import pairwise

from bot.intent_lexicon import STOPWORDS
from scorer.emotions import N_EMOTIONS

# Additive smoothing; small, because a word the bank has seen only under one emotion is
# the evidence this model exists for (chosen with the blend weight on the tune splits).
ALPHA = 0.1
# Function words that still separate feelings: "again" (anger), "finally" (relief).
_KEEP = frozenset({"not", "no", "never", "again", "finally", "still", "anymore"})
_WORD = re.compile(r"[a-z0-9]+")
# A text's evidence counts as at most this many known features: the sums grow with length,
# and on a long flat message ("handover for the weekend: the export runs at 01:00, ...") they
# outweighed the sentence model's no-feeling class, so long logistics read as a feeling.
# A typical chat sentence has fewer and is unchanged (docs/bench/intent.md, fifteenth round).
EVIDENCE_CAP = 8


def features(text: str) -> list[str]:
    """Content words (a plural's final s dropped) and adjacent pairs of them."""
    words = _WORD.findall(text.lower().replace("'", "").replace("’", ""))
    kept = [w for w in words if w not in STOPWORDS or w in _KEEP]
    stems = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in kept]
    return stems + [a + "_" + b for a, b in pairwise(stems)]


class WordModel:
    """Per-emotion log P(word | emotion) from bank lines, each line's words counted once."""

    def __init__(self, lines: Iterable[tuple[str, int]], alpha: float = ALPHA) -> None:
        counts: list[dict[str, int]] = [{} for _ in range(N_EMOTIONS)]
        vocab: set[str] = set()
        for text, owner in lines:
            for f in set(features(text)):
                counts[owner][f] = counts[owner].get(f, 0) + 1
                vocab.add(f)
        self.vocab = frozenset(vocab)
        totals = [sum(c.values()) + alpha * len(vocab) for c in counts]
        self._logp: dict[str, list[float]] = {
            f: [math.log((c.get(f, 0) + alpha) / t) for c, t in zip(counts, totals, strict=True)]
            for f in vocab
        }

    def log_likelihood(self, text: str) -> list[float]:
        """Sum over the text's known features of log P(feature | emotion), per emotion, scaled
        to `EVIDENCE_CAP` features' worth when it knows more; all zeros when the bank never
        used any of its words (no evidence either way)."""
        out = [0.0] * N_EMOTIONS
        known = 0
        for f in features(text):
            row = self._logp.get(f)
            if row is not None:
                known += 1
                for k in range(N_EMOTIONS):
                    out[k] += row[k]
        if known > EVIDENCE_CAP:
            scale = EVIDENCE_CAP / known
            out = [x * scale for x in out]
        return out
