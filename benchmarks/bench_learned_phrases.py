"""What reading a request by a workspace's own words costs (bot.learned_phrases): one indexed
query, `bot.session.latest_sends_for`, on requests the parser is unsure of.

Builds a database with N sent previews in one workspace (plus as many in others), their
words drawn from P phrases with Zipf popularity (the commonest phrase is sent tens of
thousands of times, as "lol" would be), then times the lookup for the commonest phrase, a
rare one and one never sent: with the shipped index, and again in the same run after
dropping it, so the printed ratio says what the index is worth.

    .venv/bin/python benchmarks/bench_learned_phrases.py [--sessions 1000000] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("MOODGIF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def build(engine, n: int, phrases: int, rng: np.random.Generator) -> list[str]:  # type: ignore[no-untyped-def]
    """`n` sent previews in workspace T1 and `n` in others; returns the phrase keys by rank."""
    from scorer.store import ChatSession

    keys = [f"phrase number {i}" for i in range(phrases)]
    ranks = np.minimum(rng.zipf(1.3, size=2 * n) - 1, phrases - 1)
    emotions = rng.integers(0, 17, size=2 * n)
    users = rng.integers(0, 5000, size=2 * n)
    start = dt.datetime(2026, 1, 1)
    table = ChatSession.__table__
    batch = 20_000
    with engine.begin() as c:
        for lo in range(0, 2 * n, batch):
            rows = []
            for i in range(lo, min(2 * n, lo + batch)):
                when = start + dt.timedelta(seconds=i * 10)
                rows.append({"id": f"s{i}", "kind": "preview", "platform": "bench",
                             "workspace": "T1" if i % 2 == 0 else f"W{i % 97}", "channel": "C1",
                             "user_hash": f"u{users[i]}", "query": keys[ranks[i]],
                             "query_key": keys[ranks[i]], "emotion": int(emotions[i]),
                             "shown": [], "current": [], "state": "sent", "created_at": when,
                             "updated_at": when, "expires_at": when})
            c.execute(table.insert(), rows)
    return keys


def time_lookups(engine, keys: list[str], reps: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    from bot.session import latest_sends_for

    since = dt.datetime(2025, 1, 1)
    cases = {"commonest phrase": keys[0], "a rare phrase": keys[len(keys) // 2],
             "never sent": "no such words"}
    out = {}
    for label, key in cases.items():
        latest_sends_for(engine, "bench", "T1", key, since)  # warm the statement cache
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            latest_sends_for(engine, "bench", "T1", key, since)
            times.append(time.perf_counter() - t0)
        out[label] = np.asarray(times) * 1e3
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1_000_000, help="sent previews in the workspace")
    ap.add_argument("--phrases", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    from sqlalchemy import create_engine, text

    from scorer.migrate import init_db

    cleanup = None
    if args.db == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="bench-phrases-")
        engine = init_db(f"sqlite:///{tmp.name}/moodgif.db")
    else:
        name = f"moodgif_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        engine = init_db(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
        cleanup = (admin, name)
    t0 = time.perf_counter()
    keys = build(engine, args.sessions, args.phrases, np.random.default_rng(0))
    with engine.begin() as c:
        top = c.execute(text("SELECT count(*) FROM chat_sessions WHERE workspace = 'T1' "
                             "AND query_key = :k"), {"k": keys[0]}).scalar()
        if args.db == "postgresql":
            c.execute(text("ANALYZE chat_sessions"))
    print(f"# {platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.db}; "
          f"{2 * args.sessions:,} sent previews ({args.sessions:,} in the workspace asked about), "
          f"{args.phrases:,} phrases; the commonest sent {top:,} times here; built in "
          f"{time.perf_counter() - t0:.0f} s")
    with_index = time_lookups(engine, keys, args.reps)
    with engine.begin() as c:
        c.execute(text("DROP INDEX ix_chat_sessions_phrase"))
    without = time_lookups(engine, keys, max(3, args.reps // 20))
    print("| lookup | with the index p50 / p99 | without it p50 | ratio (p50) |")
    print("|---|---|---|---|")
    for label, t in with_index.items():
        w = without[label]
        print(f"| {label} | {np.percentile(t, 50):.2f} / {np.percentile(t, 99):.2f} ms | "
              f"{np.percentile(w, 50):.1f} ms | {np.percentile(w, 50) / np.percentile(t, 50):.0f}x |")
    engine.dispose()
    if cleanup is not None:
        admin, name = cleanup
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
