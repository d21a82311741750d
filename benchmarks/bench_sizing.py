"""Sizing: database bytes and bot RAM per 100k GIFs, measured on synthetic rows.

    .venv/bin/python benchmarks/bench_sizing.py [--gifs 100000] [--comparisons 200000] [--no-pg]

Fills a temporary SQLite database (and, if reachable, a temporary PostgreSQL database on
127.0.0.1:5432) with N GIF rows of realistic size, their pool rows, one model version's
predictions, one Bradley-Terry fit and C comparisons, and prints the bytes each takes. Then
loads the score matrix the way a bot process does (one query, np.frombuffer) and prints
the memory it holds. Figures go to docs/bench/sizing.md. Runs in about a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scorer.emotions import N_EMOTIONS
from scorer.migrate import init_db
from scorer.store import (
    BTFit,
    BTScore,
    Comparison,
    Gif,
    ModelVersion,
    Pool,
    PoolGif,
    Prediction,
    dispose_engines,
)

PG_ADMIN = os.environ.get("MOODGIF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 5000


def _rows(n_gifs: int, n_cmp: int, rng: random.Random) -> dict[str, list[dict]]:
    now = dt.datetime(2024, 1, 1)
    shas = [f"{rng.getrandbits(256):064x}" for _ in range(n_gifs)]
    words = ["happy", "cat", "dance", "wow", "fail", "yes", "no", "party", "sad", "lol"]
    blob = lambda: np.random.default_rng(rng.getrandbits(32)).random(N_EMOTIONS, dtype=np.float32).tobytes()  # noqa: E731
    gifs = [
        {"sha256": s, "bytes": rng.randint(50_000, 3_000_000), "format": "gif", "width": 480, "height": 270,
         "n_frames": rng.randint(10, 120), "duration_ms": rng.randint(500, 6000),
         "title": " ".join(rng.choices(words, k=3)), "tags": rng.choices(words, k=3),
         "source_url": f"https://media.example.org/{s[:16]}/giphy.gif", "rating": "pg",
         "rating_source": "nsfw-model", "nsfw_prob": rng.random() * 0.1, "created_at": now}
        for s in shas
    ]
    return {
        "gifs": gifs,
        "pool_gifs": [{"pool_id": 1, "gif_sha": s, "source_ref": f"{s[:12]}.gif", "added_at": now} for s in shas],
        "predictions": [{"model_version_id": 1, "gif_sha": s, "scores": blob()} for s in shas],
        "bt_scores": [{"fit_id": 1, "gif_sha": s, "theta": blob(), "se": blob(), "scaled": blob(),
                       "n_comparisons": rng.randint(0, 50)} for s in shas],
        "comparisons": [
            {"emotion": rng.randrange(N_EMOTIONS), "winner": rng.choice(shas), "loser": rng.choice(shas),
             "tie": False, "weight": 1.0, "source": "vote", "who": f"{rng.getrandbits(128):032x}",
             "platform": "slack", "workspace": "T0123456", "channel": "C0123456",
             "vote_key": f"{i}:{rng.getrandbits(64):016x}", "created_at": now}
            for i in range(n_cmp)
        ],
    }


TABLES = {"gifs": Gif, "pool_gifs": PoolGif, "predictions": Prediction, "bt_scores": BTScore,
          "comparisons": Comparison}


def _fill(engine, rows: dict[str, list[dict]], size_of) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(insert(Pool).values(id=1, name="bench"))
        conn.execute(insert(ModelVersion).values(id=1, name="v1", encoder_id="e", head_kind="fc"))
        conn.execute(insert(BTFit).values(id=1))
    sizes: dict[str, int] = {}
    for table, model in TABLES.items():
        before = size_of(table)
        data = rows[table]
        for i in range(0, len(data), BATCH):
            with engine.begin() as conn:
                conn.execute(insert(model), data[i : i + BATCH])
        sizes[table] = size_of(table) - before
    return sizes


def sqlite_sizes(rows: dict[str, list[dict]], tmp: Path) -> tuple[dict[str, int], int]:
    path = tmp / "bench.db"
    engine = init_db(f"sqlite:///{path}")

    def size_of(_table: str) -> int:
        with engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return path.stat().st_size

    sizes = _fill(engine, rows, size_of)
    total = path.stat().st_size
    dispose_engines()
    return sizes, total


def pg_sizes(rows: dict[str, list[dict]]) -> tuple[dict[str, int], int] | None:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL not reachable ({exc.__class__.__name__}): skipped", file=sys.stderr)
        return None
    name = f"moodgif_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        engine = init_db(url)

        def size_of(table: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one())

        sizes = _fill(engine, rows, size_of)
        with engine.connect() as conn:
            conn.execute(text("COMMIT"))
            total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        dispose_engines()
        return sizes, total
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def score_matrix_memory(tmp: Path) -> dict[str, float]:
    """Load predictions like the bot: ids + an (N, 17) float32 matrix; report what it holds."""
    engine = init_db(f"sqlite:///{tmp / 'bench.db'}")
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    with engine.connect() as conn:
        result = conn.execute(select(Prediction.gif_sha, Prediction.scores).where(Prediction.model_version_id == 1)).all()
    ids = [r[0] for r in result]
    matrix = np.frombuffer(b"".join(r[1] for r in result), dtype="<f4").reshape(-1, N_EMOTIONS).copy()
    del result
    gc.collect()
    load_s = time.perf_counter() - t0
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ids_np = np.array(ids, dtype="S64")
    out = {
        "n": len(ids),
        "matrix_bytes": matrix.nbytes,
        "ids_list_bytes": sys.getsizeof(ids) + sum(sys.getsizeof(s) for s in ids),
        "ids_array_bytes": ids_np.nbytes,
        "held_bytes": held,
        "peak_bytes": peak,
        "load_s": load_s,
    }
    dispose_engines()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gifs", type=int, default=100_000)
    ap.add_argument("--comparisons", type=int, default=200_000)
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    n, c = args.gifs, args.comparisons
    per_100k = 100_000 / n
    rows = _rows(n, c, random.Random(0))
    print(f"synthetic: {n} GIFs, {c} comparisons")
    with tempfile.TemporaryDirectory() as tmp:
        results = {"SQLite": sqlite_sizes(rows, Path(tmp))}
        if not args.no_pg:
            pg = pg_sizes(rows)
            if pg is not None:
                results["PostgreSQL"] = pg
        print("\ndatabase size (table data + indexes):")
        print(f"{'table':<14}" + "".join(f"{db + ' B/row':>18}{db + ' MB/100k':>20}" for db in results))
        for table in TABLES:
            count = c if table == "comparisons" else n
            line = f"{table:<14}"
            for sizes, _ in results.values():
                per_row = sizes[table] / count
                line += f"{per_row:>18.0f}{per_row * 100_000 / 1e6:>20.1f}"
            print(line)
        for db, (sizes, total) in results.items():
            gif_side = sum(v for k, v in sizes.items() if k != "comparisons") * per_100k
            print(f"{db}: whole file/database {total / 1e6:.1f} MB; per 100k GIFs (gifs+pool+1 prediction set"
                  f"+1 BT fit) {gif_side / 1e6:.1f} MB; per 1M comparisons {sizes['comparisons'] / c * 1e6 / 1e6:.0f} MB")

        mem = score_matrix_memory(Path(tmp))
    k = 100_000 / mem["n"]
    print("\nbot RAM for the score matrix (per 100k GIFs):")
    print(f"  matrix {N_EMOTIONS} x float32      {mem['matrix_bytes'] * k / 1e6:6.1f} MB")
    print(f"  ids as Python str list  {mem['ids_list_bytes'] * k / 1e6:6.1f} MB   (as a numpy S64 array: {mem['ids_array_bytes'] * k / 1e6:.1f} MB)")
    print(f"  held after load         {mem['held_bytes'] * k / 1e6:6.1f} MB   (tracemalloc)")
    print(f"  peak while loading      {mem['peak_bytes'] * k / 1e6:6.1f} MB   (query rows + blobs, freed after)")
    print(f"  load time               {mem['load_s'] * k:6.2f} s")


if __name__ == "__main__":
    main()
