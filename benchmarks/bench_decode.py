"""Decode throughput of scorer.frames, and its ratio to Pillow's raw ImageSequence decode.

    .venv/bin/python benchmarks/bench_decode.py [--count 200] [--repeat 3]

For each set of GIFs (a demo pool generated into a temporary folder, and the real GIFs in
../shared/data/real-gifs when present) it measures, in the same run and on the same bytes
already in memory:
  pillow-raw     ImageSequence iteration with frame.load(): Pillow's decode of every frame
                 (the floor: no RGB array is produced)
  decode_gif     every frame, composited to an RGB numpy array
  decode sparse  decode_gif(indices=sample_indices(n, "sparse")): what scoring uses
Best of --repeat runs; frames/s counts every frame of every GIF (the sparse run decodes
them all too, it only converts fewer).
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageSequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scorer.demo_pool import make_demo_pool
from scorer.frames import decode_gif, probe_gif, sample_indices

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from shared_data import SHARED_DATA

REAL = SHARED_DATA / "real-gifs"


def pillow_raw(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as im:
        n = 0
        for frame in ImageSequence.Iterator(im):
            frame.load()
            n += 1
    return n


def ours_all(data: bytes) -> int:
    return decode_gif(data).n_frames


def ours_sparse(data: bytes) -> int:
    _, _, n, _ = probe_gif(data, max_pixels=1 << 30, max_frames=1 << 20)
    decode_gif(data, indices=sample_indices(n, "sparse"))
    return n


def best_rate(blobs: list[bytes], fn: Callable[[bytes], int], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        frames = sum(fn(b) for b in blobs)
        best = max(best, frames / (time.perf_counter() - start))
    return best


def run_set(name: str, blobs: list[bytes], repeat: int) -> None:
    frames = sum(pillow_raw(b) for b in blobs)
    w, h, _, _ = probe_gif(blobs[0], max_pixels=1 << 30, max_frames=1 << 20)
    raw = best_rate(blobs, pillow_raw, repeat)
    full = best_rate(blobs, ours_all, repeat)
    sparse = best_rate(blobs, ours_sparse, repeat)
    print(f"\n{name}: {len(blobs)} GIFs, {frames} frames (first is {w}x{h})")
    print(f"  {'pillow-raw':<14} {raw:>9.0f} frames/s   ratio 1.00")
    print(f"  {'decode_gif':<14} {full:>9.0f} frames/s   ratio {full / raw:.2f}")
    print(f"  {'decode sparse':<14} {sparse:>9.0f} frames/s   ratio {sparse / raw:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200, help="demo GIFs to generate")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, Pillow {Image.__version__}, {platform.machine()}, "
          f"{platform.processor() or 'cpu'}; single thread")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_demo_pool(Path(tmp), args.count, seed=0)
        blobs = [p.read_bytes() for p in sorted((manifest.parent / "gifs").glob("*.gif"))]
    run_set(f"demo pool (--count {args.count}, seed 0)", blobs, args.repeat)
    real = sorted((REAL / "gifs").glob("*.gif")) if REAL.is_dir() else []
    if real:
        run_set("real GIFs (../shared/data/real-gifs)", [p.read_bytes() for p in real], args.repeat)
    else:
        print("\nreal GIFs: ../shared/data/real-gifs not present, skipped")


if __name__ == "__main__":
    main()
