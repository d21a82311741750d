"""The twenty-eighth round: the labelled chat lines that are not held out, as training lines
(docs/bench/intent.md; the rule is in docs/bench/eleventh-round-rule.md).

    .venv/bin/python benchmarks/chat_lines.py build --half all  --out bot/data/chat_lines.tsv
    .venv/bin/python benchmarks/chat_lines.py build --half even --out /tmp/even.tsv   # fold A's
    .venv/bin/python benchmarks/chat_lines.py score --half odd     # this checkout's model on odd

`build` gathers the tune and selection sets' lines (TRAIN_SETS), drops exact copies of a bank
line and lines close to any held-out line (MiniLM cosine >= 0.85), and writes one training
line (`emotion<TAB>line`) per accepted feeling. `--half even|odd` keeps every other line of
each set (by its place in the set, counted before any line is dropped), for 2-fold
cross-validation. `score --half H` reads the lines of half H through this checkout's built
sentence model (pooled top-1 / top-3), then the flat and short guard sets.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("MOODGIF_INTENT_SENTENCE_MODEL", "regression")  # the tuned reader is set below

import bench_intent as bench  # noqa: E402
import near_copies  # noqa: E402

Row = tuple[str, set[str]]
FRESH_SETS = ("fresh", "fresh2", "fresh3", "fresh4", "fresh6", "fresh7", "fresh9", "fresh11",
              "fresh12", "fresh13", "terse1")
HELD_OUT_FILES = ("intent_sentences_fresh5.csv", "intent_sentences_fresh8.csv",
                  "intent_sentences_fresh10.csv", "intent_sentences_extra.csv",
                  "intent_sentences_terse2.csv", "no_feeling_eval4.csv")
GUARDS = ["neutral2", "neutral3", "neutral5", "shorttune", "short2"]


def train_sets() -> dict[str, list[Row]]:
    """Every labelled chat line that is not held out, by set, in file order."""
    sets = {"issuetune": [(t, a) for t, a, s in bench.load_rows(bench.SENTENCES) if s == "tune"],
            "evaltune": [(t, a) for t, a, s in bench.load_rows()
                         if s == "tune" and not bench.is_short(t)]}
    for name in FRESH_SETS:
        sets[name] = [(t, a) for t, a, _ in bench.load_rows(DATA / f"intent_sentences_{name}.csv")]
    return sets


def held_out_lines() -> list[str]:
    lines = [t for t, _, s in bench.load_rows(bench.SENTENCES) if s == "holdout"]
    lines += [t for t, _, s in bench.load_rows() if s == "holdout"]
    for name in HELD_OUT_FILES:
        with (DATA / name).open(newline="", encoding="utf-8") as fh:
            lines += [r["text"] for r in csv.DictReader(fh) if r["text"]]
    return lines


def half_of(sets: dict[str, list[Row]], half: str) -> list[Row]:
    keep = {"all": lambda i: True, "even": lambda i: i % 2 == 0, "odd": lambda i: i % 2 == 1}[half]
    return [row for rows in sets.values() for i, row in enumerate(rows) if keep(i)]


def build(half: str, out: Path) -> None:
    rows = half_of(train_sets(), half)
    bank = {" ".join(t.lower().split()) for _, t in near_copies.read_tsv(near_copies.BANK)}
    fresh, seen = [], set()
    for text, accepted in rows:
        key = " ".join(text.lower().split())
        if key in bank or key in seen:
            continue
        seen.add(key)
        fresh.append((text, accepted))
    close = near_copies.nearest([t for t, _ in fresh], held_out_lines())[1] >= near_copies.NEAR
    kept = [row for row, near in zip(fresh, close, strict=True) if not near]
    lines = [f"{e}\t{' '.join(t.split())}\n" for t, acc in kept for e in sorted(acc)]
    out.write_text("# The labelled chat lines that are not held out, one line per accepted feeling\n"
                   f"# (benchmarks/chat_lines.py build --half {half}; the twenty-eighth round).\n"
                   + "".join(lines), encoding="utf-8")
    print(f"{len(rows)} lines, {len(rows) - len(fresh)} copies, {int(close.sum())} close to a held-out "
          f"line: kept {len(kept)} -> {len(lines)} training lines in {out}")


def score(half: str) -> None:
    import bench_candidates as bc

    parser = bc.shipped_parser(GUARDS)
    rows = [(t, a, half) for t, a in half_of(train_sets(), half)]
    m = bench.evaluate(parser, rows)
    print(f"half {half} n={len(rows)} top-1 {m['top1']:.4f} top-3 {m['top3']:.4f} "
          f"answered {m['answered']:.4f}", flush=True)
    for name in GUARDS:
        print(bc.set_line(parser, name), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("build", "score"))
    ap.add_argument("--half", choices=("all", "even", "odd"), default="all")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.command == "build":
        if args.out is None:
            sys.exit("build needs --out")
        build(args.half, args.out)
    else:
        score(args.half)


if __name__ == "__main__":
    main()
