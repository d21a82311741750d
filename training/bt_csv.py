"""Reader for the GIFGIF comparison dump (``metric,left,right,choice``), fast and forgiving.

The real dump has 2.7M rows. It is parsed by Apache Arrow's multithreaded CSV reader
(pyarrow, C++) straight into dictionary-encoded columns: only the few thousand distinct
values of each column go through Python (stripped, validated, mapped to codes), and every
row is then one integer lookup in numpy. Quoting follows the CSV standard (a quoted field may
hold a comma), lines may end in LF or CRLF, blank lines are not rows, a UTF-8 BOM is skipped.

Bad input never stops the read: every data row is either kept or counted under one reason,
checked in this order:

* ``malformed``: not exactly 4 fields, a field over 256 bytes, or an id that is not UTF-8;
* ``unknown_emotion``: ``metric`` is not one of the 17 axes (names are case-insensitive);
* ``empty_id``: ``left`` or ``right`` is empty (the dump has such rows);
* ``same_gif``: ``left`` and ``right`` are the same GIF.

``choice`` is ``left`` or ``right`` (case-insensitive) for a decisive answer; anything else
is "neither". A first line naming the four columns (in any order) is the header; without it
the columns are taken in the order above. Files ending in ``.gz`` are read through gzip.
A quoted field may not hold a line break: such a line splits into rows of the wrong width
(malformed). A file Arrow cannot parse at all (e.g. a quote left open at the very end) is
read line by line with the csv module under the same rules, so it still never raises.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorer.emotions import INDEX, N_EMOTIONS

COLUMNS = ("metric", "left", "right", "choice")
SKIP_REASONS = ("malformed", "unknown_emotion", "empty_id", "same_gif")
LEFT, RIGHT, NEITHER = 0, 1, 2
MAX_FIELD = 256
_BLOCK = 8 << 20  # Arrow block: big enough for few chunks, small enough for both cores
_EMPTY, _BAD = -1, -2
_TOO_LONG = -3  # per-value marker before the row masks are built


@dataclass
class GifgifData:
    """Kept comparisons, one entry per row, plus what was skipped and why."""

    gif_ids: list[str]
    emotion: np.ndarray  # int8, index into scorer.emotions.NAMES
    left: np.ndarray  # int32, index into gif_ids
    right: np.ndarray
    choice: np.ndarray  # int8: LEFT, RIGHT or NEITHER
    rows: int = 0  # data rows seen (header and blank lines excluded)
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    unknown_emotions: dict[str, int] = field(default_factory=dict)
    _by_choice: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_gifs(self) -> int:
        return len(self.gif_ids)

    @property
    def kept(self) -> int:
        return len(self.emotion)

    def comparisons(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(emotion, winners, losers, ties_mask) for ``bradley_terry.fit_all``."""
        right_won = self.choice == RIGHT
        winners = np.where(right_won, self.right, self.left)
        losers = np.where(right_won, self.left, self.right)
        return self.emotion, winners, losers, self.choice == NEITHER

    def per_emotion(self, decisive: bool = True) -> np.ndarray:
        """Comparisons per emotion (decisive only, or "neither" answers only)."""
        if self._by_choice is None:  # one pass for both questions
            key = self.emotion.astype(np.intp) * 3 + self.choice
            self._by_choice = np.bincount(key, minlength=3 * N_EMOTIONS).reshape(N_EMOTIONS, 3)
        by = self._by_choice
        return by[:, LEFT] + by[:, RIGHT] if decisive else by[:, NEITHER].copy()


# --- the meaning of one raw value (applied to distinct values only) --------------------------


class _Vocab:
    """Maps raw byte strings to codes; GIF codes are shared by both id columns."""

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}
        self.names: list[str] = []

    def gif(self, raw: bytes) -> int:
        if len(raw) > MAX_FIELD:
            return _TOO_LONG
        key = raw.strip()
        if not key:
            return _EMPTY
        code = self.ids.get(key)
        if code is None:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                return _BAD
            code = self.ids[key] = len(self.names)
            self.names.append(name)
        return code

    @staticmethod
    def emotion(raw: bytes) -> int:
        if len(raw) > MAX_FIELD:
            return _TOO_LONG
        return INDEX.get(raw.strip().decode("utf-8", "replace").lower(), -1)

    @staticmethod
    def choice(raw: bytes) -> int:
        if len(raw) > MAX_FIELD:
            return _TOO_LONG
        key = raw.strip().lower()
        return LEFT if key == b"left" else RIGHT if key == b"right" else NEITHER


def _header_order(line: bytes) -> list[int] | None:
    """The column order named by a header line, or None if the line is data."""
    names = [f.strip().strip('"').lower() for f in line.decode("utf-8", "replace").split(",")]
    if sorted(names) == sorted(COLUMNS):
        return [names.index(c) for c in COLUMNS]
    return None


def _first_line(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        line = fh.readline(1 << 16)
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    return line.rstrip(b"\n").removesuffix(b"\r")


# --- rows to kept comparisons -----------------------------------------------------------------


class _Rows:
    """Collects coded rows, applies the skip rules in their order and counts the reasons."""

    def __init__(self) -> None:
        self.vocab = _Vocab()
        self.rows = 0
        self.skipped = dict.fromkeys(SKIP_REASONS, 0)
        self.unknown: Counter[str] = Counter()
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.dropped_rows = False  # whether keep() ever skipped a row

    def keep(self, emo, left, right, choice, metric_names=None, metric_codes=None,
             clean_codes: bool = False) -> None:
        """Codes per row (``_TOO_LONG``/``_BAD``/``_EMPTY``/-1 marking the bad ones).

        ``clean_codes``: the caller knows no code is negative (every distinct value was
        good), so only ``left == right`` is left to check row by row.
        """
        if clean_codes:
            suspect = left == right
        else:
            suspect = (emo < 0) | (left < 0) | (right < 0) | (choice < 0) | (left == right)
        if not suspect.any():  # the usual case: 1 to 5 passes instead of ~20
            self._append(emo, left, right, choice)
            return
        if suspect.mean() < 0.5:  # the rules below only on the suspect rows
            good = ~suspect
            self._append(emo[good], left[good], right[good], choice[good])
            rows = np.flatnonzero(suspect)
            emo, left, right, choice = emo[rows], left[rows], right[rows], choice[rows]
            if metric_codes is not None:
                metric_codes = metric_codes[rows]
        ok = self._count_skipped(emo, left, right, choice, metric_names, metric_codes)
        self.dropped_rows = True
        self._append(emo[ok], left[ok], right[ok], choice[ok])

    def _append(self, emo, left, right, choice) -> None:  # type: ignore[no-untyped-def]
        self.parts.append((emo.astype(np.int8, copy=False), left.astype(np.int32, copy=False),
                           right.astype(np.int32, copy=False), choice.astype(np.int8, copy=False)))

    def _count_skipped(self, emo, left, right, choice, metric_names, metric_codes) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Count each bad row under its first reason; the mask of the good ones."""
        too_long = (emo == _TOO_LONG) | (left == _TOO_LONG) | (right == _TOO_LONG) | (
            choice == _TOO_LONG)
        self.skipped["malformed"] += int(too_long.sum())
        unknown_any = ~too_long & (emo < 0)
        if unknown_any.any() and metric_names is not None:
            # Unknown names are counted for every row of the right width and field sizes,
            # whatever else is wrong with it.
            for name, c in zip(metric_names, np.bincount(metric_codes[unknown_any],
                                                         minlength=len(metric_names)),
                               strict=True):
                if c:
                    self.unknown[name] += int(c)
        bad = ~too_long & ((left == _BAD) | (right == _BAD))
        unknown = ~too_long & ~bad & (emo < 0)
        empty = ~too_long & ~bad & ~unknown & ((left == _EMPTY) | (right == _EMPTY))
        same = ~too_long & ~bad & ~unknown & ~empty & (left == right)
        self.skipped["malformed"] += int(bad.sum())
        self.skipped["unknown_emotion"] += int(unknown.sum())
        self.skipped["empty_id"] += int(empty.sum())
        self.skipped["same_gif"] += int(same.sum())
        return ~(too_long | bad | unknown | empty | same)

    def result(self) -> GifgifData:
        if len(self.parts) == 1:
            emo, left, right, choice = self.parts[0]
        elif self.parts:
            emo, left, right, choice = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        else:
            emo, choice = np.zeros(0, np.int8), np.zeros(0, np.int8)
            left, right = np.zeros(0, np.int32), np.zeros(0, np.int32)
        # Only GIFs of kept rows count (an id seen only in skipped rows is no GIF of the fit).
        # Arrow's dictionaries hold only values of some row, so with no row skipped every
        # id is used.
        if not self.dropped_rows and not self.skipped["malformed"]:
            return GifgifData(list(self.vocab.names), emo, left, right, choice, self.rows,
                              dict(self.skipped), dict(self.unknown.most_common()))
        used = np.zeros(len(self.vocab.names), bool)
        used[left] = True
        used[right] = True
        names = [name for name, u in zip(self.vocab.names, used, strict=True) if u]
        if len(names) < len(used):
            new_index = (np.cumsum(used) - 1).astype(np.int32)
            left, right = new_index[left], new_index[right]
        return GifgifData(names, emo, left, right, choice, self.rows, dict(self.skipped),
                          dict(self.unknown.most_common()))


def _indices(chunk) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A dictionary chunk's int32 codes as a numpy view of Arrow's buffer. (Arrow's own
    ``to_numpy`` imports pandas: 0.3 s of a 1 s read.) The columns have no nulls."""
    ind = chunk.indices
    if ind.null_count:
        raise ValueError("unexpected null in a CSV column")
    return np.frombuffer(ind.buffers()[1], dtype=np.int32, count=len(ind), offset=ind.offset * 4)


class _LineByLine(Exception):
    """The file needs the line-by-line reader."""


@contextlib.contextmanager
def _quiet_undecodable_rows(handler: Callable[..., str]) -> Iterator[None]:
    """Arrow decodes a malformed row as UTF-8 before it calls `handler`; a row that is not
    UTF-8 makes that decoding fail inside Arrow, which prints it as an "exception ignored in
    <handler>" and then fails the read (ArrowInvalid), so the caller reads the file line by
    line, as it should. Only that report is silenced; any other one goes through."""
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        if not (isinstance(info.exc_value, UnicodeDecodeError) and info.object is handler):
            previous(info)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _read_arrow(path: Path, order: list[int], skip_header: bool, block_size: int,
                out: _Rows) -> None:
    table, wrong_width = _arrow_table(path, skip_header, block_size)
    out.rows += table.num_rows + wrong_width
    out.skipped["malformed"] += wrong_width
    if table.num_rows == 0:
        return
    metric, left, right, choice = (table.column(f"c{p}") for p in order)
    v = out.vocab
    emo, metric_values, metric_idx, clean_m = _dictionary_codes(metric, v.emotion, np.int8)
    lcodes, _, _, clean_l = _dictionary_codes(left, v.gif, np.int32)
    rcodes, _, _, clean_r = _dictionary_codes(right, v.gif, np.int32)
    ccodes, _, _, clean_c = _dictionary_codes(choice, v.choice, np.int8)
    metric_names = [x.strip().decode("utf-8", "replace") for x in metric_values]
    out.keep(emo, lcodes, rcodes, ccodes, metric_names, metric_idx,
             clean_codes=clean_m and clean_l and clean_r and clean_c)


def _arrow_table(path: Path, skip_header: bool, block_size: int) -> tuple[Any, int]:
    """The file as four dictionary-encoded columns c0..c3, and how many rows had another
    number of fields (skipped). Raises `_LineByLine` when a quote ran over a line end."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(4)]
    wrong_width = [0]
    multiline = [False]

    def bad_row(row) -> str:  # called by Arrow for a row without exactly 4 fields
        wrong_width[0] += 1
        if "\n" in row.text or "\r" in row.text:
            multiline[0] = True  # a quote left open ran over a line end
        return "skip"

    # A memory map spares copying the file into fresh buffers (measured: half the CPU time
    # of the read in a new process); gzip goes through Arrow's decompressing stream.
    source = path if path.suffix == ".gz" else pa.memory_map(str(path))
    with _quiet_undecodable_rows(bad_row):
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(skip_header),
                                           block_size=max(int(block_size), 1 << 16)),
            parse_options=pacsv.ParseOptions(invalid_row_handler=bad_row),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.dictionary(pa.int32(), pa.binary())),
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        ).unify_dictionaries()
    if multiline[0]:
        # Arrow joined lines inside an open quote; a row is one line here (see the docstring).
        raise _LineByLine
    return table, wrong_width[0]


def _dictionary_codes(col: Any, f: Callable[[bytes], int], dtype: Any
                      ) -> tuple[np.ndarray, list[bytes], np.ndarray, bool]:
    """Per-row codes of a dictionary column (one gather from the codes of its distinct
    values), the values, Arrow's per-row indices, and whether every value had a code."""
    values = col.chunk(0).dictionary.to_pylist()
    lookup = np.array([f(x) for x in values] or [0], dtype)
    chunks = [_indices(c) for c in col.chunks]
    idx = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return lookup[idx], values, idx, bool(lookup.min() >= 0)


def _read_lines(path: Path, order: list[int], skip_header: bool, out: _Rows) -> None:
    """The same rules with the csv module, one line at a time (for files Arrow rejects)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if skip_header:
        lines = lines[1:]
    v = out.vocab
    for raw in lines:
        line = raw.removesuffix(b"\r")
        if not line:
            continue
        out.rows += 1
        try:
            row = next(csv.reader([line.decode("utf-8", "surrogateescape")]))
        except (csv.Error, StopIteration):
            out.skipped["malformed"] += 1
            continue
        if len(row) != 4:
            out.skipped["malformed"] += 1
            continue
        m, lft, rgt, ch = (row[p].encode("utf-8", "surrogateescape") for p in order)
        emo = v.emotion(m)
        if emo == -1 and max(map(len, (m, lft, rgt, ch))) <= MAX_FIELD:
            out.unknown[m.strip().decode("utf-8", "replace")] += 1
        out.keep(np.array([emo]), np.array([v.gif(lft)]), np.array([v.gif(rgt)]),
                 np.array([v.choice(ch)]))


def read_gifgif_csv(path: str | Path, block_size: int = _BLOCK) -> GifgifData:
    """Read a GIFGIF-format CSV (or .csv.gz); bad rows are counted in ``skipped``, never raised.

    Raises only ``OSError`` for a file that cannot be opened or read.
    """
    import pyarrow as pa

    path = Path(path)
    first = _first_line(path)
    header = _header_order(first) if first else None
    order = header or list(range(4))
    out = _Rows()
    try:
        _read_arrow(path, order, header is not None, block_size, out)
    except (pa.ArrowInvalid, _LineByLine):
        out = _Rows()
        _read_lines(path, order, header is not None, out)
    except pa.ArrowIOError as exc:  # Arrow's OSError subclass: keep the contract
        raise OSError(str(exc)) from exc
    return out.result()
