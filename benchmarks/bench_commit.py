"""The twenty-seventh, twenty-ninth and thirty-second rounds: commit earlier where the fine-tuned model finds a feeling, now
that a wrong preview offers its other feelings as switches (docs/bench/intent.md; the rule is
in docs/bench/eleventh-round-rule.md).

    .venv/bin/python benchmarks/bench_commit.py
    .venv/bin/python benchmarks/bench_commit.py --variants T0,T1
    .venv/bin/python benchmarks/bench_commit.py --round 29   # fresh14 and neutral6 too
    .venv/bin/python benchmarks/bench_commit.py --round 32 --variants T0,T2,T4   # and fresh15, neutral7

T0: as shipped (commit at confidence >= 0.45). T1: also commit at >= 0.35 on the sentence
path (embedding or blend, four words or more) when `IntentParser.feeling_share` >= 0.5.
T2: the same at 0.30. T3: the threshold at 0.35 for everything, no gate. T4 (round 29): the
gate at 0.25. Scored on the selection pool (held-out sets are refused, as in
bench_candidates.py); round 29 adds fresh14 as its own group and neutral6 as a guard;
round 32 keeps those and judges fresh15 alone (and pooled), with neutral7 as a guard.
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
import bench_switches as bs  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.intent import IntentParser  # noqa: E402

# (threshold for everything, lower threshold behind the feeling gate or None)
VARIANTS = {"T0": (0.45, None), "T1": (0.45, 0.35), "T2": (0.45, 0.30), "T3": (0.35, None),
            "T4": (0.45, 0.25)}
GROUPS = {"fresh13": ["fresh13"], "fresh9+11+12": ["fresh9", "fresh11", "fresh12"],
          "fresh7+pool346": ["fresh7", "pool346"], "terse1": ["terse1"], "issuetune": ["issuetune"]}
GUARDS = ["neutral2", "neutral3", "neutral5", "shorttune", "short2"]
ROUND_29_GROUP = {"fresh14": ["fresh14"]}  # written after round 27; judged alone and pooled
ROUND_29_GUARDS = ["neutral6"]
ROUND_32_GROUP = {"fresh15": ["fresh15"]}  # written after round 29
ROUND_32_GUARDS = ["neutral7"]
FEELING_GATE = 0.5
SHIPPED_ANSWER = intent_mod._answer


def gated_answer(parser: IntentParser, low: float | None):  # type: ignore[no-untyped-def]
    """The shipped answer, committing also at `low` when the gate holds."""

    def answer(cleaned: str, probs: list[float], path: str, threshold: float) -> intent_mod.Intent:
        if low is not None and path in ("embedding", "blend") and probs:
            sentence = len(cleaned.split()) >= intent_mod.LOGREG_MIN_WORDS
            if sentence and low <= max(probs) < threshold and parser.feeling_share(cleaned) >= FEELING_GATE:
                return SHIPPED_ANSWER(cleaned, probs, path, low)
        return SHIPPED_ANSWER(cleaned, probs, path, threshold)

    return answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--round", type=int, choices=(27, 29, 32), default=27)
    args = ap.parse_args()
    groups, guards, judged = dict(GROUPS), list(GUARDS), dict(GROUPS)
    if args.round >= 29:
        groups |= ROUND_29_GROUP
        guards += ROUND_29_GUARDS
        judged = ROUND_29_GROUP
    if args.round >= 32:
        groups |= ROUND_32_GROUP
        guards += ROUND_32_GUARDS
        judged = ROUND_32_GROUP
    parser = bc.shipped_parser([s for names in groups.values() for s in names] + guards)
    pooled = [r for names in judged.values() for name in names for r in bc.rows_of(name)]
    for variant in args.variants.split(","):
        parser.threshold, low = VARIANTS[variant]
        intent_mod._answer = gated_answer(parser, low)  # type: ignore[assignment]
        bc.pooled_groups(parser, groups, variant)
        m = bs.one_click(parser, pooled)
        print(f"{variant} {'/'.join(judged)} within one click {m['one_click']:.4f} (right at once {m['top1']:.4f}, "
              f"previews with switches {m['switches_shown']:.3f})", flush=True)
        for name in guards:
            print(variant, bc.set_line(parser, name), flush=True)
    intent_mod._answer = SHIPPED_ANSWER


if __name__ == "__main__":
    main()
