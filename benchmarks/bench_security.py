"""Issue 14 (safe to expose): what the new caps cost and save, measured in one run.

    .venv/bin/python benchmarks/bench_security.py [--urls 16,64]

1. GIF bomb: time to refuse the audit's 4096x4096 x 790-frame GIF (block walk only) and,
   for scale, time and peak RSS growth to verify a real 1024x1024 x 40-frame noise GIF
   that passes the caps.
2. URL import memory: Python-heap peak (tracemalloc) of `ingest` for N URLs of ~0.5 MB on a
   loopback server, with the windowed import (fetch_concurrency 2: 16 URLs held at most) and
   with a window as large as the list (fetch_concurrency 64: the old all-in-memory shape).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
from aiohttp import web
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scorer.frames import GifDecodeError, verify_gif
from scorer.migrate import init_db
from scorer.pool import ingest
from scorer.settings import load_settings
from scorer.store import dispose_engines


def bomb(width: int = 4096, height: int = 4096, frames: int = 790) -> bytes:
    out = bytearray(b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00\x00\x00")
    for _ in range(frames):
        out += b"\x2c\x00\x00\x00\x00" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00"
        out += b"\x08\x01\x00\x00"
    return bytes(out + b"\x3b")


def noise_gif(side: int, frames: int) -> bytes:
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).convert("P")
           for _ in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=100)
    return buf.getvalue()


def bench_bomb() -> None:
    data = bomb()
    t = time.perf_counter()
    for _ in range(100):
        try:
            verify_gif(data, max_pixels=4096 * 4096, max_frames=2000, max_total_pixels=1_000_000_000)
        except GifDecodeError as exc:
            reason = str(exc)
    refuse_ms = (time.perf_counter() - t) / 100 * 1000
    real = noise_gif(1024, 40)
    t = time.perf_counter()
    verify_gif(real, max_pixels=4096 * 4096, max_frames=2000, max_total_pixels=1_000_000_000)
    ok_ms = (time.perf_counter() - t) * 1000
    print(f"bomb 4096x4096 x 790 ({len(data):,} bytes): refused in {refuse_ms:.2f} ms: {reason}")
    print(f"real 1024x1024 x 40 ({len(real):,} bytes, 42M decoded pixels): verified in {ok_ms:.0f} ms "
          f"-> the bomb (13.3G pixels) would take ~{ok_ms * 13.3e9 / 42e6 / 1000:.0f} s at that rate")


def bench_urls(counts: list[int]) -> None:
    base = noise_gif(420, 3)

    async def gif(request: web.Request) -> web.Response:
        return web.Response(body=base + request.match_info["n"].encode(), content_type="image/gif")

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/{n}.gif", gif)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    threading.Thread(target=loop.run_forever, daemon=True).start()
    print(f"URL import, {len(base):,}-byte GIFs, Python-heap peak (tracemalloc):")
    try:
        for conc, label in ((2, "windowed (16 held)"), (64, "all at once (old shape)")):
            row = []
            for n in counts:
                with tempfile.TemporaryDirectory() as home:
                    settings = load_settings(env={}, home=home).override(fetch__concurrency=conc)
                    engine = init_db(settings.db_url)
                    lst = Path(home) / "urls.txt"
                    lst.write_text("".join(f"http://127.0.0.1:{port}/{i}.gif\n" for i in range(n)))
                    tracemalloc.start()
                    report = ingest(settings, engine, "u", str(lst), trusted_endpoints=[("127.0.0.1", port)])
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                    dispose_engines()
                    assert len(report.added) == n, report.refused[:2]
                    row.append(f"{n} URLs {peak / 1e6:.1f} MB")
            print(f"  {label:<24} " + ", ".join(row))
    finally:
        loop.call_soon_threadsafe(loop.stop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", default="16,64")
    args = ap.parse_args()
    bench_bomb()
    bench_urls([int(x) for x in args.urls.split(",")])


if __name__ == "__main__":
    main()
