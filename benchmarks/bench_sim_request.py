"""The simulator's virtual request (issue 17.3): milliseconds per request, optionally profiled.

Runs one strategy of `moodgif simulate` with no retrain (`retrain_every` past the end), so
the time is the virtual people's requests alone, and prints milliseconds per virtual request;
with --profile, cProfile's top entries (the core runs inline on the simulation's thread, so
the profile includes its database work).

    MOODGIF_ENCODER=motion .venv/bin/python benchmarks/bench_sim_request.py \\
        --pool-size 300 --seed-pool-size 200 --requests 200 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool-size", type=int, default=300)
    ap.add_argument("--seed-pool-size", type=int, default=200)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--strategy", default="both")
    ap.add_argument("--cache", type=Path, default=REPO / "bench-out" / "sim-cache")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--cold-imports", action="store_true",
                    help="leave the core's first-request imports inside the timed requests")
    args = ap.parse_args()

    from bot.simulate import SimConfig, prepare, run_strategy
    from scorer.settings import load_settings

    settings = load_settings()
    cfg = SimConfig(pool_size=args.pool_size, seed_pool_size=args.seed_pool_size,
                    requests=args.requests, retrain_every=args.requests + 1,
                    strategies=(args.strategy,), workers=1, extra_checkpoints=())
    prepared = prepare(settings, cfg, args.cache)
    if not args.cold_imports:
        # The core imports its metrics module (aiohttp, prometheus) on the first request: a
        # one-off of 0.5-1 s that would count as ~2-3 ms of each of 300 virtual requests
        import bot.health  # noqa: F401
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    out = run_strategy(settings, cfg, prepared, args.strategy, args.cache / "runs" / "bench-request")
    if prof:
        prof.disable()
    ms = 1000 * out["timing"]["requests_s"] / args.requests
    print(f"{args.requests} virtual requests of {args.strategy} on a {args.pool_size}-GIF pool: "
          f"{ms:.2f} ms per request ({settings.scoring.encoder})")
    if prof:
        for key in ("tottime", "cumulative"):
            pstats.Stats(prof).sort_stats(key).print_stats(60)


if __name__ == "__main__":
    main()
