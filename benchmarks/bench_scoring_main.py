"""The scoring process's own bookkeeping per GIF (gif rows and feature files), before/after.

    .venv/bin/python benchmarks/bench_scoring_main.py                 # 2,000 GIFs, 3 rounds
    .venv/bin/python benchmarks/bench_scoring_main.py --gifs 1000 --encode-ms 0.4 --dir /data

On a GPU the encoder's loop in the scoring (main) process was the cap: besides unpickling the
prepared frames it wrote every GIF's row with its own ORM get and every feature file inline.
This measures, on a real SQLite file on this machine's disk and with no GPU:

1. the gif rows: `_write_gif_updates` as it was (a `Session.get` per GIF) vs now (one query
   a chunk), ms per GIF of the main thread;
2. the feature files: `save_features` inline (the main thread waits on each) vs queued on
   the writer's threads, ms per GIF that the main thread spends on them;
3. both together in the real loop: the old `_consume` (kept below as it was) vs
   `scorer.pipeline._consume`, fed by a stand-in encoder that waits `--encode-ms` per GIF
   with the GIL released, as a GPU does: main-thread bookkeeping = (wall - the wait) / GIFs.

The rounds run old and new in turn and each figure is the median of the rounds: the machine
may be shared, so read the ratios, taken within one run, rather than the times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIM = 1036  # the default encoder: ResNet-50-thin 1024 + NSFW 1 + motion 11
NSFW_INDEX = 1024


def _setup(root: Path, count: int):  # type: ignore[no-untyped-def]
    """Settings on a fresh home under `root` (its SQLite file and features folder there)
    with `count` gif rows, a third of them rated by a manifest; (settings, engine, shas)."""
    import hashlib

    from sqlalchemy import insert

    from scorer.migrate import init_db
    from scorer.settings import load_settings
    from scorer.store import Gif, session_scope

    settings = load_settings(env={}, home=str(root / "home"))
    engine = init_db(settings.db_url)
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)]
    with session_scope(engine) as s:
        s.execute(insert(Gif), [
            {"sha256": sha, "bytes": 1000, "width": 64, "height": 64, "n_frames": 12,
             "rating": "pg" if i % 3 == 0 else None, "rating_source": "manifest" if i % 3 == 0 else None}
            for i, sha in enumerate(shas)])
    return settings, engine, shas


def _features(count: int, seed: int):  # type: ignore[no-untyped-def]
    """(T, DIM) float32 features as the default encoder gives them (T = 3 to 10 frames)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.random((int(rng.integers(3, 11)), DIM), dtype=np.float32) for _ in range(count)]


def _old_write_gif_updates(engine, settings, updates) -> None:  # type: ignore[no-untyped-def]
    """`scorer.pipeline._write_gif_updates` before: one `Session.get` per GIF."""
    from scorer.rating import apply_rating
    from scorer.store import Gif, session_scope

    if not updates:
        return
    with session_scope(engine) as s:
        for sha, prob, error in updates:
            gif = s.get(Gif, sha)
            if gif is None:
                continue
            if error is not None:
                gif.score_error = error[:2000]
                continue
            gif.score_error = None
            if prob is not None:
                apply_rating(gif, prob, settings)


def _old_consume(settings, engine, encoder, enc_id, scheme, results, report) -> None:  # type: ignore[no-untyped-def]
    """`scorer.pipeline._consume` before (less its progress bar): each feature file written
    inline, then its row, `DB_CHUNK` rows a transaction with a get per GIF."""
    from scorer.features import save_features
    from scorer.pipeline import DB_CHUNK, _nsfw

    pending: list = []
    try:
        for sha, feats, error, n_frames in results:
            if error is not None or feats is None:
                pending.append((sha, None, error or "encoder returned nothing"))
            else:
                save_features(settings, sha, enc_id, scheme, feats)
                report.encoded += 1
                report.frames += n_frames
                pending.append((sha, _nsfw(encoder, feats), None))
            if len(pending) >= DB_CHUNK:
                _old_write_gif_updates(engine, settings, pending)
                pending = []
    finally:
        _old_write_gif_updates(engine, settings, pending)


def _updates(shas: list[str], round_: int) -> list[tuple[str, float | None, str | None]]:
    """Every GIF's row with a probability new to this round (so every row really changes),
    one in 50 a decode error instead."""
    return [(sha, None, "cannot decode: bench") if i % 50 == 0 else (sha, ((i + round_) % 97) / 97, None)
            for i, sha in enumerate(shas)]


def _time_rows(write, engine, settings, updates) -> float:  # type: ignore[no-untyped-def]
    """Seconds to write `updates` through `write`, `DB_CHUNK` rows a transaction."""
    from scorer.pipeline import DB_CHUNK

    t = time.perf_counter()
    for i in range(0, len(updates), DB_CHUNK):
        write(engine, settings, updates[i : i + DB_CHUNK])
    return time.perf_counter() - t


def _time_files_inline(settings, shas, feats, tag: str) -> float:  # type: ignore[no-untyped-def]
    from scorer.features import save_features

    t = time.perf_counter()
    for sha, f in zip(shas, feats, strict=True):
        save_features(settings, sha, tag, "sparse", f)
    return time.perf_counter() - t


def _time_files_queued(settings, shas, feats, tag: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds the main thread spends queueing the writes, seconds until they are all on
    disk) through a writer like `_consume`'s."""
    from concurrent.futures import ThreadPoolExecutor

    from scorer.features import save_features
    from scorer.pipeline import WRITER_THREADS

    with ThreadPoolExecutor(WRITER_THREADS) as writer:
        t = time.perf_counter()
        futures = [writer.submit(save_features, settings, sha, tag, "sparse", f)
                   for sha, f in zip(shas, feats, strict=True)]
        queued = time.perf_counter() - t
        for fut in futures:
            fut.result()
        return queued, time.perf_counter() - t


def _stand_in_results(shas, feats, encode_s: float):  # type: ignore[no-untyped-def]
    """What the encoder's stream yields, each GIF after `encode_s` with the GIL released."""
    for sha, f in zip(shas, feats, strict=True):
        time.sleep(encode_s)
        yield sha, f, None, len(f)


def _time_loop(consume, settings, engine, shas, feats, encode_s: float, tag: str) -> float:  # type: ignore[no-untyped-def]
    """Main-thread seconds of `consume` beyond the stand-in encoder's own time."""
    from scorer.pipeline import ScoreReport

    encoder = SimpleNamespace(nsfw_index=NSFW_INDEX)
    wait = _time_sleeps(len(shas), encode_s)
    t = time.perf_counter()
    consume(settings, engine, encoder, tag, "sparse", _stand_in_results(shas, feats, encode_s),
            ScoreReport())
    return time.perf_counter() - t - wait


def _time_sleeps(count: int, encode_s: float) -> float:
    """What `count` sleeps of `encode_s` really take here (a sleep overshoots a little)."""
    t = time.perf_counter()
    for _ in range(count):
        time.sleep(encode_s)
    return time.perf_counter() - t


def _new_consume(settings, engine, encoder, enc_id, scheme, results, report) -> None:  # type: ignore[no-untyped-def]
    from scorer.pipeline import _consume

    _consume(settings, engine, encoder, enc_id, scheme, results, report, 0, False)


def _round(settings, engine, shas, feats, r: int, encode_s: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One round of every measurement, old then new; seconds per GIF."""
    from scorer.pipeline import _write_gif_updates

    n = len(shas)
    out = {"rows_old": _time_rows(_old_write_gif_updates, engine, settings, _updates(shas, 2 * r)),
           "rows_new": _time_rows(_write_gif_updates, engine, settings, _updates(shas, 2 * r + 1)),
           "files_inline": _time_files_inline(settings, shas, feats, f"inline{r}")}
    out["files_queued"], out["files_drained"] = _time_files_queued(settings, shas, feats, f"queued{r}")
    out["loop_old"] = _time_loop(_old_consume, settings, engine, shas, feats, encode_s, f"old{r}")
    out["loop_new"] = _time_loop(_new_consume, settings, engine, shas, feats, encode_s, f"new{r}")
    return {k: v / n for k, v in out.items()}


def _print(per_gif: dict[str, float], n: int, rounds: int, encode_ms: float) -> None:
    ms = {k: 1000 * v for k, v in per_gif.items()}
    print(f"main-process bookkeeping, {n} GIFs, median of {rounds} round(s), ms per GIF:")
    print(f"1. gif rows     : per-row get {ms['rows_old']:.3f}  one query a chunk "
          f"{ms['rows_new']:.3f}  ratio {ms['rows_old'] / ms['rows_new']:.1f}x")
    print(f"2. feature files: inline {ms['files_inline']:.3f}  queued on the writer "
          f"{ms['files_queued']:.3f} (all on disk after {ms['files_drained']:.3f})  ratio "
          f"{ms['files_inline'] / ms['files_queued']:.1f}x")
    print(f"3. the loop, encoder stand-in {encode_ms} ms/GIF: old _consume {ms['loop_old']:.3f}  "
          f"new {ms['loop_new']:.3f} beyond the encoder  ratio {ms['loop_old'] / max(ms['loop_new'], 1e-6):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gifs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="old and new in turn, this many times")
    ap.add_argument("--encode-ms", type=float, default=1.0,
                    help="the stand-in encoder's time per GIF in part 3 (GIL released)")
    ap.add_argument("--dir", type=Path, default=None,
                    help="where the SQLite file and the feature files go (default: a temporary folder)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="moodgif-bench-main-", dir=args.dir) as tmp:
        settings, engine, shas = _setup(Path(tmp), args.gifs)
        feats = _features(args.gifs, 0)
        print(f"SQLite file and features under {tmp}")
        rounds = [_round(settings, engine, shas, feats, r, args.encode_ms / 1000) for r in range(args.rounds)]
        median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        _print(median, args.gifs, args.rounds, args.encode_ms)


if __name__ == "__main__":
    main()
