"""The closed-loop benchmark: do suggestions get better with use? (`moodgif simulate`)

Runs `moodgif simulate` with the benchmark settings (2,000-GIF pool, 5,000 requests per
strategy, the five strategies plus the product with 10 % adversarial users), writes
docs/learning-loop.md and docs/learning-curve.png, and prints the ratios from this one run:
each strategy's NDCG@5 against random at 1,000 requests and at the end, where both+polls
reaches 0.9 of the ceiling, and the adversarial users' effect.

    .venv/bin/python benchmarks/bench_learning_loop.py             # the full benchmark
    .venv/bin/python benchmarks/bench_learning_loop.py --fast      # a quick look (~1-2 min warm)

The pools, features, the shipped scorer v0 and the template databases are cached in
bench-out/sim-cache (gitignored); only the first (cold) run pays for encoding 2,800 GIFs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="small pool, few requests")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--cache", type=Path, default=REPO / "bench-out" / "sim-cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3, help="user seeds per strategy (averaged)")
    args = ap.parse_args()

    from bot.cli import cli

    out = args.out if not args.fast else REPO / "bench-out" / "sim-fast"
    argv = ["simulate", "--seed", str(args.seed), "--seeds", str(args.seeds),
            "--workers", str(args.workers),
            "--out", str(out), "--cache", str(args.cache), "--adversarial", "0.1"]
    if args.fast:
        argv.append("--fast")
    else:
        argv += ["--pool-size", "2000", "--requests", "5000", "--retrain-every", "500"]
    t0 = time.perf_counter()
    cli.main(argv, prog_name="moodgif", standalone_mode=False)
    wall = time.perf_counter() - t0

    from bot.simulate import SimResult, check_targets, first_reaching

    data = json.loads((args.cache / "learning-loop.json").read_text())
    res = SimResult(data["config"], data["prepared"], data["runs"], data["seconds"], {})
    runs = {name: res.run(name)["curve"] for name in res.names()}
    n = data["config"]["requests"]

    def at(name: str, k: int) -> float:
        return res.at(name, k)

    print(f"\nclosed loop: {data['config']['pool_size']} GIFs, {n} requests per strategy, "
          f"{len(runs)} strategies x {args.seeds} user seeds in {wall:.0f} s (prepare {sum(data['prepared']['prepare_seconds'].values()):.0f} s)")
    marks = [k for k in (1000, n) if k <= n]
    print("NDCG@5 means over the seeds")
    print(f"{'strategy':<16}" + "".join(f"{'NDCG@5 @' + str(k):>14}{'/ random':>10}" for k in marks))
    for name in runs:
        row = f"{name:<16}"
        for k in marks:
            row += f"{at(name, k):14.3f}{at(name, k) / max(at('random', k), 1e-9):10.2f}"
        print(row)
    if "both+polls" in runs:
        reach = first_reaching(res, "both+polls", 0.9)
        print("both+polls holds >= 0.9 of the ceiling from "
              + (f"{reach} requests on" if reach is not None else f"nowhere (final {at('both+polls', n):.3f})"))
        others = [at(m, 1000) for m in runs if m not in ("both+polls",) and not m.endswith("@adv")]
        if n >= 1000:
            print(f"both+polls at 1,000 / best other strategy = "
                  f"{at('both+polls', 1000) / max(others):.3f}")
    for adv in [m for m in runs if m.endswith("@adv")]:
        base = adv.removesuffix("@adv")
        if base in runs:
            d = runs[adv][-1]["ndcg5"] - runs[base][-1]["ndcg5"]
            dp = runs[adv][-1]["p1"] - runs[base][-1]["p1"]
            print(f"10 % adversarial users ({base}): final NDCG@5 moved by {d:+.3f}, P@1 by {dp:+.3f}")
            if "top_pct" in runs[adv][-1]:
                # P@1 moves in steps of 1/(17 x seeds): the first GIF's true percentile and
                # each seed's P@1 say whether a P@1 gap is a move or a few emotions' luck
                dt = runs[adv][-1]["top_pct"] - runs[base][-1]["top_pct"]
                seeds = {m: [f"{r['curve'][-1]['p1']:.2f}" for r in res.of(m)] for m in (base, adv)}
                print(f"  the first GIF's true percentile moved by {dt:+.4f} "
                      f"({runs[base][-1]['top_pct']:.4f} -> {runs[adv][-1]['top_pct']:.4f}); "
                      f"P@1 per seed {' / '.join(seeds[base])} -> {' / '.join(seeds[adv])}")
            last = runs[adv][-1]
            if "trust_adversarial" in last:
                print(f"  how the retrain weighs people (training/reliability.py): mean trust "
                      f"normal {last.get('trust_normal', float('nan')):.2f}, noisy "
                      f"{last.get('trust_noisy', float('nan')):.2f}, adversarial "
                      f"{last['trust_adversarial']:.2f}; adversarial share of the judgements "
                      f"against the true top 1 % {last.get('adv_share_top_losses', 0):.2f}, "
                      f"weight kept {last.get('adv_kept_top_losses', float('nan')):.2f} "
                      f"(normal people's on those GIFs {last.get('normal_kept_top', float('nan')):.2f})")
    print("\nwhat people feel, per checkpoint (window metrics since the previous checkpoint)")
    print(f"{'strategy':<16}{'requests':>9}{'NDCG@5':>8}{'P@1':>7}{'sent 1st':>10}"
          f"{'shuf/send':>10}{'regret':>8}{'P@1 / prior':>12}")
    for name in runs:
        for p in res.run(name)["curve"][1:]:
            prior_p1 = res.at("prior", p["requests"], "p1") if "prior" in runs else float("nan")
            print(f"{name:<16}{p['requests']:>9}{p['ndcg5']:8.3f}{p['p1']:7.3f}"
                  f"{p.get('sent_without_shuffle', 0):10.3f}{p.get('shuffles_per_send', 0):10.2f}"
                  f"{p.get('regret', 0):8.3f}{p['p1'] / max(prior_p1, 1e-9):12.2f}")
    print("\nissue 12's targets")
    for target, ok, numbers in check_targets(res):
        print(f"  [{'--' if ok is None else ('ok' if ok else 'NO')}] {target}: {numbers}")


if __name__ == "__main__":
    main()
