"""Intent accuracy on one `text,accepted,split` CSV, with its misses listed.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_intent_short.py tests/data/intent_short_fresh2.csv
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_intent_short.py FILE --no-embeddings
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_intent_short.py FILE --no-misses

Made for tuning sets such as the fresh2 short requests (tests/data/intent_short_fresh2.csv):
it prints top-1 (the parser commits, confidence >= threshold, to an accepted emotion),
best-guess top-1 (the most likely emotion even below the threshold), top-3 (the committed
emotion or any of the first three choices shown), the share answered, and then every miss.
The scoring is `benchmarks/bench_intent.py`'s `evaluate`, so the figures mean the same thing.

Never point it at a held-out file (the holdout rows of intent_sentences.csv or
intent_eval.csv, or intent_sentences_extra.csv): a list of misses is a list of things to fix,
and held-out lines must not be fixed for. `--no-misses` prints the figures alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_intent import evaluate, load_rows  # noqa: E402
from bot import intent as intent_mod  # noqa: E402
from bot.intent import IntentParser  # noqa: E402


def misses(parser: IntentParser, rows: list[tuple[str, set[str], str]]) -> list[str]:
    """One line per row the parser does not commit to an accepted emotion."""
    out = []
    for text, accepted, _ in rows:
        res = parser.parse(text)
        if res.emotion not in accepted:
            shown = [(e, round(c, 2)) for e, c in res.alternatives]
            out.append(f"MISS {text!r}: want {'|'.join(sorted(accepted))}, got {res.emotion} "
                       f"({res.confidence:.2f}) {shown}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, help="a text,accepted,split file")
    ap.add_argument("--no-embeddings", action="store_true", help="lexicon + typos only")
    ap.add_argument("--no-misses", action="store_true", help="figures only")
    args = ap.parse_args()
    rows = load_rows(args.csv)
    parser = IntentParser(use_embeddings=not args.no_embeddings)
    if not args.no_embeddings and not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    m = evaluate(parser, rows)
    print(f"{args.csv.name}: n={m['n']} threshold {parser.threshold}  top1 {m['top1']:.3f}  "
          f"best-guess {m['best_guess']:.3f}  top3 {m['top3']:.3f}  answered {m['answered']:.3f}  "
          f"precision-when-answered {m['precision_when_answered']:.3f}")
    if not args.no_misses:
        for line in misses(parser, rows):
            print(line)


if __name__ == "__main__":
    main()
