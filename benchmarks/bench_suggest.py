"""Suggest latency: intent + ranking for one request, against the bare numpy floor.

For pools of 10k, 100k and 1M synthetic GIFs (the score matrix built directly in memory:
1M x 17 float32 posterior means plus as many standard deviations), one request is:

  intent (the real parser, lexicon path; no sentence model, no network)
  -> ranking (channel filter: 2 of 3 pools + rating ceiling, Thompson sampling over the
     uncertainty, 3 GIFs excluded by the session, 20 by the channel's recent posts,
     top-1 by np.argpartition)

The floor is a bare `np.argpartition` over one precomputed score column. Prints p50/p99 per
size, the ratio to the floor and the growth from one size to the next. Targets: p99 under
5 ms at 100k and under 30 ms at 1M, and growth no worse than linear.

    .venv/bin/python benchmarks/bench_suggest.py [--sizes 10000,100000,1000000] [--reps 200]
    .venv/bin/python benchmarks/bench_suggest.py --topics [--sizes 1000000]   # issue 15

`--topics` measures topic requests instead: every synthetic GIF gets 3-8 words (a title and
tags) drawn from a 30,000-word Zipf vocabulary; the inverted index (`bot.topics`) is built
once per size (timed); then, per request, the topic lookup alone (exact, plural or one-typo
words, one or two words; target p99 <= 5 ms at 1M), and the full topic ranking: a feeling
among the topic's GIFs (`rank(..., candidates=rows)`) and a topic alone by appeal
(`rank_topic`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.intent import IntentParser
from bot.ranking import rank
from bot.score_matrix import FitPosterior, build_matrix
from bot.topics import TopicIndex, rank_topic, stem
from scorer.emotions import INDEX, N_EMOTIONS

REQUESTS = ["happy", "ugh", "😱", "nailed it", "lol", "so sad", "phew", "gross", "omg",
            "my bad", "yay", "furious", "meh", "proud", "hapy", "suprise", "finally done",
            "good night"]


def make_matrix(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    prior = rng.random((n, N_EMOTIONS), dtype=np.float32)
    voted = rng.random(n) < 0.1  # a tenth of the pool has votes: a narrower posterior
    bt = np.clip(prior + rng.normal(0, 0.05, prior.shape).astype(np.float32), 0, 1)
    sd = np.full((n, N_EMOTIONS), 0.05, np.float32)
    which = rng.integers(0, 3, n)
    pools = {f"pool{j}": which == j for j in range(3)}
    ratings = np.array(["g", "pg", "pg-13", "r"])[rng.integers(0, 4, n)].tolist()
    shas = [f"{i:064x}" for i in range(n)]
    return build_matrix(shas, ratings, pools, prior=prior,
                        fit=FitPosterior(bt, sd, voted, has_prior=True))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q))


def bench(n: int, reps: int, parser: IntentParser, exploration: str) -> dict[str, float]:
    t0 = time.perf_counter()
    m = make_matrix(n)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    shas = m.shas
    full, ranking, floor = [], [], []
    for r in range(reps + 5):  # the first 5 warm the (pools, ceiling) mask cache
        text = REQUESTS[r % len(REQUESTS)]
        exclude = [shas[int(i)] for i in rng.integers(0, n, 3)]
        recent = [shas[int(i)] for i in rng.integers(0, n, 20)]
        a = time.perf_counter()
        intent = parser.parse(text)
        b = time.perf_counter()
        got = rank(m, INDEX[intent.emotion or "happiness"], 1, rng=rng, pools=["pool0", "pool2"],
                   ceiling="pg-13", exploration=exploration, rate=1.0, exclude=exclude,
                   soft_exclude=recent)
        c = time.perf_counter()
        col = m.mean[INDEX[intent.emotion or "happiness"]]
        d = time.perf_counter()
        np.argpartition(col, n - 1)[n - 1:]  # the floor: one selection over one column
        e = time.perf_counter()
        assert got.shas
        if r >= 5:
            full.append(c - a)
            ranking.append(c - b)
            floor.append(e - d)
    return {"n": n, "build_s": build_s,
            "p50": pct(full, 50), "p99": pct(full, 99),
            "rank_p50": pct(ranking, 50), "rank_p99": pct(ranking, 99),
            "floor_p50": pct(floor, 50), "floor_p99": pct(floor, 99)}


VOCAB = 30_000


def _word(i: int) -> str:
    """A made-up word per vocabulary id ("w123x"): letters only, so the stemmer keeps it."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = ""
    i += 26 * 26  # at least three letters
    while i:
        out += letters[i % 26]
        i //= 26
    return "t" + out


def topic_bench(n: int, reps: int) -> dict[str, float]:
    rng = np.random.default_rng(2)
    m = make_matrix(n)
    ranks = np.minimum(rng.zipf(1.3, size=n * 8), VOCAB) - 1  # a few words are in many GIFs
    counts = rng.integers(3, 9, n)
    words: list[set[str]] = []
    pos = 0
    for c in counts:
        words.append({stem(_word(int(w))) for w in ranks[pos: pos + c]})
        pos += c
    t0 = time.perf_counter()
    index = TopicIndex.build(words, m)
    build_s = time.perf_counter() - t0
    queries = []
    for r in range(reps):
        w = _word(int(min(rng.zipf(1.2), VOCAB) - 1))
        kind = r % 4
        if kind == 1:
            w += "s"  # a plural
        elif kind == 2 and len(w) > 4:
            w = w[:2] + w[3:]  # a dropped letter
        queries.append([w] if r % 3 else [w, _word(int(rng.integers(0, 50)))])
    # One workspace of a shared installation: another workspace owns pool1, so its words are
    # looked up among the rows this one may see (`ScoreMatrix.visible_rows`, a mask cut).
    m.owners = {"pool1": "slack:TOTHER"}
    visible = m.visible_rows("slack:TME")
    look, look_cpu, feel, alone, sizes, scoped = [], [], [], [], [], []
    for q in queries:
        a = time.perf_counter()
        index.rows_seen([r for r in (index.lookup(w, visible)[1] for w in q) if r.size], visible)
        scoped.append(time.perf_counter() - a)
        cpu = time.thread_time()
        a = time.perf_counter()
        rows = index.rows_for([r for r in (index.lookup(w)[1] for w in q) if r.size])
        b = time.perf_counter()
        look_cpu.append(time.thread_time() - cpu)
        rank(m, INDEX["happiness"], 1, rng=rng, pools=["pool0", "pool2"], ceiling="pg-13",
             candidates=rows)
        c = time.perf_counter()
        rank_topic(m, index, rows, 1, rng=rng, pools=["pool0", "pool2"], ceiling="pg-13")
        d = time.perf_counter()
        look.append(b - a)
        feel.append(c - a)
        alone.append(d - c + (b - a))
        sizes.append(rows.size)
    return {"n": n, "build_s": build_s, "terms": len(index.postings),
            "look_p50": pct(look, 50), "look_p99": pct(look, 99),
            "cpu_p50": pct(look_cpu, 50), "cpu_p99": pct(look_cpu, 99),
            "feel_p50": pct(feel, 50), "feel_p99": pct(feel, 99),
            "alone_p50": pct(alone, 50), "alone_p99": pct(alone, 99),
            "rows_median": float(np.median(sizes)), "rows_max": float(np.max(sizes)),
            "scoped_p50": pct(scoped, 50), "scoped_p99": pct(scoped, 99)}


def topics_main(sizes: list[int], reps: int) -> None:
    print(f"# topic requests, {reps} per size; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("(lookup: wall clock; cpu: this thread's CPU time, which leaves out the time the "
          "scheduler gave to other jobs on a shared machine)")
    print(f"{'GIFs':>9} {'build s':>8} {'terms':>7} {'lookup p50':>11} {'lookup p99':>11} "
          f"{'cpu p50':>8} {'cpu p99':>8} {'+feeling p99':>13} {'alone p99':>10} {'rows med/max':>14} "
          f"{'one-ws p99':>11}")
    for n in sizes:
        r = topic_bench(n, reps)
        print(f"{n:>9} {r['build_s']:>8.1f} {r['terms']:>7} {r['look_p50']:>11.3f} "
              f"{r['look_p99']:>11.3f} {r['cpu_p50']:>8.3f} {r['cpu_p99']:>8.3f} "
              f"{r['feel_p99']:>13.2f} {r['alone_p99']:>10.2f} "
              f"{r['rows_median']:>7.0f}/{r['rows_max']:.0f} {r['scoped_p99']:>11.3f}", flush=True)
        if n >= 1_000_000:
            ok = r["look_p99"] <= 5.0
            print(f"target topic lookup p99 <= 5 ms at {n}: {'met' if ok else 'MISSED'} "
                  f"(wall {r['look_p99']:.3f} ms; CPU time {r['cpu_p99']:.3f} ms; load average "
                  f"{os.getloadavg()[0]:.1f}); one workspace of a shared installation (another "
                  f"owns a third of the GIFs): p99 {r['scoped_p99']:.3f} ms, "
                  f"{r['scoped_p99'] / max(r['look_p99'], 1e-9):.1f}x the whole pool's")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--exploration", default="thompson", choices=["thompson", "ucb", "none"])
    ap.add_argument("--topics", action="store_true", help="topic lookups instead (issue 15)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.topics:
        topics_main(sizes, args.reps)
        return
    parser = IntentParser(None, use_embeddings=False)
    for text in REQUESTS:  # every benchmark request must be a clear lexicon hit
        assert parser.parse(text).emotion, text
    print(f"# suggest latency, exploration={args.exploration}, {args.reps} requests per size; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'GIFs':>9} {'p50 ms':>8} {'p99 ms':>8} {'rank p50':>9} {'rank p99':>9} "
          f"{'floor p50':>10} {'floor p99':>10} {'p50/floor':>10} {'growth':>7}")
    prev = None
    rows = []
    for n in sizes:
        r = bench(n, args.reps if n < 1_000_000 else max(args.reps // 2, 20), parser,
                  args.exploration)
        growth = f"{r['p50'] / prev['p50']:.1f}x" if prev else "-"
        print(f"{n:>9} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['rank_p50']:>9.2f} "
              f"{r['rank_p99']:>9.2f} {r['floor_p50']:>10.3f} {r['floor_p99']:>10.3f} "
              f"{r['p50'] / r['floor_p50']:>9.1f}x {growth:>7}", flush=True)
        prev = r
        rows.append(r)
    targets = {100_000: 5.0, 1_000_000: 30.0}
    for r in rows:
        if r["n"] in targets:
            ok = r["p99"] < targets[r["n"]]
            print(f"target p99 < {targets[r['n']]:.0f} ms at {r['n']}: "
                  f"{'met' if ok else 'MISSED'} ({r['p99']:.2f} ms)")


if __name__ == "__main__":
    main()
