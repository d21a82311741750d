"""Scoring throughput, pipeline efficiency, scaling and peak memory, measured in one run.

    .venv/bin/python benchmarks/bench_scoring.py                  # CPU defaults, a few minutes
    .venv/bin/python benchmarks/bench_scoring.py --device cuda --gifs 2000 --batch-sizes 64,256
    .venv/bin/python benchmarks/bench_scoring.py --gifs-dir ../shared/data/real-gifs/gifs --rss ""

What it prints (on the demo pool that scorer.demo_pool generates, so anyone can rerun it, or
with --gifs-dir on a folder of real GIFs, read in place). The zero-shot prior's channels are
on, as `moodgif score` has them (--no-channels: off): faces in the decode workers, words
through the bot's intent model in the scoring process.

1. decode-only: GIFs/s of the worker side alone (decode, sample, resize/crop, motion features,
   the face channel) through the same DataLoader workers the pipeline uses;
2. encode-only: GIFs/s and frames/s of the encoder's network alone on already-prepared frames;
   words-only: the word channel alone;
3. full: `score_pool` end to end (decode workers + encoder + feature files + database, and
   with the channels the faces, the words and the prior's rows);
   efficiency = full / min(decode-only, encode-only). 1.0 means decoding is hidden entirely
   behind encoding (or the reverse), and the words behind both;
4. full-pipeline GIFs/s for workers x batch sizes;
5. peak RSS (the scoring process plus its largest decode worker) of `score_pool` on two pool
   sizes, each in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _setup(home: Path, count: int, seed: int = 0, gifs_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from scorer.migrate import init_db
    from scorer.pool import ingest
    from scorer.settings import load_settings

    if gifs_dir is not None:
        settings = load_settings(env={}, home=str(home), allowed_source_dirs=[str(gifs_dir)])
        engine = init_db(settings.db_url)
        ingest(settings, engine, "bench", _in_place_manifest(settings, gifs_dir, count))
        return settings, engine
    from scorer.demo_pool import make_demo_pool

    settings = load_settings(env={}, home=str(home))
    engine = init_db(settings.db_url)
    manifest = make_demo_pool(home.parent / f"demo-src-{count}", count, seed)
    ingest(settings, engine, "bench", manifest)
    return settings, engine


def _in_place_manifest(settings, gifs_dir: Path, count: int) -> Path:  # type: ignore[no-untyped-def]
    """A manifest of up to `count` GIFs of a folder of third-party GIFs, read where they are:
    each one's place in the pool store is a symlink to it, so ingest finds the file already
    stored and writes no copy. Titles are what ingesting the folder would give, from the
    file's own name without the collection's `<category>__` prefix (that is the label)."""
    import csv
    import hashlib

    from scorer.words import title_from_path

    files = sorted(p for p in gifs_dir.iterdir() if p.suffix.lower() == ".gif")[:count]
    manifest = settings.home / "bench-source.csv"
    with open(manifest, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "title"])
        for f in files:
            sha = hashlib.sha256(f.read_bytes()).hexdigest()
            stored = settings.gifs_dir / sha[:2] / f"{sha}.gif"
            stored.parent.mkdir(parents=True, exist_ok=True)
            stored.symlink_to(f.resolve())
            out.writerow([str(f.resolve()), title_from_path(f.name.split("__", 1)[-1])])
    return manifest


def _jobs(settings, engine):  # type: ignore[no-untyped-def]
    from scorer.pipeline import GifJob, _gif_rows
    from scorer.pool import gif_path, pool_gifs

    shas = pool_gifs(engine, "bench")
    rows = _gif_rows(engine, shas)
    return [GifJob(s, str(gif_path(settings, s)), rows[s][0]) for s in shas]


def _channels(settings):  # type: ignore[no-untyped-def]
    """(face model folder or "", the word channel's text model) as `moodgif score` has them;
    the intent model's sentence model is loaded here, before any clock starts."""
    from bot.intent import text_model as settled_text_model
    from scorer.faces import model_dir

    found = model_dir(settings.scoring.face_model_dir or None)
    if found is None:
        print("face channel off: no face-api weights (scripts/fetch-face-model)")
    text_model = settled_text_model(settings, notify=print)  # as `moodgif score` loads it
    return (str(found) if found else ""), text_model


def _words_only(engine, shas: list[str], text_model) -> float:  # type: ignore[no-untyped-def]
    """Seconds of the word channel alone on these GIFs (their words read from the database,
    then the intent model), as `scorer.prior.write_prior` computes it."""
    from sqlalchemy import select

    from scorer.prior import gif_text, word_channel
    from scorer.store import Gif, session_scope

    t = time.perf_counter()
    with session_scope(engine) as s:
        texts = [gif_text(g.title or "", g.tags or [], g.alt_text or "", g.slug or "")
                 for g in s.scalars(select(Gif).where(Gif.sha256.in_(shas)))]
    for text in texts:
        word_channel(text, text_model)
    return time.perf_counter() - t


def _cpu() -> float:
    """CPU seconds of this process and of its children that have exited."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _rss_setup(home: str, count: int) -> None:
    _setup(Path(home), count)


def _rss_child(home: str, count: int, encoder: str, device: str, workers: int, batch: int) -> None:
    """Score an already ingested pool in a fresh process: the peak RSS is scoring's alone."""
    from scorer.migrate import init_db
    from scorer.pipeline import score_pool
    from scorer.settings import load_settings

    settings = load_settings(env={}, home=home)
    engine = init_db(settings.db_url)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    report = score_pool(settings, engine, pool="bench", encoder_id=encoder, device=device,
                        workers=workers, batch_size=batch)
    secs = time.perf_counter() - t
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"count": count, "encoded": report.encoded, "seconds": secs,
                      "rss_before_mb": base / 1024, "rss_self_mb": me / 1024, "rss_worker_mb": kids / 1024}))


def _face_probe(root: Path) -> None:
    """Does OpenCV's Haar face (and smile) cascade find the faces in the real GIFs?"""
    import csv

    import numpy as np

    try:
        import cv2
    except ImportError:
        sys.exit("--face-probe needs opencv-python-headless<5 (e.g. pip install --target /tmp/cv "
                 "'opencv-python-headless<5' and PYTHONPATH=/tmp/cv)")
    from scorer.frames import decode_gif, sample_indices

    face = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    smile = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_smile.xml")
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    gif_hit = frames_tot = frames_hit = 0
    t_det = 0.0
    by_label: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        d = decode_gif(root / r["file"], indices=sample_indices(int(r["frames"]), "sparse"))
        hits = smiles = 0
        for f in d.frames:
            g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            t = time.perf_counter()
            faces = face.detectMultiScale(g, 1.1, 5, minSize=(24, 24))
            t_det += time.perf_counter() - t
            if len(faces):
                hits += 1
                x, y, w, h = max(faces, key=lambda b: b[2] * b[3])
                smiles += bool(len(smile.detectMultiScale(g[y + h // 2 : y + h, x : x + w], 1.7, 20)))
        frames_tot += len(d.frames)
        frames_hit += hits
        gif_hit += hits > 0
        by_label.setdefault(r["weak_label"], []).append((hits / len(d.frames), smiles / max(hits, 1)))
    print(f"GIFs with a face in a sampled frame: {gif_hit}/{len(rows)}; sampled frames with a face: "
          f"{frames_hit}/{frames_tot} = {frames_hit / frames_tot:.2f}; {1000 * t_det / frames_tot:.1f} ms/frame")
    for lab, vals in sorted(by_label.items()):
        arr = np.asarray(vals)
        print(f"  {lab:14s} n={len(vals):2d} face-frame share {arr[:, 0].mean():.2f}  smile share {arr[:, 1].mean():.2f}")


def _report_parts(n: int, frames: int, times: dict[str, list[float]], cpu: dict[str, list[float]],
                  *, repeat: int, channels: bool, faces: bool, words: bool) -> None:
    """Each part's best run, the efficiency, each part's CPU seconds and the channels' cost."""
    decode_s, encode_s, full_s = min(times["decode"]), min(times["encode"]), min(times["full"])
    dec, encr, ful = n / decode_s, n / encode_s, n / full_s
    side = " (with faces)" if faces else ""
    print(f"best of {repeat} run(s) of each part, in turn:")
    print(f"decode-only : {dec:7.2f} GIFs/s  {frames / decode_s:8.1f} frames/s{side}")
    print(f"encode-only : {encr:7.2f} GIFs/s  {frames / encode_s:8.1f} frames/s")
    if words:
        print(f"words-only  : {n / min(times['words']):7.2f} GIFs/s  (the word channel in this "
              f"process)")
    print(f"full        : {ful:7.2f} GIFs/s  {frames / full_s:8.1f} frames/s"
          + (" (features, faces, words, the prior written)" if channels else ""))
    print(f"efficiency  : {ful / min(dec, encr):.2f}  (full / min(decode-only, encode-only))"
          + (f"; target >= 0.9 with the channels on (load average now "
             f"{os.getloadavg()[0]:.1f})" if channels else ""))
    if repeat > 1:
        per_run = [f"{(n / f) / min(n / d, n / e):.2f}" for d, e, f in
                   zip(times["decode"], times["encode"], times["full"], strict=True)]
        print(f"efficiency of each run in turn: {' '.join(per_run)}")
    slowest = max(decode_s, encode_s)
    parts = min(cpu["decode"]) + min(cpu["encode"]) + (min(cpu["words"]) if cpu["words"] else 0.0)
    print(f"CPU seconds (best of each): decode-only {min(cpu['decode']):.1f}, encode-only "
          f"{min(cpu['encode']):.1f}" + (f", words-only {min(cpu['words']):.1f}" if cpu["words"] else "")
          + f", full {min(cpu['full']):.1f}: full / sum of the parts {min(cpu['full']) / parts:.2f}; "
          f"when every part runs on these {os.cpu_count()} cores (the encoder too), their "
          f"CPU bounds the efficiency at {slowest / max(slowest, parts / (os.cpu_count() or 1)):.2f}")
    if channels:
        off_s = min(times["off"])
        print(f"full, channels off, same run: {n / off_s:7.2f} GIFs/s: the channels cost "
              f"{full_s / off_s:.2f}x its time")


def _peak_rss(args: argparse.Namespace, tmp: Path) -> None:
    """Peak RSS of scoring pools of the given sizes, each in a fresh child process."""
    print(f"peak RSS ({args.rss_encoder or args.encoder}):")
    for count in [int(x) for x in args.rss.split(",") if x]:
        cmd = [sys.executable, __file__, "--rss-child", str(tmp / f"rss-{count}" / "home"), str(count),
               "--encoder", args.encoder, "--device", args.device, "--workers", str(args.workers),
               "--batch", str(args.batch)]
        if args.rss_encoder:
            cmd += ["--rss-encoder", args.rss_encoder]
        (tmp / f"rss-{count}").mkdir()
        subprocess.run([sys.executable, __file__, "--rss-setup", str(tmp / f"rss-{count}" / "home"), str(count)],
                       check=True, capture_output=True)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"  {count:5d} GIFs: scorer {r['rss_self_mb']:6.0f} MB (after imports {r['rss_before_mb']:.0f}), "
              f"largest decode worker {r['rss_worker_mb']:5.0f} MB, {r['encoded'] / r['seconds']:.1f} GIFs/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gifs", type=int, default=120, help="GIFs for the throughput runs")
    ap.add_argument("--encoder", default="nsfw-resnet50thin+motion")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2, help="decode workers for parts 1-3")
    ap.add_argument("--batch", type=int, default=64, help="frames per batch for parts 1-3")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of parts 1-3, in turn; the best of each is reported")
    ap.add_argument("--scaling-workers", default="1,2")
    ap.add_argument("--batch-sizes", default="16,64")
    ap.add_argument("--rss", default="200,800", help="two pool sizes for peak RSS ('' = skip)")
    ap.add_argument("--rss-encoder", default=None, help="encoder for the RSS runs (default: --encoder)")
    ap.add_argument("--rss-child", nargs=2, metavar=("HOME", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--rss-setup", nargs=2, metavar=("HOME", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--skip-throughput", action="store_true", help="only the peak-RSS part")
    ap.add_argument("--face-probe", metavar="REAL_GIFS_DIR", help="only measure the Haar face channel on real GIFs")
    ap.add_argument("--no-channels", dest="channels", action="store_false",
                    help="score without the zero-shot prior's channels (faces in the decode "
                         "workers, words through the intent model), as before issue 17 item 5")
    ap.add_argument("--gifs-dir", type=Path, default=None,
                    help="a folder of real GIFs (e.g. ../shared/data/real-gifs/gifs), read in "
                         "place, instead of the demo pool; --gifs caps how many")
    args = ap.parse_args()

    if args.face_probe:
        _face_probe(Path(args.face_probe))
        return
    if args.rss_setup:
        _rss_setup(args.rss_setup[0], int(args.rss_setup[1]))
        return
    if args.rss_child:
        _rss_child(args.rss_child[0], int(args.rss_child[1]), args.rss_encoder or args.encoder,
                   args.device, args.workers, args.batch)
        return

    import torch

    from scorer.encoders import get_encoder
    from scorer.pipeline import Limits, encode_stream, iter_prepared_local, score_pool

    tmp = Path(tempfile.mkdtemp(prefix="moodgif-bench-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"cuda={torch.cuda.is_available()} {torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}, "
              f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)")
        if args.skip_throughput:
            args.gifs = 4
        settings, engine = _setup(tmp / "home", args.gifs, gifs_dir=args.gifs_dir)
        jobs = _jobs(settings, engine)
        enc = get_encoder(args.encoder, settings, args.device)
        face_dir, text_model = _channels(settings) if args.channels else ("", None)
        what = f"GIFs of {args.gifs_dir} (read in place)" if args.gifs_dir else "demo GIFs"
        print(f"encoder {enc.id} on {enc.device} (autocast {enc.amp}), {len(jobs)} {what}, "
              f"sampling {settings.scoring.sampling}, workers {args.workers}, batch {args.batch}; "
              f"channels: faces {'on (in the decode workers)' if face_dir else 'off'}, words "
              f"{'on (intent model, loaded before the clock)' if text_model else 'off'}")
        limits = Limits(settings.fetch.max_gif_frames, settings.fetch.max_gif_pixels,
                        face_model_dir=face_dir)

        # warm-up: first calls pay for allocator / kernel selection
        warm = list(iter_prepared_local(jobs[:4], enc.prep, settings.scoring.sampling, limits, 0))
        list(encode_stream(enc, warm, args.batch))

        if args.skip_throughput:
            args.scaling_workers = ""
        def decode_only() -> tuple[float, int, list]:
            t = time.perf_counter()
            got = list(iter_prepared_local(jobs, enc.prep, settings.scoring.sampling, limits, args.workers))
            return time.perf_counter() - t, sum(g.frames for g in got), got

        def encode_only(prepared: list) -> float:
            t = time.perf_counter()
            for _ in encode_stream(enc, prepared, args.batch):
                pass
            if enc.device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t

        def full(workers: int, batch: int, channels: bool = args.channels) -> float:
            shutil.rmtree(settings.features_dir, ignore_errors=True)
            t = time.perf_counter()
            r = score_pool(settings, engine, pool="bench", encoder_id=args.encoder, device=args.device,
                           workers=workers, batch_size=batch, prior=channels,
                           text_model=text_model if channels else None)
            assert r.encoded == len(jobs), r
            return time.perf_counter() - t

        # The parts in turn, --repeat times; each part's best run: on a shared machine a
        # burst of other work slows one run of a part, not all of them.
        # CPU seconds too (this process + its reaped decode workers): a load-independent
        # check that the full pipeline does the parts' work and no more.
        times: dict[str, list[float]] = {"decode": [], "encode": [], "words": [], "full": [], "off": []}
        cpu: dict[str, list[float]] = {k: [] for k in times}
        for _ in range(args.repeat):
            c = _cpu()
            decode_s, frames, prepared = decode_only()
            times["decode"].append(decode_s)
            cpu["decode"].append(_cpu() - c)
            c = _cpu()
            times["encode"].append(encode_only(prepared))
            cpu["encode"].append(_cpu() - c)
            del prepared
            if text_model:
                c = _cpu()
                times["words"].append(_words_only(engine, [j.sha for j in jobs], text_model))
                cpu["words"].append(_cpu() - c)
            c = _cpu()
            times["full"].append(full(args.workers, args.batch))
            cpu["full"].append(_cpu() - c)
            if args.channels:
                c = _cpu()
                times["off"].append(full(args.workers, args.batch, channels=False))
                cpu["off"].append(_cpu() - c)
        n = len(jobs)
        _report_parts(n, frames, times, cpu, repeat=args.repeat, channels=args.channels,
                      faces=bool(face_dir), words=text_model is not None)

        print("scaling (full pipeline GIFs/s):")
        for w in [int(x) for x in args.scaling_workers.split(",") if x]:
            for b in [int(x) for x in args.batch_sizes.split(",") if x]:
                s = full(w, b)
                print(f"  workers={w} batch={b:4d}: {n / s:7.2f} GIFs/s  {frames / s:8.1f} frames/s")

        if args.rss:
            _peak_rss(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
