"""Intent accuracy and latency on tests/data/intent_eval.csv (short requests and everyday
sentences) and tests/data/intent_sentences.csv (team-chat sentences, issue 15).

    .venv/bin/python benchmarks/bench_intent.py            # accuracy + latency, both splits
    .venv/bin/python benchmarks/bench_intent.py --tune     # also fit the temperature, K,
                                                           # the word model's weight and the
                                                           # blend on the tune splits
    .venv/bin/python benchmarks/bench_intent.py --no-embeddings   # lexicon + typos only
    .venv/bin/python benchmarks/bench_intent.py --errors   # list the TUNE split's misses
                                                           # (never the held-out ones)

The chat-sentence split is fixed by a hash of the line (`sentence_split`): 2 in 5 lines are
held out, whatever order or edits the file sees, and nothing is tuned on them.

Top-1 counts a row right only when the parser commits (confidence >= threshold) to an accepted
emotion; "best guess" takes the most likely emotion even below the threshold; top-3 counts the
committed emotion or any of the first three choices shown. Latency is per call on this
machine: lexicon hits (words the lexicon knows), and the embedding path on texts not seen
before (the per-text cache cleared), with the model already loaded.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
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
SENTENCES = REPO / "tests" / "data" / "intent_sentences.csv"
# A second held-out chat set, written before the fourth round of tuning and never tuned on
# (every row is "holdout"; --tune and --errors never read it).
EXTRA = REPO / "tests" / "data" / "intent_sentences_extra.csv"
# A third chat set (126 lines), written by someone who had not read the bank, after the rule
# for choosing the sentence model was fixed; it chose between the kNN vote and the bank
# regression once (issue 15, 2026-11-29), so it is a selection set now, not held out.
FRESH = REPO / "tests" / "data" / "intent_sentences_fresh.csv"
SHORT_WORDS = 3  # a request of at most this many words is "short"


def sentence_split(text: str) -> str:
    """The fixed split of a chat sentence: a hash of the line, never a choice."""
    h = int(hashlib.sha1(text.strip().lower().encode("utf-8")).hexdigest(), 16)
    return "holdout" if h % 5 < 2 else "tune"


def load_rows(path: Path = EVAL) -> list[tuple[str, set[str], str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["text"], set(r["accepted"].split("|")), r["split"]) for r in csv.DictReader(fh)]


def is_short(text: str) -> bool:
    return len(text.split()) <= SHORT_WORDS


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


def tune(parser: IntentParser, rows: list[tuple[str, set[str], str]],
         sentences: list[tuple[str, set[str], str]]) -> None:
    """On the tune splits only: for each K (bank lines averaged per emotion) the embedding
    softmax's calibration (NLL), then the temperature, the weight of the bank's word model
    and the lexicon/embedding blend that answer best; short requests must not get worse."""
    tune_rows = [r for r in rows if r[2] == "tune"]
    tune_sent = [r for r in sentences if r[2] == "tune"]
    short_rows = [r for r in tune_rows if is_short(r[0])]
    rest_rows = [r for r in tune_rows if not is_short(r[0])] + tune_sent
    best = None
    for k in (5, 8):
        intent_mod._EMBEDDER.top_k = k
        intent_mod._EMBEDDER.clear_cache()
        nlls = {t: embedding_nll(tune_rows + tune_sent, t) for t in (0.015, 0.02, 0.025, 0.03, 0.04)}
        print(f"K={k} embedding-only nll " + " ".join(f"T={t}:{v:.3f}" for t, v in nlls.items()))
        # The temperature also decides how often the parser commits, so it is searched with
        # the blend rather than fixed at the lowest NLL (which asks "did you mean" more).
        for t in (0.01, 0.012, 0.015, 0.02):
            for ww in (0.0, 0.25, 0.5, 0.75):
                for base in (0.5, 0.7):
                    parser.temperature, parser.word_weight, parser.blend_base = t, ww, base
                    short = evaluate(parser, short_rows)
                    rest = evaluate(parser, rest_rows)
                    key = -(rest["top1"] + rest["top3"] + 2 * short["top1"])
                    print(f"K={k} T={t} words={ww} base={base}: short top1 {short['top1']:.3f}  "
                          f"sentences top1 {rest['top1']:.3f} top3 {rest['top3']:.3f}  nll {rest['nll']:.3f}")
                    if best is None or key < best[0]:
                        best = (key, k, t, ww, base)
    assert best is not None
    _, k, t, ww, base = best
    intent_mod._EMBEDDER.top_k = k
    intent_mod._EMBEDDER.clear_cache()
    parser.temperature, parser.word_weight, parser.blend_base = t, ww, base
    print(f"best: K={k} T={t} word weight={ww} blend base={base}")


def tune_errors(parser: IntentParser, rows: list[tuple[str, set[str], str]]) -> None:
    """The tune split's misses (what to look at when editing the bank); never the holdout."""
    for text, accepted, split in rows:
        if split != "tune":
            continue
        res = parser.parse(text)
        if res.emotion not in accepted:
            print(f"MISS {text!r}: want {'|'.join(sorted(accepted))}, got {res.emotion} "
                  f"{[(e, round(c, 2)) for e, c in res.alternatives]}")


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
        intent_mod._EMBEDDER.clear_cache()
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
    every, cpu = [], []
    for _ in range(2):
        intent_mod._EMBEDDER.clear_cache()
        for t, _a, _s in rows:
            c0 = time.process_time()
            t0 = time.perf_counter()
            parser.parse(t)
            every.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    # Wall clock on a shared machine includes time the scheduler gave to other jobs; the
    # process's CPU time (all its threads) does not, and bounds what one free core needs.
    print(f"every request (uncached, {len(rows)} x 2): wall p50 {percentile(every, 50):.2f} ms, "
          f"p99 {percentile(every, 99):.2f} ms; CPU time p50 {percentile(cpu, 50):.2f} ms, "
          f"p99 {percentile(cpu, 99):.2f} ms (target p99 <= 15 ms); load average "
          f"{__import__('os').getloadavg()[0]:.1f}")


def report(parser: IntentParser, name: str, rows: list[tuple[str, set[str], str]]) -> None:
    for split in ("tune", "holdout", "all"):
        sub = rows if split == "all" else [r for r in rows if r[2] == split]
        if not sub:
            continue
        m = evaluate(parser, sub)
        print(f"{name:24} {split:8} n={m['n']:<4} top1 {m['top1']:.3f}  best-guess {m['best_guess']:.3f}  "
              f"top3 {m['top3']:.3f}  answered {m['answered']:.3f}  "
              f"precision-when-answered {m['precision_when_answered']:.3f}  nll {m['nll']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--errors", action="store_true")
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--skip-latency", action="store_true", help="accuracy only")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads (0: torch's default); 1 measures one core")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = load_rows()
    sentences = load_rows(SENTENCES)
    bad = [t for t, _, s in sentences if s != sentence_split(t)]
    if bad:
        sys.exit(f"{SENTENCES.name}: split column differs from the hash rule for {bad[:3]}")
    parser = IntentParser(use_embeddings=not args.no_embeddings)
    t0 = time.perf_counter()
    if not args.no_embeddings and not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    print(f"model load + bank ({len(intent_mod.bank_texts()[0])} lines): "
          f"{time.perf_counter() - t0:.1f} s")
    if not args.no_embeddings:
        # The figures are the shipped parser's: sentences by the tuned model (built here
        # first when scripts/setup has not: about 90 s).
        if not intent_mod._EMBEDDER.wait_tuned(3600):
            sys.exit("the tuned sentence model could not be built (python -m bot.sentence_tuning)")
        print(f"sentences: tuned MiniLM ({intent_mod._EMBEDDER.tuned.files.folder.name})")
    if args.tune:
        tune(parser, rows, sentences)
    if args.errors:
        tune_errors(parser, rows + sentences)
    if args.latency_only:
        latency(parser, rows + sentences)
        return
    print(f"threshold {parser.threshold}, K {intent_mod._EMBEDDER.top_k}, temperature "
          f"{parser.temperature}, word model weight {parser.word_weight}, blend {parser.blend_base}+{parser.blend_slope}*coverage, "
          f"sentence > {parser.sentence_words} words")
    report(parser, "short requests (<=3 w)", [r for r in rows if is_short(r[0])])
    report(parser, "eval-set sentences", [r for r in rows if not is_short(r[0])])
    report(parser, "chat sentences (#15)", sentences)
    report(parser, "own extra set (held out)", load_rows(EXTRA))
    report(parser, "fresh set (selection)", load_rows(FRESH))
    report(parser, "everything", rows + sentences)
    if not args.skip_latency:
        latency(parser, rows + sentences)


if __name__ == "__main__":
    main()
