"""What would fix the parser's sentence misses? Two diagnostics of the twenty-sixth round
(docs/bench/intent.md), on tune sentences only (held-out sets are refused).

    .venv/bin/pip install vadersentiment==3.3.2     # MIT; not a moodgif dependency
    .venv/bin/python benchmarks/bench_sentence_misses.py valence           # the 204 tune sentences
    .venv/bin/python benchmarks/bench_sentence_misses.py valence --sets issuetune --show
    .venv/bin/python benchmarks/bench_sentence_misses.py cap               # word-model cap grid

`cap`: the word model's spread on a sentence (its best log-likelihood minus its median) is
scaled down to S nats when larger, for S in 6, 4, 3, 2, 1, and the sets are scored through
the whole parser (top-1, best guess, top-3, answered).

`valence`:
A miss is a "valence flip" when every accepted feeling is positive and the parser's answer
(or best guess) negative, or the other way round (surprise counts as neither). VADER's
compound score, read as a sign at |compound| >= 0.3, is the candidate signal: the count of
flips whose sign it gets right is what tilting the sentence model towards it could win, and
the count of right answers it opposes is what it could lose.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ["MOODGIF_INTENT_SENTENCE_MODEL"] = "regression"  # the tuned reader is set below

import bench_candidates as bc  # noqa: E402
import bench_intent as bench  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.intent_lexicon import POSITIVE  # noqa: E402
from scorer.emotions import NAMES  # noqa: E402

NEGATIVE = frozenset(NAMES) - POSITIVE - {"surprise", "amusement"}
POSITIVE_ALL = POSITIVE | {"amusement"}
DECIDED = 0.3


def valence(feelings: set[str]) -> int:
    """+1 when every feeling is positive, -1 when every one is negative, else 0."""
    feelings = feelings - {"surprise"}
    if feelings and feelings <= POSITIVE_ALL:
        return 1
    if feelings and feelings <= NEGATIVE:
        return -1
    return 0


def cap_grid(names: list[str]) -> None:
    """Each cap S through the whole parser, the sets pooled."""
    parser = bc.shipped_parser(names)
    shipped = intent_mod._read_by_logits
    rows = [r for name in names for r in bc.rows_of(name)]
    for cap in (None, 6.0, 4.0, 3.0, 2.0, 1.0):
        def capped(snippet: str, words: list[float] | None, cap: float | None = cap) -> list[float]:
            if words and cap is not None:
                top, spread = max(words), max(words) - statistics.median(words)
                if spread > cap:
                    words = [top + (w - top) * cap / spread for w in words]
            return shipped(snippet, words)

        intent_mod._read_by_logits = capped  # type: ignore[assignment]
        m = bench.evaluate(parser, rows)
        print(f"cap {cap or 'none'}: n={len(rows)} top-1 {m['top1']:.3f} best guess {m['best_guess']:.3f} "
              f"top-3 {m['top3']:.3f} answered {m['answered']:.3f}", flush=True)
    intent_mod._read_by_logits = shipped


def valence_flips(names: list[str], show: bool) -> None:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        sys.exit("needs vadersentiment: .venv/bin/pip install vadersentiment==3.3.2")
    parser = bc.shipped_parser(names)
    vader = SentimentIntensityAnalyzer()
    c: Counter[str] = Counter()
    for name in names:
        for text, accepted, _ in bc.rows_of(name):
            r = parser.parse(text)
            guess = r.emotion or (r.alternatives[0][0] if r.alternatives else None)
            want = valence(set(accepted))
            compound = vader.polarity_scores(text)["compound"]
            sign = 1 if compound >= DECIDED else -1 if compound <= -DECIDED else 0
            c["lines"] += 1
            c["one valence"] += want != 0
            if want and sign:
                c["vader decides"] += 1
                c["vader right"] += sign == want
            if r.emotion in accepted:
                c["parser right"] += 1
                c["right, vader opposes"] += bool(want and sign and sign != want)
                continue
            got = valence({guess}) if guess else 0
            if want and got and got != want:
                c["flips"] += 1
                c["flips vader fixes"] += sign == want
                if show:
                    print(f"flip: {text!r} accepted {sorted(accepted)} got {guess} vader {compound:+.2f}")
    for key, value in c.items():
        print(f"{key}: {value}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("valence", "cap"))
    ap.add_argument("--sets", default="tunesent")
    ap.add_argument("--show", action="store_true", help="valence: print each flip")
    args = ap.parse_args()
    names = args.sets.split(",")
    if args.mode == "cap":
        cap_grid(names)
    else:
        valence_flips(names, args.show)


if __name__ == "__main__":
    main()
