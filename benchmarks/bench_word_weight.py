"""The thirty-seventh round: the bank's word model's weight beside the fine-tuned sentence
model (`bot.intent.TUNED_WORD_WEIGHT`), asked again on today's selection pool (the rule is in
docs/bench/eleventh-round-rule.md).

    .venv/bin/python benchmarks/bench_word_weight.py
    .venv/bin/python benchmarks/bench_word_weight.py --weights 0.5,0.75

Each weight is read through the whole parser with this checkout's built model, in one process
(the sentence encodings are cached and shared, so a weight costs the parsing, not the
encoding). Held-out sets are refused, as in bench_candidates.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ["MOODGIF_INTENT_SENTENCE_MODEL"] = "regression"  # the tuned reader is set below

import bench_candidates as bc  # noqa: E402

from bot import intent as intent_mod  # noqa: E402

GROUPS = {"fresh13": ["fresh13"], "fresh9+11+12": ["fresh9", "fresh11", "fresh12"],
          "fresh7+pool346": ["fresh7", "pool346"], "terse1": ["terse1"], "issuetune": ["issuetune"],
          "fresh14": ["fresh14"], "fresh15": ["fresh15"], "mishaps1": ["mishaps1"]}
GUARDS = ["neutral2", "neutral3", "neutral5", "neutral6", "neutral7", "shorttune", "short2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="0,0.25,0.5,0.75,1.0,1.25")
    args = ap.parse_args()
    parser = bc.shipped_parser([s for names in GROUPS.values() for s in names] + GUARDS)
    intent_mod.EMBED_CACHE_SIZE = 20_000  # every line's encoding kept across the weights
    shipped = intent_mod.TUNED_WORD_WEIGHT
    try:
        for weight in (float(w) for w in args.weights.split(",")):
            intent_mod.TUNED_WORD_WEIGHT = weight
            label = f"ww={weight:g}" + (" (shipped)" if weight == shipped else "")
            bc.pooled_groups(parser, GROUPS, label)
            for name in GUARDS:
                print(label, bc.set_line(parser, name), flush=True)
    finally:
        intent_mod.TUNED_WORD_WEIGHT = shipped


if __name__ == "__main__":
    main()
