"""The admin page's top GIFs of one emotion at a million GIFs: the order web.py used to compute
itself (`np.argpartition` on the emotion's means) vs `bot.ranking.rank` with exploration off
(what `bot/reports.top_gifs` calls now). Same snapshot, same process; prints the medians.

    .venv/bin/python benchmarks/bench_admin_top.py [--gifs 1000000] [--k 24]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bot.ranking import rank
from bot.score_matrix import ScoreMatrix, build_matrix
from scorer.settings import RATINGS


def argpartition_top(m: ScoreMatrix, emotion: int, k: int) -> list[float]:
    col = m.mean[emotion]
    idx = np.argpartition(-col, k - 1)[:k]
    return [float(col[i]) for i in idx[np.argsort(-col[idx], kind="stable")]]


def ranker_top(m: ScoreMatrix, emotion: int, k: int) -> list[float]:
    return rank(m, emotion, k, rng=np.random.default_rng(0), ceiling=RATINGS[-1],
                exploration="none", rate=0.0).means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gifs", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.gifs
    m = build_matrix([f"{i:064x}" for i in range(n)], ["g"] * n, {"p": np.ones(n, bool)},
                     prior=rng.random((n, 17), dtype=np.float32))
    # the same means in the same order (GIFs with equal means may swap places)
    assert argpartition_top(m, 3, args.k) == ranker_top(m, 3, args.k)
    for name, fn in (("argpartition (old web.py)", argpartition_top), ("ranking.rank", ranker_top)):
        fn(m, 0, args.k)
        times = []
        for r in range(args.repeats):
            t = time.perf_counter()
            fn(m, r % 17, args.k)
            times.append(time.perf_counter() - t)
        print(f"{name}: median {np.median(times) * 1e3:.1f} ms, best {min(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
