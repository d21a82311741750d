"""Issue 15: the fine-tuned sentence model (bot.sentence_tuning) against the bank regression,
each read by the whole parser (lexicon, blend, sarcasm, threshold), only the sentence model
switched.

    .venv/bin/python benchmarks/bench_sentence_tuning.py                 # the tune sentences
    .venv/bin/python benchmarks/bench_sentence_tuning.py --fresh NEW.csv # a set nobody tuned on
    .venv/bin/python benchmarks/bench_sentence_tuning.py --held          # the held-out sets
    .venv/bin/python benchmarks/bench_sentence_tuning.py --neutral tests/data/no_feeling_eval.csv
        # lines with no feeling: how often a feeling is committed, and how often watch mode
        # would offer a GIF (confidence >= its 0.8)

The tuned model is the one `scripts/setup` built for this bank (built here first if missing).
Rows of a --fresh set that copy a bank line or a line of another set are dropped first.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_intent as bench  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.intent import IntentParser  # noqa: E402
from bot.sentence_tuning import load_no_feeling, load_reader, tuned_files  # noqa: E402
from scorer.emotions import NAMES  # noqa: E402

Row = tuple[str, set[str], str]
OTHER_SETS = ("intent_sentences_fresh.csv", "intent_sentences_fresh2.csv",
              "intent_short_fresh2.csv", "intent_sentences_extra.csv", "intent_sentences_fresh3.csv",
              "intent_sentences_fresh4.csv", "intent_sentences_fresh5.csv",
              "intent_sentences_fresh6.csv", "intent_sentences_fresh7.csv",
              "intent_sentences_fresh8.csv", "intent_sentences_fresh9.csv",
              "intent_sentences_fresh10.csv", "intent_sentences_terse1.csv",
              "intent_sentences_terse2.csv", "intent_sentences_fresh14.csv",
              "intent_sentences_fresh15.csv")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def load_fresh(path: Path) -> list[Row]:
    """A new set (text, accepted), less the lines that copy the bank or another set."""
    seen = {_norm(t) for t in intent_mod.bank_texts()[0]}
    seen |= {_norm(r[0]) for r in bench.load_rows(bench.SENTENCES) + bench.load_rows()}
    for name in OTHER_SETS:
        if (REPO / "tests" / "data" / name).resolve() != path.resolve():
            with (REPO / "tests" / "data" / name).open(newline="", encoding="utf-8") as fh:
                seen |= {_norm(r["text"]) for r in csv.DictReader(fh)}
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], set(r["accepted"].split("|")), "fresh") for r in csv.DictReader(fh)]
    unknown = sorted({e for _, acc, _ in rows for e in acc} - set(NAMES))
    if unknown:
        sys.exit(f"{path}: emotions that are not among the 17: {unknown}")
    kept = [r for r in rows if _norm(r[0]) not in seen]
    print(f"{path.name}: {len(rows)} lines, {len(rows) - len(kept)} dropped as copies")
    return kept


def neutral_shares(parser: IntentParser, path: Path, tuned: object) -> None:
    """Lines that carry no feeling should be asked about, not answered: the share the parser
    commits to a feeling, and the share watch mode would offer a GIF for, per kind of line."""
    from collections import defaultdict

    from bot.flows.offers import WATCH_MIN_CONFIDENCE

    with path.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r.get("kind", "")) for r in csv.DictReader(fh)]
    for label, reader in (("bank regression", None), ("tuned MiniLM", tuned)):
        intent_mod._EMBEDDER.use_tuned(reader)
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for text, kind in rows:
            res = parser.parse(text)
            for key in (kind, "all"):
                per[key][0] += 1
                per[key][1] += res.emotion is not None
                per[key][2] += res.emotion is not None and res.confidence >= WATCH_MIN_CONFIDENCE
        for key in ["all", *sorted(k for k in per if k != "all")]:
            n, committed, offered = per[key]
            print(f"{path.name} {label:16} {key:15} n={n:<4} committed {committed / n:.3f}  "
                  f"watch offer {offered / n:.3f}", flush=True)


def held_sets() -> dict[str, list[Row]]:
    """The held-out sets, by name: read once, after a choice is made."""
    rows, sentences = bench.load_rows(), bench.load_rows(bench.SENTENCES)
    data = REPO / "tests" / "data"
    return {
        "chat sentences holdout": [r for r in sentences if r[2] == "holdout"],
        "own extra set (holdout)": bench.load_rows(bench.EXTRA),
        "eval-set sentences holdout": [r for r in rows if r[2] == "holdout" and not bench.is_short(r[0])],
        "short requests holdout": [r for r in rows if r[2] == "holdout" and bench.is_short(r[0])],
        # written after every choice of 2026-11-29's third session, never used for one
        "fresh5 team chat (holdout)": bench.load_rows(data / "intent_sentences_fresh5.csv"),
        # written during 2026-11-29's fourth session, read once after its bank round
        "fresh8 chat (holdout)": bench.load_rows(data / "intent_sentences_fresh8.csv"),
        # written during 2026-11-29's fifth session, read once after its bank round
        "fresh10 team chat (holdout)": bench.load_rows(data / "intent_sentences_fresh10.csv"),
        # written during 2026-11-29's sixth session in the issue's terse style, read once after
        "terse2 short lines (holdout)": bench.load_rows(data / "intent_sentences_terse2.csv"),
    }


def tune_sets() -> dict[str, list[Row]]:
    rows, sentences = bench.load_rows(), bench.load_rows(bench.SENTENCES)
    return {"tune sentences": [r for r in sentences if r[2] == "tune"]
            + [r for r in rows if r[2] == "tune" and not bench.is_short(r[0])]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", type=Path, metavar="CSV", help="read only this new set")
    ap.add_argument("--held", action="store_true", help="read the held-out sets (once!)")
    ap.add_argument("--neutral", type=Path, metavar="CSV",
                    help="lines with no feeling (text,kind): commit and watch-offer shares")
    args = ap.parse_args()
    parser = IntentParser()
    if not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    if args.fresh is not None:
        sets = {args.fresh.name: load_fresh(args.fresh)}
    elif args.held:
        sets = held_sets()
    else:
        sets = tune_sets()
    emb = intent_mod._EMBEDDER
    if emb.tuned is None:
        texts, owner = intent_mod.bank_texts()
        if load_reader(tuned_files(texts, owner, no_feeling=load_no_feeling())) is None:
            print("building the tuned model first (python -m bot.sentence_tuning)", flush=True)
        if not emb.wait_tuned(3600):
            sys.exit("the tuned sentence model could not be built (see the log)")
    tuned = emb.tuned
    if args.neutral is not None:
        neutral_shares(parser, args.neutral, tuned)
        return
    for name, rs in sets.items():
        for label, reader in (("bank regression", None), ("tuned MiniLM", tuned)):
            emb.use_tuned(reader)  # None: the regression
            m = bench.evaluate(parser, rs)
            print(f"{name:27} {label:16} n={len(rs):<4} top-1 {m['top1']:.3f}  best guess "
                  f"{m['best_guess']:.3f}  top-3 {m['top3']:.3f}  answered {m['answered']:.3f}", flush=True)


if __name__ == "__main__":
    main()
