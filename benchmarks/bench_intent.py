"""Intent accuracy and latency on tests/data/intent_eval.csv.

    .venv/bin/python benchmarks/bench_intent.py            # accuracy + latency, both splits
    .venv/bin/python benchmarks/bench_intent.py --tune     # also fit the temperature (NLL) and
                                                           # the blend on the tune split
    .venv/bin/python benchmarks/bench_intent.py --no-embeddings   # lexicon + typos only

Top-1 counts a row right only when the parser commits (confidence >= threshold) to an accepted
emotion; "best guess" takes the most likely emotion even below the threshold; top-3 counts the
committed emotion or any of the first three choices shown. Latency is per call on this
machine: lexicon hits (words the lexicon knows), and the embedding path on texts not seen
before (the per-text cache cleared), with the model already loaded.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot import intent as intent_mod  # noqa: E402
from bot.intent import IntentParser  # noqa: E402
from scorer.emotions import NAMES  # noqa: E402

EVAL = REPO / "tests" / "data" / "intent_eval.csv"


def load_rows(path: Path = EVAL) -> list[tuple[str, set[str], str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["text"], set(r["accepted"].split("|")), r["split"]) for r in csv.DictReader(fh)]


def evaluate(parser: IntentParser, rows: list[tuple[str, set[str], str]]) -> dict[str, float]:
    n = len(rows)
    top1 = guess = top3 = answered = 0
    nll = 0.0
    for text, accepted, _ in rows:
        res = parser.parse(text)
        probs, _path = parser.distribution(text)
        ranked = sorted(range(len(NAMES)), key=lambda k: -probs[k])
        if res.emotion is not None:
            answered += 1
            top1 += res.emotion in accepted
        guess += NAMES[ranked[0]] in accepted if any(probs) else 0
        top3 += bool(set(res.choices[:3]) & accepted)
        p_ok = sum(probs[NAMES.index(e)] for e in accepted)
        nll += -math.log(max(p_ok, 1e-4))
    return {
        "n": n,
        "top1": top1 / n,
        "best_guess": guess / n,
        "top3": top3 / n,
        "answered": answered / n,
        "precision_when_answered": top1 / answered if answered else 0.0,
        "nll": nll / n,
    }


def embedding_nll(rows: list[tuple[str, set[str], str]], temperature: float) -> float:
    """Mean -log P(accepted) of the embedding softmax alone, over every row."""
    total = 0.0
    for text, accepted, _ in rows:
        scores = intent_mod._EMBEDDER.emotion_scores(" ".join(text.split()))
        probs = intent_mod._softmax(scores, temperature)
        total += -math.log(max(sum(probs[NAMES.index(e)] for e in accepted), 1e-4))
    return total / len(rows)


def tune(parser: IntentParser, rows: list[tuple[str, set[str], str]]) -> None:
    """On the tune split only: the temperature that calibrates the embedding softmax best
    (lowest NLL), then the lexicon/embedding blend that answers best at that temperature."""
    tune_rows = [r for r in rows if r[2] == "tune"]
    nlls = {t: embedding_nll(tune_rows, t) for t in (0.01, 0.015, 0.02, 0.025, 0.03, 0.035,
                                                     0.04, 0.05, 0.06, 0.08, 0.1)}
    for t, v in nlls.items():
        print(f"T={t:<6} embedding-only nll={v:.3f}")
    parser.temperature = min(nlls, key=nlls.__getitem__)
    best = None
    for base in (0.2, 0.35, 0.5, 0.65):
        for slope in (0.0, 0.3, 0.6, 0.9):
            parser.blend_base, parser.blend_slope = base, slope
            m = evaluate(parser, tune_rows)
            print(f"base={base:<5} slope={slope:<4} top1={m['top1']:.3f} "
                  f"guess={m['best_guess']:.3f} top3={m['top3']:.3f} nll={m['nll']:.3f}")
            key = -m["top1"] - m["best_guess"]
            if best is None or key < best[0]:
                best = (key, base, slope)
    assert best is not None
    parser.blend_base, parser.blend_slope = best[1:]
    print(f"best: T={parser.temperature} base={parser.blend_base} slope={parser.blend_slope}")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def latency(parser: IntentParser, rows: list[tuple[str, set[str], str]]) -> None:
    lex_texts = [t for t, _, _ in rows if parser.distribution(t)[1] == "lexicon"]
    emb_texts = [t for t, _, _ in rows if parser.distribution(t)[1] in ("embedding", "blend")]
    lex_times = []
    for _ in range(20):
        for t in lex_texts:
            t0 = time.perf_counter()
            parser.parse(t)
            lex_times.append((time.perf_counter() - t0) * 1000)
    print(f"lexicon path: {len(lex_texts)} texts x 20, p50 {percentile(lex_times, 50):.3f} ms, "
          f"p99 {percentile(lex_times, 99):.3f} ms")
    if not emb_texts:
        return
    emb_times = []
    for _ in range(3):
        intent_mod._EMBEDDER._cache.clear()
        for t in emb_texts:
            t0 = time.perf_counter()
            parser.parse(t)
            emb_times.append((time.perf_counter() - t0) * 1000)
    cached = []
    for t in emb_texts:
        t0 = time.perf_counter()
        parser.parse(t)
        cached.append((time.perf_counter() - t0) * 1000)
    print(f"embedding path (uncached): {len(emb_texts)} texts x 3, p50 {percentile(emb_times, 50):.2f} ms, "
          f"p99 {percentile(emb_times, 99):.2f} ms; cached p50 {percentile(cached, 50):.3f} ms, "
          f"p99 {percentile(cached, 99):.3f} ms")
    print(f"ratio embedding p50 / lexicon p50: {statistics.median(emb_times) / statistics.median(lex_times):.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--no-embeddings", action="store_true")
    args = ap.parse_args()
    rows = load_rows()
    parser = IntentParser(use_embeddings=not args.no_embeddings)
    t0 = time.perf_counter()
    if not args.no_embeddings and not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    print(f"model load + prototypes: {time.perf_counter() - t0:.1f} s")
    if args.tune:
        tune(parser, rows)
    print(f"threshold {parser.threshold}, temperature {parser.temperature}, "
          f"blend {parser.blend_base}+{parser.blend_slope}*coverage")
    for split in ("tune", "holdout", "all"):
        sub = rows if split == "all" else [r for r in rows if r[2] == split]
        m = evaluate(parser, sub)
        print(f"{split:8} n={m['n']:<4} top1 {m['top1']:.3f}  best-guess {m['best_guess']:.3f}  "
              f"top3 {m['top3']:.3f}  answered {m['answered']:.3f}  "
              f"precision-when-answered {m['precision_when_answered']:.3f}  nll {m['nll']:.3f}")
    latency(parser, rows)


if __name__ == "__main__":
    main()
