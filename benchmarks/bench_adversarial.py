"""Issue 12's adversarial target with enough people to see it: how far 10 % adversarial users
move the final NDCG@5 and P@1 of the product, paired by user seed, over one or more pools.

P@1 is 0 or 1 per emotion, so one user seed's figure moves in steps of 1/17 and a 3-seed mean
cannot tell a 0.05 move from noise. This reads the raw results of `moodgif simulate --json`
runs (each a pool seed with many user seeds, `--strategies both --adversarial 0.1`), pairs the
clean and the attacked run of every (pool, user seed), and prints each metric's mean move with
its 95 % t-interval, per pool and over all of them. The target is met when the interval lies
inside the bound (NDCG@5 0.02, P@1 0.05).

    for p in 0 1; do
      MOODGIF_ENCODER=motion .venv/bin/moodgif simulate --pool-size 2000 --seed-pool-size 800 \\
        --requests 5000 --retrain-every 500 --strategies both --adversarial 0.1 --seed 0 \\
        --seeds 20 --pool-seed $p --workers 1 --cache bench-out/sim-motion-full \\
        --out bench-out/adv-p$p --json > bench-out/adv-p$p.json
    done
    .venv/bin/python benchmarks/bench_adversarial.py bench-out/adv-p0.json bench-out/adv-p1.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.simulate.report import adversarial_pair, paired_move  # noqa: E402
from bot.simulate.run import SimResult  # noqa: E402

# (key in a checkpoint, label, the bound of issue 12's target or None when it has none)
METRICS = (("ndcg5", "NDCG@5", 0.02), ("p1", "P@1", 0.05), ("top_pct", "1st GIF's percentile", None),
           ("first_p1", "shown 1st in top 1 %", None), ("sent_without_shuffle", "sent 1st", None))


def load(path: Path) -> SimResult:
    raw = json.loads(path.read_text())
    return SimResult(raw["config"], raw.get("prepared", {}), raw["runs"], raw.get("seconds", 0.0),
                     raw.get("v0_quality", {}))


def pooled(results: list[tuple[str, SimResult]]) -> SimResult:
    """One result whose user seeds are (pool, seed): the pairing stays within a pool."""
    runs = [{**r, "seed": f"{tag}/{r.get('seed')}"} for tag, res in results for r in res.runs]
    return SimResult({}, {}, runs, 0.0, {})


def report(tag: str, result: SimResult) -> bool:
    pair = adversarial_pair(result)
    if pair is None:
        raise SystemExit(f"{tag}: no clean/attacked pair (run with --strategies both --adversarial 0.1)")
    base, attacked = pair
    met = True
    print(f"{tag}: `{base}` vs `{attacked}`")
    for key, label, bound in METRICS:
        if any(key not in r["curve"][-1] for r in result.runs):
            continue
        move = paired_move(result, base, attacked, key)
        verdict = "" if bound is None else (" (met)" if move.within(bound) else f" (not shown within ±{bound})")
        met = met and (bound is None or move.within(bound))
        print(f"  {label:<22} {move.text()}{verdict}")
    return met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path, help="JSON of `moodgif simulate --json` runs")
    args = ap.parse_args()
    results = [(p.stem, load(p)) for p in args.results]
    if len(results) == 1:
        met = report(*results[0])
    else:
        for tag, res in results:
            report(tag, res)
        met = report("all pools", pooled(results))
    print(f"verdict: the adversarial target is {'met' if met else 'not shown'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
