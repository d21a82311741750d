"""Hostile files and URL lists: GIF bombs, named pipes, many large downloads."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from scorer.frames import GifDecodeError, verify_gif
from scorer.pool import ingest


def bomb(width: int = 4096, height: int = 4096, frames: int = 790) -> bytes:
    """Every frame declares the whole canvas; the pixel data is a stub that would fail to
    decode, so a refusal naming the total proves nothing was decoded."""
    out = bytearray(b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00\x00\x00")
    for _ in range(frames):
        out += b"\x2c\x00\x00\x00\x00" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00"
        out += b"\x08\x01\x00\x00"  # LZW min code 8, one 1-byte sub-block, terminator
    return bytes(out + b"\x3b")


def noise_gif(side: int, frames: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    ims = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).convert("P")
           for _ in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)
    return buf.getvalue()


def test_gif_bomb_is_refused_before_decoding(sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bomb()
    with pytest.raises(GifDecodeError, match="too large to decode"):
        verify_gif(data, max_pixels=4096 * 4096, max_frames=2000,
                   max_total_pixels=sqlite_settings.fetch.max_gif_total_pixels)
    (tmp_path / "bomb.gif").write_bytes(data)
    real = noise_gif(64, 3)
    (tmp_path / "fine.gif").write_bytes(real)
    report = ingest(sqlite_settings, sqlite_engine, "b", str(tmp_path))
    assert len(report.added) == 1
    (ref, reason), = report.refused
    assert ref == "bomb.gif" and "decoded pixels" in reason and "MOODGIF_MAX_GIF_TOTAL_PIXELS" in reason
    # The cap is a setting: a real, decodable file over a small cap is refused too.
    small = sqlite_settings.override(fetch__max_gif_total_pixels=64 * 64 * 2)
    (tmp_path / "fine.gif").unlink()
    (tmp_path / "bomb.gif").unlink()
    (tmp_path / "three.gif").write_bytes(real)
    assert "decoded pixels" in ingest(small, sqlite_engine, "c", str(tmp_path)).refused[0][1]


@pytest.mark.timeout(60)
def test_named_pipe_as_source_or_row_never_hangs(sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from scorer.pool import PoolError

    fifo = tmp_path / "list.txt"
    os.mkfifo(fifo)
    with pytest.raises(PoolError, match="named pipe"):
        ingest(sqlite_settings, sqlite_engine, "p", str(fifo))
    os.mkfifo(tmp_path / "row.gif")
    (tmp_path / "m.csv").write_text("path\nrow.gif\n")
    report = ingest(sqlite_settings, sqlite_engine, "p", str(tmp_path / "m.csv"))
    assert "named pipe" in report.refused[0][1]


@pytest.mark.timeout(120)
async def test_url_import_memory_is_flat_in_the_number_of_urls(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    base = noise_gif(420, 3)  # about 0.5 MB, poorly compressible
    assert len(base) > 400_000

    async def gif(request: web.Request) -> web.Response:
        # A different file per URL (bytes after the trailer are ignored by decoders).
        return web.Response(body=base + request.match_info["n"].encode(), content_type="image/gif")

    app = web.Application()
    app.router.add_get("/{n}.gif", gif)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    settings = sqlite_settings.override(fetch__concurrency=2)  # a window of 16 URLs
    trusted = [("127.0.0.1", server.port)]
    peaks = {}
    try:
        for n in (16, 64):
            lst = Path(settings.home) / f"urls{n}.txt"
            lst.write_text("".join(f"http://127.0.0.1:{server.port}/{n}-{i}.gif\n" for i in range(n)))

            def run(lst: Path = lst, n: int = n) -> int:
                tracemalloc.start()
                report = ingest(settings, sqlite_engine, f"u{n}", str(lst), trusted_endpoints=trusted)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                assert len(report.added) == n, report.refused[:3]
                return peak

            peaks[n] = await asyncio.to_thread(run)
    finally:
        await server.close()
    # Four times the URLs, about the same peak (all in memory at once would be ~4x).
    assert peaks[64] < 1.6 * peaks[16], peaks


def test_hostile_manifests_are_clear_errors_not_tracebacks(settings, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from _bot_pool import demo_manifest

    from scorer.pool import PoolError

    gif = next(demo_manifest().parent.rglob("*.gif"))
    (tmp_path / "a.gif").write_bytes(gif.read_bytes())
    # a NUL in a title (PostgreSQL refuses it in text) costs nothing else
    (tmp_path / "nul.jsonl").write_text('{"path": "a.gif", "title": "bad\\u0000title"}\n')
    report = ingest(settings, engine, "n", str(tmp_path / "nul.jsonl"))
    assert len(report.added) == 1 and not report.refused
    (tmp_path / "latin1.csv").write_bytes("path,title\na.gif,caf\xe9\n".encode("latin-1"))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "huge.csv").write_text("path,title\na.gif," + "x" * 200_000 + "\n")
    for name, words in (("latin1.csv", "UTF-8"), ("deep.json", "cannot read"), ("huge.csv", "cannot read")):
        with pytest.raises(PoolError, match=words):
            ingest(settings, engine, "n", str(tmp_path / name))
