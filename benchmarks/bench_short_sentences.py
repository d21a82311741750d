"""How short sentences are read: the nineteenth round's candidates, scored through the whole
parser with the shipped sentence model (docs/bench/intent.md).

    .venv/bin/python benchmarks/bench_short_sentences.py                  # V0-V4 on the selection sets
    .venv/bin/python benchmarks/bench_short_sentences.py --sets terse1 --variants V0,V3

V0: as shipped. V1 / V2: sentences of up to 4 / 6 words read like 1-3 word requests (the kNN
vote over the bank plus the word model). V3: the fine-tuned path adds 0.5 x the kNN vote's
log-probabilities. V4: the fine-tuned path's word weight 0.5 (0.75 shipped). Held-out sets
are refused, as in bench_candidates.py.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ["MOODGIF_INTENT_SENTENCE_MODEL"] = "regression"  # the tuned reader is set below

import bench_candidates as bc  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.intent import IntentParser, _softmax  # noqa: E402
from scorer.emotions import N_EMOTIONS  # noqa: E402

DEFAULT_SETS = ("terse1,fresh13,fresh9,fresh11,fresh12,fresh7,pool346,issuetune,"
                "neutral2,neutral3,neutral5,shorttune,short2")
SHIPPED = IntentParser._sentence_probs
SHIPPED_MIN_WORDS = intent_mod.LOGREG_MIN_WORDS
SHIPPED_WORD_WEIGHT = intent_mod.TUNED_WORD_WEIGHT


def with_knn(self: IntentParser, snippet: str) -> list[float]:
    """V3: the shipped sentence reading times the kNN vote's probabilities to the power 0.5."""
    probs = SHIPPED(self, snippet)
    if len(snippet.split()) < intent_mod.LOGREG_MIN_WORDS:
        return probs
    scores, _ = intent_mod._EMBEDDER.evidence(snippet)
    vote = _softmax(scores, self.temperature)
    doubt = 1.0 - sum(probs)  # the no-feeling share stays what the fine-tuned model says
    z = [math.log(max(p, 1e-12)) + 0.5 * math.log(max(v, 1e-12)) for p, v in zip(probs, vote, strict=True)]
    return [(1.0 - doubt) * p for p in _softmax(z, 1.0)[:N_EMOTIONS]]


def use(variant: str) -> None:
    intent_mod.LOGREG_MIN_WORDS = {"V1": 5, "V2": 7}.get(variant, SHIPPED_MIN_WORDS)
    intent_mod.TUNED_WORD_WEIGHT = 0.5 if variant == "V4" else SHIPPED_WORD_WEIGHT
    IntentParser._sentence_probs = with_knn if variant == "V3" else SHIPPED  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=DEFAULT_SETS, help=f"comma-separated (default {DEFAULT_SETS})")
    ap.add_argument("--variants", default="V0,V1,V2,V3,V4")
    args = ap.parse_args()
    names = args.sets.split(",")
    parser = bc.shipped_parser(names)
    for variant in args.variants.split(","):
        use(variant)
        for name in names:
            print(variant, bc.set_line(parser, name), flush=True)


if __name__ == "__main__":
    main()
