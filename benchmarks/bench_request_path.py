"""The bot core's own cost per user action: database transactions and time, without the
sentence embedding (the intent parser runs lexicon-only here, so what is timed is the
core's overhead: intent lexicon, ranking, sessions, the ledger).

On a synthetic pool of N GIFs (bench-out/serve-memory-N, built by bench_serve_memory.py's
`build_pool`; SQLite), for R requests by different users: `/gif <text>` (request), then
Send. Counts the transactions (SQLAlchemy connection `begin` events; a read-only session is
one too) and statement executions per action, and the wall time per action (p50/p99).

    .venv/bin/python benchmarks/bench_request_path.py [--gifs 100000] [--requests 300]
        [--db sqlite|postgresql] [--profile]

Each run works on a fresh copy of the built pool (the runs add impressions to one channel,
so a reused database gets slower). `--profile`: the actions run inline (no worker-thread
hop) under cProfile, and the top functions by own and cumulative time are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PG_ADMIN = os.environ.get("MOODGIF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def engine_for(db: str, n: int):  # type: ignore[no-untyped-def]
    from bench_serve_memory import build_pool

    from scorer.migrate import init_db
    from scorer.settings import load_settings

    # BENCH_OUT: share the pools with another checkout (e.g. timing the previous commit)
    home = Path(os.environ.get("BENCH_OUT", ROOT / "bench-out")) / f"serve-memory-{n}"
    build_pool(home, n)
    import shutil
    import tempfile

    fresh = Path(tempfile.mkdtemp(prefix="bench-request-path-"))
    shutil.copytree(home, fresh, dirs_exist_ok=True)
    import atexit

    atexit.register(shutil.rmtree, fresh, True)
    settings = load_settings(env={}, home=str(fresh))
    if db == "sqlite":
        return settings, init_db(settings.db_url), None
    # PostgreSQL: copy the SQLite rows into a fresh database.
    from sqlalchemy import create_engine, text

    name = f"moodgif_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    pg = init_db(url)
    src = init_db(settings.db_url)
    from scorer.store import Gif, ModelVersion, Pool, PoolGif, Prediction

    for model in (Pool, ModelVersion, Gif, PoolGif, Prediction):
        with src.connect() as s, pg.begin() as d:
            rows = [dict(r._mapping) for r in s.execute(model.__table__.select())]
            for i in range(0, len(rows), 5000):
                d.execute(model.__table__.insert(), rows[i : i + 5000])
    return settings.override(database_url=url), pg, (admin, name)


async def run(db: str, n: int, requests: int, profile: bool = False, warmup: int = 5) -> dict:
    from sqlalchemy import event

    from bot.core import BotCore
    from bot.events import Actor
    from bot.intent import IntentParser

    settings, engine, cleanup = await asyncio.to_thread(engine_for, db, n)
    settings = settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.0)
    core = BotCore(settings, engine, intent_parser=IntentParser(settings, use_embeddings=False),
                   seed=1)
    await asyncio.to_thread(core.ranker.refresh)
    counts = {"begin": 0, "exec": 0}

    def on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        counts["begin"] += 1

    def on_exec(*_a) -> None:  # type: ignore[no-untyped-def]
        counts["exec"] += 1

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_exec)
    prof = None
    if profile:
        import cProfile

        async def inline(fn, *args):  # type: ignore[no-untyped-def]
            return fn(*args)

        asyncio.to_thread = inline  # type: ignore[assignment]  # the profiler sees one thread
        prof = cProfile.Profile()  # enabled after the warm-up: the steady state only
    texts = ["happy", "ugh", "so proud of you", "lol", "phew", "angry cat"]
    stats: dict[str, list[float]] = {"request": [], "send": []}
    first: list[float] = []
    tx: dict[str, list[int]] = {"request": [], "send": []}
    ex: dict[str, list[int]] = {"request": [], "send": []}
    for i in range(-warmup, requests):  # the process's first actions are timed apart
        if i == 0 and prof is not None:
            prof.enable()
        actor = Actor("bench", "T1", "C1", f"user{i}", f"User {i}")
        for what in ("request", "send"):
            before = dict(counts)
            t0 = time.perf_counter()
            if what == "request":
                reply = await core.request(actor, texts[i % len(texts)])
                sid = reply.preview.session_id if reply.preview else None
            else:
                if sid is None:
                    continue
                reply = await core.send(actor, sid)
            if i < 0:
                first.append(time.perf_counter() - t0)
                continue
            stats[what].append(time.perf_counter() - t0)
            tx[what].append(counts["begin"] - before["begin"])
            ex[what].append(counts["exec"] - before["exec"])
    if prof is not None:
        import pstats

        prof.disable()
        for key in ("tottime", "cumulative"):
            pstats.Stats(prof).sort_stats(key).print_stats(60)
    await core.close()
    if cleanup is not None:
        from sqlalchemy import text

        engine.dispose()
        admin, name = cleanup
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    return {"stats": stats, "tx": tx, "ex": ex, "first": first}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gifs", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--warmup", type=int, default=5,
                    help="request+Send pairs before timing (the process's first: imports, salt)")
    args = ap.parse_args()
    r = asyncio.run(run(args.db, args.gifs, args.requests, args.profile, args.warmup))
    print(f"# bot core per action - {platform.node()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.gifs:,} GIFs on {args.db}, {args.requests} users, "
          "intent lexicon-only (no sentence embedding)")
    print("| action | transactions (median / max) | statements (median) | p50 | p99 |")
    print("|---|---|---|---|---|")
    for what in ("request", "send"):
        t = np.asarray(r["stats"][what]) * 1e3
        print(f"| {what} | {int(np.median(r['tx'][what]))} / {max(r['tx'][what])} | "
              f"{int(np.median(r['ex'][what]))} | {np.percentile(t, 50):.1f} ms | "
              f"{np.percentile(t, 99):.1f} ms |")
    if r["first"]:
        print(f"warm-up ({args.warmup} request+Send pairs, not above): first action "
              f"{r['first'][0] * 1e3:.1f} ms, the rest max {max(r['first'][1:] or [0]) * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
