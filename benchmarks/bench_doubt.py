"""Who decides that a line has no feeling: the sixteenth to eighteenth rounds' candidates,
scored through the whole parser with the shipped sentence model (docs/bench/intent.md).

    .venv/bin/python benchmarks/bench_doubt.py                       # W1 (shipped), W4, W4a, W4b
    .venv/bin/python benchmarks/bench_doubt.py --watch               # watch offers with and without gate G
    .venv/bin/python benchmarks/bench_doubt.py --sets fresh13,neutral5 --variants W1,W4b

W1: as shipped. W4: the no-feeling share is the fine-tuned model's own softmax share, and the
17 emotions split the rest by its logits plus the bank's word model. W4a / W4b: W4 with the
commit threshold at 0.40 / 0.35. G (`--watch`): an unasked offer also needs the fine-tuned
model to read more feeling than not (`IntentParser.feeling_share` >= 0.5). None is the
default: each failed its rule; G ships as the opt-in `channel strict on` (bot.flows.offers).
Held-out sets are refused, as in bench_candidates.py.
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
from bot.flows.offers import WATCH_STRICT_FEELING, clearly_felt  # noqa: E402
from bot.intent import IntentParser, _softmax  # noqa: E402
from scorer.emotions import N_EMOTIONS  # noqa: E402

DEFAULT_SETS = "fresh13,fresh9,fresh11,fresh12,fresh7,pool346,issuetune,neutral2,neutral3,neutral5,shorttune,short2"
THRESHOLDS = {"W1": 0.45, "W4": 0.45, "W4a": 0.40, "W4b": 0.35}
SHIPPED = IntentParser._sentence_probs


def _tuned_logits(snippet: str) -> list[float] | None:
    logits, tuned = intent_mod._EMBEDDER.sentence_logits(snippet)
    if not tuned or len(logits) <= N_EMOTIONS:
        return None
    return [intent_mod.TUNED_WEIGHT * float(x) for x in logits]


def w4_probs(self: IntentParser, snippet: str) -> list[float]:
    z = _tuned_logits(snippet) if len(snippet.split()) >= intent_mod.LOGREG_MIN_WORDS else None
    if z is None:
        return SHIPPED(self, snippet)
    doubt = _softmax(z, 1.0)[N_EMOTIONS]
    words = intent_mod._EMBEDDER.words.log_likelihood(snippet)
    mixed = [x + intent_mod.TUNED_WORD_WEIGHT * w for x, w in zip(z[:N_EMOTIONS], words, strict=True)]
    return [(1.0 - doubt) * p for p in _softmax(mixed, 1.0)]


def watch_offers(parser: IntentParser, name: str) -> str:
    if name in bc.FLAT:
        texts, accepted = bc.flat_texts(name), None
    else:
        rows = bc.rows_of(name)
        texts, accepted = [r[0] for r in rows], [r[1] for r in rows]
    plain = gated = 0
    for i, text in enumerate(texts):
        it = parser.parse(text)
        right = clearly_felt(it, text, 0.0) and (accepted is None or it.emotion in accepted[i])
        plain += right
        gated += right and parser.feeling_share(text) >= WATCH_STRICT_FEELING
    what = "flat offers" if accepted is None else "right offers"
    return f"{name} n={len(texts)} {what}: W1 {plain / len(texts):.3f}  G {gated / len(texts):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=DEFAULT_SETS, help=f"comma-separated (default {DEFAULT_SETS})")
    ap.add_argument("--variants", default="W1,W4,W4a,W4b", help="comma-separated of " + ", ".join(THRESHOLDS))
    ap.add_argument("--watch", action="store_true", help="watch offers with and without gate G")
    args = ap.parse_args()
    names = args.sets.split(",")
    parser = bc.shipped_parser(names)
    if args.watch:
        for name in names:
            print(watch_offers(parser, name), flush=True)
        return
    for variant in args.variants.split(","):
        IntentParser._sentence_probs = w4_probs if variant.startswith("W4") else SHIPPED  # type: ignore[method-assign]
        parser.threshold = THRESHOLDS[variant]
        for name in names:
            print(variant, bc.set_line(parser, name), flush=True)


if __name__ == "__main__":
    main()
