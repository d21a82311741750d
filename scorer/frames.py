"""GIF bytes -> correctly composited RGB frames, and the paper's frame sampling schemes.

A GIF is replayed the way browsers show it: the canvas starts transparent, each frame
paints its rectangle (partial frames) with its own or the global palette, except where it
uses its transparent index; after a frame is shown, disposal 2 clears its rectangle to
transparent and disposal 3 restores what was under it. Canvas pixels that are transparent
are painted `BACKGROUND`, so every frame is plain RGB with one meaning. Durations follow
browsers too: a declared delay of 10 ms or less plays as 100 ms.

The block structure is walked in Python (no pixel is decoded), which gives three things:
`probe_gif` refuses a decompression bomb (a 30000x30000 canvas, 10,000 frames) before
anything is allocated and names truncation or a corrupt palette/block layout; each frame's
rectangle, palette, transparency and disposal are known exactly; and each frame's LZW data
is handed to Pillow's C decoder on its own, so we composite once, in numpy, instead of
relying on Pillow's compositing (which paints disposed transparent areas with the
transparent index's palette colour). Animated WebP is composited by libwebp via Pillow.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# What a fully transparent canvas pixel becomes: one fixed colour, so features never depend
# on whatever palette entry a GIF happened to mark as transparent.
BACKGROUND = (255, 255, 255)
# Browsers play delays of 0-10 ms at 100 ms (too-fast GIFs were common in the 90s).
FAST_DELAY_MS = 10
DEFAULT_DELAY_MS = 100

SUPPORTED_FORMATS = ("gif", "webp")

# Used when a caller gives no cap: large enough for any sane GIF, small enough that the
# probe still stops a bomb before Pillow allocates it.
_DEFAULT_MAX_PIXELS = 16384 * 16384
_DEFAULT_MAX_FRAMES = 100_000
# Width x height x frames: what decoding the whole file costs. 4096x4096 x 790 frames fits
# every per-dimension cap yet takes minutes and gigabytes; this stops it before decoding.
_DEFAULT_MAX_TOTAL_PIXELS = 4_000_000_000
# One decode_gif call never returns more than this (ask for `indices` instead).
MAX_OUTPUT_BYTES = 4 << 30


class GifDecodeError(ValueError):
    """The bytes are not a usable animated image; the message is one human-readable reason."""


@dataclass
class DecodedGif:
    frames: np.ndarray  # (T, H, W, 3) uint8, composited RGB
    durations_ms: np.ndarray  # (T,) int32, how long each returned frame is shown
    width: int
    height: int

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


# ---------------------------------------------------------------------------------------
# file type from magic bytes


def sniff_format(head: bytes) -> str:
    """The real type of a file from its first bytes: 'gif', 'webp', or a word for what it is."""
    if not head:
        return "empty"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"%PDF":
        return "pdf"
    if head[:2] == b"PK":
        return "zip"
    sample = head[:512]
    if sample.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "html"
    # A list saved by Excel starts with a BOM, a cut at byte 512 may split a character, and
    # a no-break space is text too: none of them makes a URL list "not text".
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(sample.removeprefix(codecs.BOM_UTF8), final=False)
    except UnicodeDecodeError:
        return "unknown"
    if all(ch.isprintable() or ch.isspace() for ch in text):
        return "text"
    return "unknown"


def describe_format(kind: str) -> str:
    """A refusal reason for a file whose sniffed type is not supported."""
    if kind == "empty":
        return "empty file (0 bytes)"
    if kind == "unknown":
        return "not a GIF: unrecognised file type"
    if kind in ("text", "html"):
        return f"not a GIF: the file is {kind}"
    return f"not a GIF: the file is a {kind.upper()} image" if kind in (
        "png", "jpeg", "bmp", "tiff"
    ) else f"not a GIF: the file is {kind.upper()}"


# ---------------------------------------------------------------------------------------
# probe: dimensions and frame count from the block structure alone


def probe_gif(data: bytes, *, max_pixels: int, max_frames: int,
              max_total_pixels: int | None = None) -> tuple[int, int, int, str]:
    """(width, height, n_frames, format) read without decoding any pixels.

    Raises GifDecodeError for anything that is not a well-formed GIF or WebP within the
    caps; the caps are checked while walking, so a bomb costs microseconds.
    """
    kind = sniff_format(data[:512])
    total = max_total_pixels or _DEFAULT_MAX_TOTAL_PIXELS
    if kind == "gif":
        layout = _walk_gif(data, max_pixels, max_frames, total)
        w, h, n = layout.width, layout.height, len(layout.frames)
    elif kind == "webp":
        w, h, n = _probe_webp_chunks(data, max_pixels, max_frames)
        _check_total(w, h, n, total)
    else:
        raise GifDecodeError(describe_format(kind))
    return w, h, n, kind


def _check_canvas(w: int, h: int, max_pixels: int) -> None:
    if w <= 0 or h <= 0:
        raise GifDecodeError(f"declares an empty {w}x{h} canvas")
    if w * h > max_pixels:
        raise GifDecodeError(
            f"too large: declares {w}x{h} = {w * h:,} pixels (cap {max_pixels:,})"
        )


def _check_total(w: int, h: int, n: int, max_total: int, drawn: int = 0) -> None:
    """Decoded pixels of the whole file (canvas x frames, and the frames' own rectangles)."""
    total = max(w * h * n, drawn)
    if total > max_total:
        raise GifDecodeError(
            f"too large to decode: {n:,}+ frames of {w}x{h} = {total:,} decoded pixels "
            f"(cap {max_total:,}, MOODGIF_MAX_GIF_TOTAL_PIXELS)"
        )


def _too_many_frames(max_frames: int) -> GifDecodeError:
    return GifDecodeError(f"too many frames: more than the cap of {max_frames:,}")


@dataclass
class _GifFrame:
    """Where one frame's pieces lie in the file, and how it is drawn."""

    left: int
    top: int
    width: int
    height: int
    interlaced: bool
    palette: tuple[int, int] | None  # (offset, length) of its local colour table
    transparency: int | None
    disposal: int
    delay_cs: int
    data: tuple[int, int]  # (offset, end) of LZW min code size + sub-blocks + terminator


@dataclass
class _GifLayout:
    width: int
    height: int
    palette: tuple[int, int] | None  # global colour table
    frames: list[_GifFrame]


def _skip_sub_blocks(data: bytes, p: int, frame_no: int) -> int:
    # Data sub-blocks: a length byte then that many bytes, ended by a zero length.
    size = len(data)
    while True:
        if p >= size:
            raise GifDecodeError(f"truncated GIF: the data ends inside frame {frame_no}")
        n = data[p]
        p += 1 + n
        if n == 0:
            return p


def _read_gif_header(data: bytes, max_pixels: int) -> tuple[int, int, tuple[int, int] | None, int]:
    """Return (width, height, global palette span, offset of the first block).

    The canvas is checked against the cap here, before any frame is looked at."""
    size = len(data)
    if size < 13:
        raise GifDecodeError("truncated GIF: the header is incomplete")
    w = int.from_bytes(data[6:8], "little")
    h = int.from_bytes(data[8:10], "little")
    _check_canvas(w, h, max_pixels)
    packed = data[10]
    pos = 13
    global_palette = None
    if packed & 0x80:
        length = 3 << ((packed & 7) + 1)
        global_palette = (pos, length)
        pos += length
        if pos > size:
            raise GifDecodeError("truncated GIF: the global palette is incomplete")
    return w, h, global_palette, pos


@dataclass
class _ImageBlock:
    left: int
    top: int
    width: int
    height: int
    interlaced: bool
    local: tuple[int, int] | None  # local colour table
    span: tuple[int, int]  # LZW code size byte .. end of its sub-blocks
    end: int  # offset of the next block


def _read_image_block(data: bytes, pos: int, frame_no: int, max_pixels: int) -> _ImageBlock:
    """Parse the image descriptor at `pos` (frame number `frame_no`, 1-based).

    The frame's declared size is capped before its data is walked, so a huge frame is
    refused without reading it."""
    size = len(data)
    if pos + 10 > size:
        raise GifDecodeError(f"truncated GIF: the data ends inside frame {frame_no}")
    left = int.from_bytes(data[pos + 1 : pos + 3], "little")
    top = int.from_bytes(data[pos + 3 : pos + 5], "little")
    fw = int.from_bytes(data[pos + 5 : pos + 7], "little")
    fh = int.from_bytes(data[pos + 7 : pos + 9], "little")
    if fw * fh > max_pixels:
        raise GifDecodeError(
            f"too large: frame {frame_no} declares {fw}x{fh} pixels "
            f"(cap {max_pixels:,})"
        )
    fpacked = data[pos + 9]
    pos += 10
    local = None
    if fpacked & 0x80:
        length = 3 << ((fpacked & 7) + 1)
        local = (pos, length)
        pos += length
    if pos >= size:
        raise GifDecodeError(f"truncated GIF: the data ends inside frame {frame_no}")
    min_code = data[pos]
    if not 1 <= min_code <= 11:
        raise GifDecodeError(
            f"corrupt GIF: frame {frame_no} has an invalid LZW code size {min_code}"
        )
    start = pos
    pos = _skip_sub_blocks(data, pos + 1, frame_no)
    return _ImageBlock(left, top, fw, fh, bool(fpacked & 0x40), local, (start, pos), pos)


def _walk_gif(data: bytes, max_pixels: int, max_frames: int,
              max_total: int = _DEFAULT_MAX_TOTAL_PIXELS) -> _GifLayout:
    size = len(data)
    w, h, global_palette, pos = _read_gif_header(data, max_pixels)
    frames: list[_GifFrame] = []
    drawn = 0  # sum of the frames' own rectangles: what verify_gif decodes
    # Graphic control extension values apply to the next image only.
    transparency: int | None = None
    disposal = 0
    delay = 0

    while pos < size:
        marker = data[pos]
        if marker == 0x3B:  # trailer
            break
        if marker == 0x21:  # extension: label, then sub-blocks
            if pos + 2 > size:
                raise GifDecodeError(f"truncated GIF: the data ends inside frame {len(frames) + 1}")
            if data[pos + 1] == 0xF9 and pos + 8 <= size and data[pos + 2] >= 4:
                flags = data[pos + 3]
                delay = int.from_bytes(data[pos + 4 : pos + 6], "little")
                transparency = data[pos + 6] if flags & 1 else None
                disposal = (flags >> 2) & 7
            pos = _skip_sub_blocks(data, pos + 2, len(frames) + 1)
            continue
        if marker == 0x2C:  # image descriptor
            img = _read_image_block(data, pos, len(frames) + 1, max_pixels)
            pos = img.end
            if len(frames) >= max_frames:
                raise _too_many_frames(max_frames)
            drawn += img.width * img.height
            _check_total(w, h, len(frames) + 1, max_total, drawn)
            frames.append(
                _GifFrame(
                    img.left, img.top, img.width, img.height, img.interlaced, img.local,
                    transparency, disposal, delay, img.span,
                )
            )
            transparency, disposal, delay = None, 0, 0
            continue
        raise GifDecodeError(
            f"corrupt GIF: unexpected byte 0x{marker:02x} at offset {pos} "
            "(bad palette size or block structure)"
        )
    # A missing trailer after a complete frame is common and harmless; no frame is not.
    if not frames:
        raise GifDecodeError("no frames: the GIF contains no image")
    return _GifLayout(w, h, global_palette, frames)


def _probe_webp_chunks(data: bytes, max_pixels: int, max_frames: int) -> tuple[int, int, int]:
    """Canvas and frame count from the chunks. Every size a chunk declares is held to the cap,
    not only the first: the decoder trusts each image's own bitstream, so a small VP8X canvas
    placed after a 10,000² VP8L must not pass (nor one inside an animation frame)."""
    size = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    w = h = frames = 0
    still = False
    for tag, body in _webp_chunks(data, 12, size):
        if tag == b"VP8X" and len(body) >= 10:
            w = 1 + int.from_bytes(body[4:7], "little")
            h = 1 + int.from_bytes(body[7:10], "little")
            _check_canvas(w, h, max_pixels)
        elif tag == b"ANMF":
            frames += 1
            if frames > max_frames:
                raise _too_many_frames(max_frames)
            if len(body) >= 16:  # the frame's own size, then its image's
                _check_canvas(1 + int.from_bytes(body[6:9], "little"),
                              1 + int.from_bytes(body[9:12], "little"), max_pixels)
                for sub_tag, sub_body in _webp_chunks(body, 16, len(body)):
                    if (dims := _bitstream_size(sub_tag, sub_body)) is not None:
                        _check_canvas(*dims, max_pixels)
        elif (dims := _bitstream_size(tag, body)) is not None:
            _check_canvas(*dims, max_pixels)
            if not w:
                w, h = dims
            still = True
    if still and frames == 0:
        frames = 1
    _check_canvas(w, h, max_pixels)
    if frames == 0:
        raise GifDecodeError("no frames: the WebP contains no image")
    return w, h, frames


def _webp_chunks(data: bytes, pos: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    """(tag, body) of each RIFF chunk in data[pos:end]; a chunk cut short is an error."""
    while pos + 8 <= end:
        tag = data[pos : pos + 4]
        n = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + n]
        if len(body) < n or pos + 8 + n > end:
            raise GifDecodeError("truncated WebP: a chunk ends past the end of the file")
        yield tag, body
        pos += 8 + n + (n & 1)


def _bitstream_size(tag: bytes, body: bytes) -> tuple[int, int] | None:
    """The width and height a lossy (VP8) or lossless (VP8L) image declares, else None."""
    if tag == b"VP8 " and len(body) >= 10:
        return (int.from_bytes(body[6:8], "little") & 0x3FFF,
                int.from_bytes(body[8:10], "little") & 0x3FFF)
    if tag == b"VP8L" and len(body) >= 5:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# ---------------------------------------------------------------------------------------
# decode


def _read(src: bytes | str | Path) -> bytes:
    if isinstance(src, bytes | bytearray | memoryview):
        return bytes(src)
    try:
        return Path(src).read_bytes()
    except OSError as exc:
        raise GifDecodeError(f"cannot read {src}: {exc.strerror or exc}") from None


def _palette256(data: bytes, where: tuple[int, int] | None) -> np.ndarray:
    """A colour table as (256, 3) uint8; missing entries are black, no table is grey."""
    if where is None:
        return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    offset, length = where
    table = np.zeros((256, 3), dtype=np.uint8)
    entries = np.frombuffer(data, dtype=np.uint8, count=length, offset=offset).reshape(-1, 3)
    table[: len(entries)] = entries
    return table


def _frame_indices(data: bytes, fr: _GifFrame, number: int) -> np.ndarray:
    """The palette indices of one frame's rectangle, (h, w) uint8.

    The frame's LZW data is wrapped in a minimal one-frame GIF with no colour table, so
    Pillow's C decoder returns the raw indices (mode L) and nothing is composited twice.
    (Calling Pillow's decoder object directly was measured: no faster.)
    """
    start, end = fr.data
    mini = b"".join(
        (
            b"GIF89a",
            fr.width.to_bytes(2, "little"),
            fr.height.to_bytes(2, "little"),
            b"\x00\x00\x00\x2c\x00\x00\x00\x00",
            fr.width.to_bytes(2, "little"),
            fr.height.to_bytes(2, "little"),
            b"\x40" if fr.interlaced else b"\x00",
            data[start:end],
            b"\x3b",
        )
    )
    try:
        with Image.open(io.BytesIO(mini)) as im:
            im.load()
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise GifDecodeError(f"corrupt image data in frame {number}: {exc}") from None


def _delay_ms(delay_cs: int) -> int:
    ms = delay_cs * 10
    return DEFAULT_DELAY_MS if ms <= FAST_DELAY_MS else ms


def _packed(table: np.ndarray) -> np.ndarray:
    """(256, 3) uint8 colours -> (256,) little-endian uint32 R | G << 8 | B << 16."""
    t = table.astype(np.uint32)
    return (t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)).astype("<u4")


def _composite_gif(
    data: bytes, layout: _GifLayout, order: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Replay the GIF the way browsers do and snapshot the frames in `order`.

    The canvas starts transparent; each frame paints its rectangle except where it uses
    its transparent index; after it is shown, disposal 2 clears its rectangle back to
    transparent and disposal 3 restores what was under it. A transparent canvas pixel is
    shown as BACKGROUND, so the canvas simply holds BACKGROUND there. Pixels are packed
    into one uint32 each, so painting is one gather and one masked copy per frame.
    """
    W, H = layout.width, layout.height
    bg = int(BACKGROUND[0] | (BACKGROUND[1] << 8) | (BACKGROUND[2] << 16))
    canvas = np.full((H, W), bg, dtype="<u4")
    global_pal = _packed(_palette256(data, layout.palette))
    slots: dict[int, list[int]] = {}
    for pos, i in enumerate(order):
        slots.setdefault(i, []).append(pos)
    out = np.empty((len(order), H, W, 3), dtype=np.uint8)
    durations = np.zeros(len(order), dtype=np.int32)
    rgb_view = canvas.view(np.uint8).reshape(H, W, 4)[..., :3]
    for i, fr in enumerate(layout.frames[: max(order) + 1]):
        # The visible part of the frame: rectangles may overhang the canvas.
        x0, y0 = min(fr.left, W), min(fr.top, H)
        x1, y1 = min(fr.left + fr.width, W), min(fr.top + fr.height, H)
        region = canvas[y0:y1, x0:x1]
        saved = region.copy() if fr.disposal == 3 else None
        if x1 > x0 and y1 > y0:
            idx = _frame_indices(data, fr, i + 1)[: y1 - y0, : x1 - x0]
            pal = _packed(_palette256(data, fr.palette)) if fr.palette else global_pal
            colours = pal[idx]
            if fr.transparency is None:
                region[...] = colours
            else:
                np.copyto(region, colours, where=idx != fr.transparency)
        elif fr.width and fr.height:
            # Entirely off-canvas: still decode it, so corrupt data is caught.
            _frame_indices(data, fr, i + 1)
        for pos in slots.get(i, ()):
            out[pos] = rgb_view
            durations[pos] = _delay_ms(fr.delay_cs)
        if fr.disposal == 2:
            region[...] = bg
        elif saved is not None:
            region[...] = saved
    return out, durations


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Pillow's current (already composited) canvas as (H, W, 3), alpha over BACKGROUND."""
    if im.mode == "RGB":
        return np.asarray(im)
    rgba = np.asarray(im.convert("RGBA"))
    alpha = rgba[..., 3:4]
    rgb = rgba[..., :3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)
    bg = np.asarray(BACKGROUND, dtype=np.uint16)
    out = (rgb.astype(np.uint16) * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _composite_pillow(
    data: bytes, keep: set[int] | None, last: int
) -> tuple[dict[int, np.ndarray], dict[int, int], int, int]:
    """Animated WebP: libwebp's own compositing through Pillow."""
    out: dict[int, np.ndarray] = {}
    durations: dict[int, int] = {}
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            for i in range(last + 1):
                try:
                    im.seek(i)
                except EOFError:
                    break
                if keep is None or i in keep:
                    out[i] = _to_rgb(im)
                    d = int(im.info.get("duration") or 0)
                    durations[i] = DEFAULT_DELAY_MS if d <= FAST_DELAY_MS else d
    except Image.DecompressionBombError:
        raise GifDecodeError("too large for the decoder") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise GifDecodeError(f"corrupt image data: {exc}") from None
    return out, durations, width, height


def decode_gif(
    src: bytes | str | Path,
    *,
    max_frames: int | None = None,
    max_pixels: int | None = None,
    indices: Sequence[int] | None = None,
    max_total_pixels: int | None = None,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> DecodedGif:
    """Decode a GIF (or animated WebP) into composited RGB frames and their durations.

    `indices` keeps only those frames, in the order given; every frame up to the last one
    asked for is still decoded, because each frame is drawn on top of the ones before it.
    Raises GifDecodeError for a file that cannot be used, IndexError for a bad index.
    """
    data = _read(src)
    max_pixels = max_pixels or _DEFAULT_MAX_PIXELS
    max_frames = max_frames or _DEFAULT_MAX_FRAMES
    total = max_total_pixels or _DEFAULT_MAX_TOTAL_PIXELS
    layout, width, height, n_total = _probe_for_decode(data, max_pixels, max_frames, total)
    order = _frame_order(indices, n_total)
    _check_output_size(len(order), width, height, max_output_bytes)
    if layout is not None:
        return _decode_gif_frames(data, layout, order)
    return _decode_webp_frames(data, order, n_total)


def _probe_for_decode(
    data: bytes, max_pixels: int, max_frames: int, max_total: int
) -> tuple[_GifLayout | None, int, int, int]:
    """(GIF layout, or None for WebP; width; height; frame count), within the caps."""
    if sniff_format(data[:512]) == "gif":
        layout = _walk_gif(data, max_pixels, max_frames, max_total)
        return layout, layout.width, layout.height, len(layout.frames)
    width, height, n_total, _ = probe_gif(data, max_pixels=max_pixels, max_frames=max_frames,
                                          max_total_pixels=max_total)
    return None, width, height, n_total


def _frame_order(indices: Sequence[int] | None, n_total: int) -> list[int]:
    """The frames to return, in order: all of them, or the checked `indices`."""
    if indices is None:
        order = list(range(n_total))
    else:
        order = [int(i) for i in indices]
        for i in order:
            if not 0 <= i < n_total:
                raise IndexError(f"frame index {i} out of range for {n_total} frames")
    if not order:
        raise IndexError("no frame indices asked for")
    return order


def _check_output_size(n_frames: int, width: int, height: int, max_output_bytes: int) -> None:
    if n_frames * width * height * 3 > max_output_bytes:
        raise GifDecodeError(
            f"too large to return at once: {n_frames} frames of {width}x{height} "
            f"(more than {max_output_bytes:,} bytes); ask for fewer frames"
        )


def _decode_gif_frames(data: bytes, layout: _GifLayout, order: list[int]) -> DecodedGif:
    """GIF: composited here, in numpy (see the module doc)."""
    width, height = layout.width, layout.height
    try:
        frames, durations = _composite_gif(data, layout, order)
    except MemoryError:
        raise GifDecodeError(f"too large to decode: {width}x{height}") from None
    return DecodedGif(frames=frames, durations_ms=durations, width=width, height=height)


def _decode_webp_frames(data: bytes, order: list[int], n_total: int) -> DecodedGif:
    """Animated WebP: composited by libwebp through Pillow."""
    by_index, by_index_ms, width, height = _composite_pillow(data, set(order), max(order))
    missing = [i for i in order if i not in by_index]
    if missing:
        raise GifDecodeError(
            f"truncated image: frame {missing[0] + 1} of {n_total} could not be decoded"
        )
    return DecodedGif(
        frames=np.stack([by_index[i] for i in order]),
        durations_ms=np.asarray([by_index_ms[i] for i in order], dtype=np.int32),
        width=width,
        height=height,
    )


@dataclass
class GifInfo:
    """What ingest records about a file that passed validation."""

    width: int
    height: int
    n_frames: int
    format: str
    duration_ms: int


def verify_gif(data: bytes, *, max_pixels: int, max_frames: int,
               max_total_pixels: int | None = None) -> GifInfo:
    """Check that every frame decodes (no compositing): the cheapest complete check.

    Catches what the block walk cannot see (corrupt LZW data); raises GifDecodeError.
    """
    kind = sniff_format(data[:512])
    total = max_total_pixels or _DEFAULT_MAX_TOTAL_PIXELS
    if kind == "gif":
        layout = _walk_gif(data, max_pixels, max_frames, total)
        for i, fr in enumerate(layout.frames):
            if fr.width and fr.height:
                _frame_indices(data, fr, i + 1)
        total = sum(_delay_ms(fr.delay_cs) for fr in layout.frames)
        return GifInfo(layout.width, layout.height, len(layout.frames), kind, total)
    width, height, n, kind = probe_gif(data, max_pixels=max_pixels, max_frames=max_frames,
                                       max_total_pixels=total)
    frames, durations, width, height = _composite_pillow(data, None, n - 1)
    if len(frames) < n:
        raise GifDecodeError(f"truncated image: only {len(frames)} of {n} frames could be decoded")
    return GifInfo(width, height, n, kind, int(sum(durations.values())))


# ---------------------------------------------------------------------------------------
# sampling


def sample_indices(n_frames: int, scheme: str) -> np.ndarray:
    """Frame indices of the paper's sampling schemes.

    sparse: first, middle and last frame for GIFs under 30 frames; 1 in 10 otherwise
            (frames 0, 10, 20, ...).
    dense:  every frame up to 10 frames; every other frame for 11 to 50 frames; 25 frames
            evenly spaced (first and last included) for longer GIFs.
    """
    n = int(n_frames)
    if n < 1:
        raise ValueError(f"a GIF has at least one frame, not {n_frames}")
    if scheme == "sparse":
        idx = np.unique(np.asarray([0, n // 2, n - 1])) if n < 30 else np.arange(0, n, 10)
    elif scheme == "dense":
        if n <= 10:
            idx = np.arange(n)
        elif n <= 50:
            idx = np.arange(0, n, 2)
        else:
            idx = np.unique(np.round(np.linspace(0, n - 1, 25)).astype(np.int64))
    else:
        raise ValueError(f"unknown sampling scheme {scheme!r}; expected 'sparse' or 'dense'")
    return idx.astype(np.int64)
