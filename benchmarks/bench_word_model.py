"""The naive-Bayes word model beside the tuned encoder: a grid over its smoothing, how its
evidence grows with the number of words, and its weight, each read through the whole parser
(docs/bench/intent.md, "Eleventh round").

    .venv/bin/python benchmarks/bench_word_model.py                       # the guard sets
    .venv/bin/python benchmarks/bench_word_model.py --sets fresh11        # the selection set

Why: on the issue's tune sentences some confident misses were the word model's, not the
encoder's ("the merge conflict has 400 lines": the encoder read no feeling at 0.99, and the
words' log-likelihoods, summed over every word and pair, outvoted it by several nats). `sum`
is the shipped evidence; `sqrt` divides it by the square root of the number of known features,
so a long line's words weigh about as much as a short one's. Held-out sets are refused.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_candidates as bc  # noqa: E402  (sets the regression reader: no background build)
import bench_intent as bench  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot import situation_words  # noqa: E402

DEFAULT_SETS = "tunesent,fresh7,fresh9,pool346,neutral2,neutral3,shorttune,short2"
ALPHAS = (0.1, 0.3, 1.0)
EVIDENCE = ("sum", "sqrt")
WEIGHTS = (0.5, 0.75, 1.0)


class ScaledWordModel(situation_words.WordModel):
    """The bank's word model as shipped (its evidence summed, capped at EVIDENCE_CAP features'
    worth since the fifteenth round) or that divided by sqrt(n)."""

    def __init__(self, lines: list[tuple[str, int]], alpha: float, evidence: str) -> None:
        super().__init__(lines, alpha=alpha)
        self.evidence = evidence

    def log_likelihood(self, text: str) -> list[float]:
        out = super().log_likelihood(text)
        n = sum(1 for f in situation_words.features(text) if f in self.vocab)
        if self.evidence == "sqrt" and n > 1:
            out = [x / math.sqrt(n) for x in out]
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=DEFAULT_SETS, help=f"comma-separated (default {DEFAULT_SETS})")
    args = ap.parse_args()
    names = args.sets.split(",")
    parser = bc.shipped_parser(names)
    emb = intent_mod._EMBEDDER
    texts, owner = intent_mod.bank_texts()
    rows = {n: bc.rows_of(n) for n in names if n not in bc.FLAT}
    lines = list(zip(texts, owner, strict=True))
    for alpha, evidence, weight in itertools.product(ALPHAS, EVIDENCE, WEIGHTS):
        emb.words = ScaledWordModel(lines, alpha, evidence)
        intent_mod.TUNED_WORD_WEIGHT = weight
        cells = []
        for n in names:
            if n in bc.FLAT:
                cells.append(bc.flat_shares(parser, n))
            else:
                m = bench.evaluate(parser, rows[n])
                cells.append(f"{n} {m['top1']:.3f}/{m['top3']:.3f}")
        print(f"alpha {alpha:<4} {evidence:4} weight {weight:<4} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
