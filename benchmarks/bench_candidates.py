"""Score candidate sentence models, each through the whole parser (lexicon, blend, sarcasm,
threshold), on the sets a bank round is judged by (docs/bench/intent.md, tenth and eleventh rounds).

    .venv/bin/python -m bot.sentence_tuning --out /tmp/cand/seed1 --seed 1
    .venv/bin/python benchmarks/bench_candidates.py /tmp/cand/seed1
    .venv/bin/python benchmarks/bench_candidates.py A B C      # the softmax mean of three
    .venv/bin/python benchmarks/bench_candidates.py --sets fresh9,neutral1 FOLDER
    .venv/bin/python benchmarks/bench_candidates.py --calibration --sets fresh7,fresh9,pool346,neutral2,neutral3 FOLDER

A folder is what `python -m bot.sentence_tuning` writes (model.onnx, head.npz, build.json).
The short-request sets read the bank of this checkout (the kNN vote and the word model), so
score a candidate bank from its own checkout. Never pass a held-out set's name here while a
choice is open: `bench_sentence_tuning.py --held` reads those, once, after it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
# The reader is set below; no background build of this checkout's own model meanwhile.
os.environ["MOODGIF_INTENT_SENTENCE_MODEL"] = "regression"

import bench_intent as bench  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.flows.offers import WATCH_MIN_CONFIDENCE  # noqa: E402
from bot.intent import IntentParser  # noqa: E402
from bot.sentence_tuning import TunedFiles, TunedReader, load_no_feeling, load_reader, tuned_files  # noqa: E402

FLAT = {"neutral1": "no_feeling_eval.csv", "neutral2": "no_feeling_eval2.csv",
        "neutral3": "no_feeling_eval3.csv",  # the third: a guard from the eleventh round on
        "neutral5": "no_feeling_eval5.csv",  # flat lines in the fourteenth round's six registers
        "neutral6": "no_feeling_eval6.csv",  # written for the twenty-ninth round
        "neutral7": "no_feeling_eval7.csv"}  # and for the thirty-second
DEFAULT_SETS = "fresh9,fresh7,pool346,neutral2,neutral3,shorttune,short2"
HELD_OUT = {"fresh5", "fresh8", "fresh10", "extra", "neutral4", "terse2"}


class MeanReader:
    """Several tuned readers as one: the log of their mean softmax."""

    def __init__(self, readers: list[TunedReader]) -> None:
        self.readers = readers
        self.no_feeling = readers[0].no_feeling

    def logits(self, texts: list[str]) -> np.ndarray:
        probs = []
        for reader in self.readers:
            z = reader.logits(texts)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            probs.append(e / e.sum(axis=1, keepdims=True))
        return np.log(np.mean(probs, axis=0) + 1e-12)


def rows_of(name: str) -> list[tuple[str, set[str], str]]:
    if name == "shorttune":
        return [r for r in bench.load_rows() if r[2] == "tune" and bench.is_short(r[0])]
    if name == "short2":
        return bench.load_rows(DATA / "intent_short_fresh2.csv")
    if name == "issuetune":  # the tune split of the issue's own chat sentences
        return [r for r in bench.load_rows(bench.SENTENCES) if r[2] == "tune"]
    if name == "tunesent":  # every tune sentence: the and the eval set's (204)
        return ([r for r in bench.load_rows(bench.SENTENCES) if r[2] == "tune"]
                + [r for r in bench.load_rows() if r[2] == "tune" and not bench.is_short(r[0])])
    if name == "pool346":
        return [r for k in (3, 4, 6) for r in bench.load_rows(DATA / f"intent_sentences_fresh{k}.csv")]
    return bench.load_rows(DATA / f"intent_sentences_{name}.csv")


def flat_texts(name: str) -> list[str]:
    with (DATA / FLAT[name]).open(newline="", encoding="utf-8") as fh:
        return [r["text"] for r in csv.DictReader(fh)]


def flat_shares(parser: IntentParser, name: str) -> str:
    texts = flat_texts(name)
    results = [parser.parse(t) for t in texts]
    committed = sum(r.emotion is not None for r in results) / len(texts)
    offered = sum(r.emotion is not None and r.confidence >= WATCH_MIN_CONFIDENCE
                  for r in results) / len(texts)
    return f"{name} n={len(texts)} commits {committed:.3f} watch offers {offered:.3f}"


def set_line(parser: IntentParser, name: str) -> str:
    """One set's figures through the whole parser, as every candidate script prints them."""
    if name in FLAT:
        return flat_shares(parser, name)
    rows = rows_of(name)
    m = bench.evaluate(parser, rows)
    return (f"{name} n={len(rows)} top-1 {m['top1']:.3f} top-3 {m['top3']:.3f} "
            f"best guess {m['best_guess']:.3f} answered {m['answered']:.3f}")


def pooled_groups(parser: IntentParser, groups: dict[str, list[str]], label: str,
                  before_set: Callable[[str], None] | None = None) -> None:
    """Each group's figures and all groups pooled, by rows: top-1, top-3 and wrong commits
    (answered, not accepted), as the rounds from the twenty-first on judge a candidate.
    `before_set(name)` runs before each set is read (a table counted without it, say)."""
    total = dict.fromkeys(("n", "top1", "top3", "wrong"), 0.0)

    def line(name: str, c: dict[str, float]) -> str:
        n = c["n"]
        return (f"{label} {name} n={int(n)} top-1 {c['top1'] / n:.4f} top-3 {c['top3'] / n:.4f} "
                f"wrong commits {c['wrong'] / n:.4f}")

    for group, names in groups.items():
        c = dict.fromkeys(total, 0.0)
        for name in names:
            if before_set is not None:
                before_set(name)
            m = bench.evaluate(parser, rows_of(name))
            c["n"] += m["n"]
            c["top1"] += m["top1"] * m["n"]
            c["top3"] += m["top3"] * m["n"]
            c["wrong"] += (m["answered"] - m["top1"]) * m["n"]
        total = {k: total[k] + c[k] for k in total}
        print(line(group, c), flush=True)
    print(line("POOLED", total), flush=True)


def refuse_held_out(names: list[str]) -> None:
    if held := HELD_OUT & set(names):
        sys.exit(f"{', '.join(sorted(held))}: held out; read with bench_sentence_tuning.py --held")


def shipped_parser(names: list[str]) -> IntentParser:
    """A parser that reads with this checkout's built sentence model, after refusing any
    held-out set among `names`; exits when the model is not built."""
    refuse_held_out(names)
    parser = IntentParser()
    emb = intent_mod._EMBEDDER
    if not emb.load():
        sys.exit(f"sentence model unavailable: {emb.error}")
    texts, owner = intent_mod.bank_texts()
    reader = load_reader(tuned_files(texts, owner, no_feeling=load_no_feeling()))
    if reader is None:
        sys.exit("the tuned sentence model is not built: python -m bot.sentence_tuning")
    emb.use_tuned(reader)
    return parser


BINS = (0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)


def reliability(parser: IntentParser, names: list[str]) -> None:
    """How often the best guess is right at each confidence, the sets pooled; flat lines are
    counted per bin (any feeling read into them is wrong)."""
    seen: list[tuple[float, bool]] = []
    flat: list[float] = []
    for name in names:
        if name in FLAT:
            flat += [max(parser.distribution(t)[0], default=0.0) for t in flat_texts(name)]
            continue
        for text, accepted, _ in rows_of(name):
            probs = parser.distribution(text)[0]
            best = int(np.argmax(probs))
            seen.append((float(probs[best]), bench.NAMES[best] in accepted))
    for lo, hi in pairwise(BINS):
        cell = [ok for conf, ok in seen if lo <= conf < hi]
        n_flat = sum(lo <= conf < hi for conf in flat)
        right = f"best guess right {sum(cell) / len(cell):.2f}" if cell else "-"
        print(f"confidence [{lo:.2f}, {hi:.2f}): sentences n={len(cell):4} {right:24} flat lines n={n_flat}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="tuned model folders (several: their mean)")
    ap.add_argument("--sets", default=DEFAULT_SETS, help=f"comma-separated (default {DEFAULT_SETS})")
    ap.add_argument("--calibration", action="store_true",
                    help="how often the best guess is right per confidence bin, the sets pooled")
    args = ap.parse_args()
    refuse_held_out(args.sets.split(","))
    readers = [TunedReader(TunedFiles(f)) for f in args.folders]
    parser = IntentParser()
    if not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    intent_mod._EMBEDDER.use_tuned(readers[0] if len(readers) == 1 else MeanReader(readers))  # type: ignore[arg-type]
    if args.calibration:
        reliability(parser, args.sets.split(","))
        return
    for name in args.sets.split(","):
        print(set_line(parser, name), flush=True)


if __name__ == "__main__":
    main()
