"""A byte-exact GIF writer for tests: every block is under the test's control.

Pillow's writer optimises frames (crops, merges, re-palettes), so a test that needs *this*
disposal method with *that* partial rectangle and *that* local palette builds the bytes
here. The LZW stream is valid but uncompressed (a clear code before the table grows), which
every decoder must accept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Palette = list[tuple[int, int, int]]


@dataclass
class RawFrame:
    pixels: np.ndarray  # (h, w) palette indices
    left: int = 0
    top: int = 0
    palette: Palette | None = None  # local colour table
    transparency: int | None = None
    disposal: int = 0
    delay_cs: int = 10


def _palette_bytes(palette: Palette) -> tuple[bytes, int]:
    bits = 1
    while (1 << bits) < len(palette):
        bits += 1
    entries = list(palette) + [(0, 0, 0)] * ((1 << bits) - len(palette))
    return b"".join(bytes(c) for c in entries), bits - 1


def lzw_uncompressed(indices: np.ndarray, bits: int) -> bytes:
    """GIF LZW data for these indices, with min code size `bits` + 1 (at least 2)."""
    min_code = max(2, bits + 1)
    clear, end = 1 << min_code, (1 << min_code) + 1
    width = min_code + 1
    # Codes after a clear grow the decoder's table; clear again before it needs width + 1.
    run = (1 << min_code) - 2
    codes = [clear]
    flat = [int(x) for x in np.asarray(indices).reshape(-1)]
    for i, v in enumerate(flat):
        if i and i % run == 0:
            codes.append(clear)
        codes.append(v)
    codes.append(end)
    acc = nbits = 0
    out = bytearray()
    for code in codes:
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    blocks = bytearray([min_code])
    for i in range(0, len(out), 255):
        chunk = out[i : i + 255]
        blocks.append(len(chunk))
        blocks += chunk
    blocks.append(0)
    return bytes(blocks)


def make_gif(
    width: int,
    height: int,
    frames: list[RawFrame],
    palette: Palette | None,
    *,
    background: int = 0,
    trailer: bool = True,
) -> bytes:
    out = bytearray(b"GIF89a")
    out += width.to_bytes(2, "little") + height.to_bytes(2, "little")
    if palette:
        table, size_bits = _palette_bytes(palette)
        out += bytes([0x80 | 0x70 | size_bits, background, 0]) + table
        gbits = size_bits + 1
    else:
        out += bytes([0, background, 0])
        gbits = 1
    # NETSCAPE loop extension, like real animated GIFs
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for fr in frames:
        flags = (fr.disposal & 7) << 2 | (1 if fr.transparency is not None else 0)
        out += bytes([0x21, 0xF9, 4, flags]) + fr.delay_cs.to_bytes(2, "little")
        out += bytes([fr.transparency or 0, 0])
        h, w = fr.pixels.shape
        out += b"\x2c" + fr.left.to_bytes(2, "little") + fr.top.to_bytes(2, "little")
        out += w.to_bytes(2, "little") + h.to_bytes(2, "little")
        if fr.palette:
            table, size_bits = _palette_bytes(fr.palette)
            out += bytes([0x80 | size_bits]) + table
            bits = size_bits + 1
        else:
            out += b"\x00"
            bits = gbits
        out += lzw_uncompressed(fr.pixels, bits - 1 if bits > 1 else 1)
    if trailer:
        out += b"\x3b"
    return bytes(out)


def solid(w: int, h: int, index: int) -> np.ndarray:
    return np.full((h, w), index, dtype=np.uint8)


def many_frames_gif(n: int) -> bytes:
    """A tiny 1x1 GIF with n frames (~25 bytes each): cheap to write, costly if not capped."""
    frame = RawFrame(solid(1, 1, 0), delay_cs=2)
    return make_gif(1, 1, [frame] * n, [(0, 0, 0), (255, 255, 255)])


def huge_canvas_gif(width: int = 30000, height: int = 30000) -> bytes:
    """A GIF that declares a giant canvas (and frame) but carries almost no data."""
    out = bytearray(b"GIF89a")
    out += width.to_bytes(2, "little") + height.to_bytes(2, "little")
    out += bytes([0x80, 0, 0]) + bytes([0, 0, 0, 255, 255, 255])
    out += b"\x2c\x00\x00\x00\x00" + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    out += b"\x00\x02\x02\x4c\x01\x00\x3b"
    return bytes(out)


def good_gif(seed: int, size: int = 16, n: int = 4) -> bytes:
    """A small valid animated GIF, different for every seed."""
    rng = np.random.default_rng(seed)
    pal: Palette = [tuple(int(x) for x in rng.integers(0, 256, 3)) for _ in range(4)]  # type: ignore[misc]
    frames = [RawFrame(rng.integers(0, 4, (size, size)).astype(np.uint8)) for _ in range(n)]
    return make_gif(size, size, frames, pal)
