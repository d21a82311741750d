"""Frame decoding, compositing, probing and the paper's sampling schemes."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from _h1_gifs import RawFrame, good_gif, huge_canvas_gif, make_gif, many_frames_gif, solid
from PIL import Image

from scorer.frames import (
    BACKGROUND,
    GifDecodeError,
    decode_gif,
    probe_gif,
    sample_indices,
    verify_gif,
)

R, G, B, K = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)
W = BACKGROUND
PAL = [R, G, B, K]
CAPS = {"max_pixels": 4096 * 4096, "max_frames": 2000}


def grid(*rows: str) -> np.ndarray:
    """Expected pixels from letters: R G B K, and W for the background."""
    colours = {"R": R, "G": G, "B": B, "K": K, "W": W}
    return np.asarray([[colours[c] for c in row] for row in rows], dtype=np.uint8)


# --- sampling -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (10, [0, 5, 9]), (29, [0, 14, 28]),
     (30, [0, 10, 20]), (31, [0, 10, 20, 30]), (95, list(range(0, 95, 10)))],
)
def test_sparse_sampling(n: int, expected: list[int]) -> None:
    assert sample_indices(n, "sparse").tolist() == expected


def test_dense_sampling() -> None:
    assert sample_indices(1, "dense").tolist() == [0]
    assert sample_indices(10, "dense").tolist() == list(range(10))
    assert sample_indices(11, "dense").tolist() == [0, 2, 4, 6, 8, 10]
    assert sample_indices(50, "dense").tolist() == list(range(0, 50, 2))
    for n in (51, 77, 200, 5000):
        idx = sample_indices(n, "dense")
        assert len(idx) == 25 and idx[0] == 0 and idx[-1] == n - 1
        gaps = np.diff(idx)
        assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1  # evenly spaced


def test_sampling_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        sample_indices(0, "sparse")
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_indices(10, "medium")


# --- compositing ----------------------------------------------------------------------


def test_partial_frames_paint_only_their_rectangle() -> None:
    data = make_gif(4, 4, [RawFrame(solid(4, 4, 0)), RawFrame(solid(2, 2, 1), left=1, top=1)], PAL)
    g = decode_gif(data)
    assert g.frames.shape == (2, 4, 4, 3) and g.frames.dtype == np.uint8
    assert (g.frames[0] == grid("RRRR", "RRRR", "RRRR", "RRRR")).all()
    assert (g.frames[1] == grid("RRRR", "RGGR", "RGGR", "RRRR")).all()


def test_disposal_2_clears_to_background() -> None:
    frames = [
        RawFrame(solid(4, 4, 0), disposal=1),
        RawFrame(solid(2, 2, 2), disposal=2),
        RawFrame(solid(1, 1, 3), left=3, top=3),
    ]
    g = decode_gif(make_gif(4, 4, frames, PAL, background=1))
    assert (g.frames[1] == grid("BBRR", "BBRR", "RRRR", "RRRR")).all()
    # the blue square is gone after it was shown; the canvas there is transparent
    assert (g.frames[2] == grid("WWRR", "WWRR", "RRRR", "RRRK")).all()


def test_disposal_3_restores_previous() -> None:
    frames = [
        RawFrame(solid(4, 4, 0), disposal=1),
        RawFrame(solid(2, 2, 1), left=1, top=1, disposal=3),
        RawFrame(solid(1, 1, 2)),
    ]
    g = decode_gif(make_gif(4, 4, frames, PAL))
    assert (g.frames[1] == grid("RRRR", "RGGR", "RGGR", "RRRR")).all()
    assert (g.frames[2] == grid("BRRR", "RRRR", "RRRR", "RRRR")).all()


def test_transparency_keeps_what_is_underneath() -> None:
    top = solid(4, 4, 1)
    top[0, :] = 3
    top[:, 0] = 3
    g = decode_gif(make_gif(4, 4, [RawFrame(solid(4, 4, 0)), RawFrame(top, transparency=3)], PAL))
    assert (g.frames[1] == grid("RRRR", "RGGG", "RGGG", "RGGG")).all()


def test_transparent_pixels_of_the_first_frame_show_background() -> None:
    first = solid(4, 4, 0)
    first[:, 2:] = 3
    frames = [RawFrame(first, transparency=3, disposal=2), RawFrame(solid(1, 1, 2))]
    g = decode_gif(make_gif(4, 4, frames, PAL, background=1))
    assert (g.frames[0] == grid("RRWW", "RRWW", "RRWW", "RRWW")).all()
    assert (g.frames[1] == grid("BWWW", "WWWW", "WWWW", "WWWW")).all()


def test_disposal_2_of_a_transparent_partial_frame() -> None:
    mid = solid(2, 2, 2)
    mid[0, 0] = 3
    frames = [
        RawFrame(solid(4, 4, 0), disposal=1),
        RawFrame(mid, left=1, top=1, transparency=3, disposal=2),
        RawFrame(solid(1, 1, 1), left=3, top=3),
    ]
    g = decode_gif(make_gif(4, 4, frames, PAL))
    assert (g.frames[1] == grid("RRRR", "RRBR", "RBBR", "RRRR")).all()
    # Pillow's own compositing paints this area with the transparent index's colour (K)
    assert (g.frames[2] == grid("RRRR", "RWWR", "RWWR", "RRRG")).all()


def test_local_palettes() -> None:
    frames = [
        RawFrame(solid(4, 4, 0)),
        RawFrame(np.asarray([[0, 1], [1, 0]], dtype=np.uint8), left=2, top=2, palette=[B, G]),
        RawFrame(solid(1, 1, 0), palette=[K, R]),
    ]
    g = decode_gif(make_gif(4, 4, frames, PAL))
    assert (g.frames[1] == grid("RRRR", "RRRR", "RRBG", "RRGB")).all()
    assert (g.frames[2] == grid("KRRR", "RRRR", "RRBG", "RRGB")).all()


def test_partial_first_frame_and_overhanging_frame() -> None:
    frames = [RawFrame(solid(2, 2, 1), left=1, top=1), RawFrame(solid(3, 3, 2), left=3, top=3)]
    g = decode_gif(make_gif(4, 4, frames, PAL))
    assert (g.frames[0] == grid("WWWW", "WGGW", "WGGW", "WWWW")).all()
    assert g.frames.shape == (2, 4, 4, 3)
    assert (g.frames[1] == grid("WWWW", "WGGW", "WGGW", "WWWB")).all()


def test_indices_and_durations() -> None:
    frames = [RawFrame(solid(2, 2, i % 3), delay_cs=d) for i, d in enumerate([0, 5, 1, 20])]
    data = make_gif(2, 2, frames, PAL)
    g = decode_gif(data)
    # browsers play 0 and 10 ms as 100 ms
    assert g.durations_ms.tolist() == [100, 50, 100, 200] and g.durations_ms.dtype == np.int32
    sub = decode_gif(data, indices=[3, 0])
    assert sub.n_frames == 2
    assert (sub.frames[0] == g.frames[3]).all() and (sub.frames[1] == g.frames[0]).all()
    assert sub.durations_ms.tolist() == [200, 100]
    with pytest.raises(IndexError):
        decode_gif(data, indices=[4])


def test_gif_written_by_pillow_with_transparency_and_disposal() -> None:
    a = Image.new("RGBA", (6, 6), (255, 0, 0, 255))
    b = Image.new("RGBA", (6, 6), (0, 0, 0, 0))
    b.paste((0, 0, 255, 255), (2, 2, 4, 4))
    c = Image.new("RGBA", (6, 6), (0, 0, 0, 0))
    c.paste((0, 255, 0, 255), (0, 0, 1, 1))
    buf = io.BytesIO()
    a.save(buf, format="GIF", save_all=True, append_images=[b, c], disposal=[2, 2, 2],
           duration=[50, 60, 70], loop=0)
    g = decode_gif(buf.getvalue())
    assert g.n_frames == 3 and (g.width, g.height) == (6, 6)
    assert (g.frames[0] == R).all()
    assert (g.frames[1][2:4, 2:4] == B).all()
    assert (g.frames[1][0, 0] == W).all() and (g.frames[1][5, 5] == W).all()
    assert (g.frames[2][0, 0] == G).all() and (g.frames[2][2:4, 2:4] == W).all()
    assert g.durations_ms.tolist() == [50, 60, 70]


def test_animated_webp() -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in (R, G, B)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=80,
                   lossless=True)
    data = buf.getvalue()
    assert probe_gif(data, **CAPS) == (8, 6, 3, "webp")
    g = decode_gif(data)
    assert g.n_frames == 3 and g.frames.shape == (3, 6, 8, 3)
    assert (g.frames[1] == G).all() and (g.frames[2] == B).all()
    assert verify_gif(data, **CAPS).n_frames == 3


# --- bad input ------------------------------------------------------------------------


def test_probe_refuses_bombs_cheaply() -> None:
    with pytest.raises(GifDecodeError, match="too large: declares 30000x30000"):
        probe_gif(huge_canvas_gif(), **CAPS)
    with pytest.raises(GifDecodeError, match="too large"):
        decode_gif(huge_canvas_gif(), max_pixels=4096 * 4096)
    many = many_frames_gif(10_000)
    with pytest.raises(GifDecodeError, match="too many frames"):
        probe_gif(many, **CAPS)
    with pytest.raises(GifDecodeError, match="too many frames"):
        decode_gif(many, max_frames=2000)
    # under a cap that allows it, the same file is well formed
    assert probe_gif(many, max_pixels=10, max_frames=10_000) == (1, 1, 10_000, "gif")


def _riff(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _chunk(tag: bytes, body: bytes) -> bytes:
    return tag + len(body).to_bytes(4, "little") + body + b"\0" * (len(body) & 1)


def _vp8l(w: int, h: int) -> bytes:  # a lossless image's header: what the decoder allocates for
    return _chunk(b"VP8L", b"\x2f" + ((w - 1) | (h - 1) << 14).to_bytes(4, "little") + b"\0" * 8)


def _vp8x(w: int, h: int) -> bytes:
    return _chunk(b"VP8X", b"\x02\0\0\0" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little"))


def test_every_size_a_webp_declares_is_held_to_the_cap() -> None:
    """A small canvas placed after a huge image chunk, or a huge image inside an animation
    frame, once passed the probe and cost the decoder 700 MB (QA, 2026-11-30)."""
    with pytest.raises(GifDecodeError, match="too large: declares 10000x10000"):
        probe_gif(_riff(_vp8l(10_000, 10_000), _vp8x(1, 1)), **CAPS)
    frame = (b"\0" * 6 + (7).to_bytes(3, "little") + (5).to_bytes(3, "little") + b"\x50\0\0\0"
             + _vp8l(10_000, 10_000))
    with pytest.raises(GifDecodeError, match="too large: declares 10000x10000"):
        probe_gif(_riff(_vp8x(8, 6), _chunk(b"ANIM", b"\0" * 6), _chunk(b"ANMF", frame)), **CAPS)
    big_frame = b"\0" * 6 + (9_999).to_bytes(3, "little") + (9_999).to_bytes(3, "little") + b"\0" * 4
    with pytest.raises(GifDecodeError, match="too large"):
        probe_gif(_riff(_vp8x(8, 6), _chunk(b"ANMF", big_frame + _vp8l(8, 6))), **CAPS)
    assert probe_gif(_riff(_vp8l(8, 6), _vp8x(8, 6)), **CAPS)[:3] == (8, 6, 1)


def test_truncated_gif() -> None:
    data = good_gif(1, size=32, n=6)
    for cut in (len(data) // 2, len(data) - 3, 20):
        with pytest.raises(GifDecodeError, match="truncated"):
            decode_gif(data[:cut])
    # only the trailer missing: every frame is complete, so it decodes
    assert decode_gif(data[:-1]).n_frames == 6


def test_corrupt_palette() -> None:
    data = bytearray(good_gif(2, size=16, n=3))
    data[10] = (data[10] & ~7) | 7  # the header now claims a 256-colour global palette
    with pytest.raises(GifDecodeError, match=r"corrupt GIF|truncated"):
        probe_gif(bytes(data), **CAPS)


def test_corrupt_pixel_data() -> None:
    data = bytearray(good_gif(3, size=16, n=2))
    # the first frame's LZW data starts after header(13) + palette(12) + loop ext(19) + GCE(8)
    # + descriptor(10) + code size(1) + length(1): fill it with codes the table cannot have
    start = 13 + 12 + 19 + 8 + 10 + 2
    data[start : start + 40] = b"\xff" * 40
    with pytest.raises(GifDecodeError):
        verify_gif(bytes(data), **CAPS)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG"),
        (b"hello, this is not a gif\n", "text"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "JPEG"),
        (b"GIF89a\x00\x00\x00\x00\x00\x00\x00;", "empty 0x0"),
    ],
)
def test_not_a_gif(data: bytes, reason: str) -> None:
    with pytest.raises(GifDecodeError, match=reason):
        decode_gif(data)


def test_decode_from_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "x.gif"
    p.write_bytes(good_gif(5, size=10, n=3))
    assert decode_gif(p).frames.shape == (3, 10, 10, 3)
    assert decode_gif(str(p)).n_frames == 3
    with pytest.raises(GifDecodeError, match="cannot read"):
        decode_gif(tmp_path / "missing.gif")


# --- real GIFs ------------------------------------------------------------------------


@pytest.mark.slow
def test_decodes_every_real_gif(real_gifs) -> None:  # type: ignore[no-untyped-def]
    rows = list(csv.DictReader((real_gifs / "manifest.csv").open()))
    assert rows
    for row in rows:
        data = (real_gifs / row["file"]).read_bytes()
        w, h, n, fmt = probe_gif(data, **CAPS)
        assert (w, h, n, fmt) == (int(row["width"]), int(row["height"]), int(row["frames"]), "gif")
        g = decode_gif(data)
        assert g.frames.shape == (int(row["frames"]), int(row["height"]), int(row["width"]), 3), row["file"]
        # delays of 0-10 ms play as 100 ms, so never shorter than what the file declares
        assert int(g.durations_ms.sum()) >= int(row["duration_ms"]), row["file"]
        sub = decode_gif(data, indices=sample_indices(n, "sparse"))
        assert (sub.frames[-1] == g.frames[sample_indices(n, "sparse")[-1]]).all()
