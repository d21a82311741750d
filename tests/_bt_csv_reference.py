"""The former hand-written GIFGIF CSV reader (numpy blocks + hashing), kept as a test oracle.

training/bt_csv.py now reads with Arrow; tests/test_bt_csv_arrow.py checks that it gives
exactly what this reader gave, on edge cases and on random mixes of them.

Original docstring: reader for the GIFGIF comparison dump (``metric,left,right,choice``).

The real dump has 2.7M rows; a per-row Python loop (csv module + dicts) costs seconds, so the
file is parsed in blocks with numpy: newline and comma positions are found with vector
compares, each field is cut out into a fixed-width byte matrix and deduplicated with a 64-bit
hash (verified exactly, so a hash collision can only cost time, never a wrong id), and only
the few distinct values of a block go through Python. Lines containing a double quote take
the csv-module path so quoted fields still parse.

Bad input never stops the read: every data row is either kept or counted under one reason,
checked in this order:

* ``malformed``: not exactly 4 fields, a field over 256 bytes, or an id that is not UTF-8;
* ``unknown_emotion``: ``metric`` is not one of the 17 axes (names are case-insensitive);
* ``empty_id``: ``left`` or ``right`` is empty (the dump has such rows);
* ``same_gif``: ``left`` and ``right`` are the same GIF.

``choice`` is ``left`` or ``right`` (case-insensitive) for a decisive answer; anything else
is "neither". A first line naming the four columns (in any order) is the header; without it
the columns are taken in the order above. Files ending in ``.gz`` are read through gzip.
Quoted fields with an embedded newline are not supported (their lines count as malformed).
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scorer.emotions import INDEX, N_EMOTIONS

COLUMNS = ("metric", "left", "right", "choice")
SKIP_REASONS = ("malformed", "unknown_emotion", "empty_id", "same_gif")
LEFT, RIGHT, NEITHER = 0, 1, 2
MAX_FIELD = 256
_BLOCK = 16 << 20
_EMPTY, _BAD = -1, -2


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
        mask = self.choice != NEITHER if decisive else self.choice == NEITHER
        return np.bincount(self.emotion[mask], minlength=N_EMOTIONS)


class _Vocab:
    """Maps the distinct raw byte strings of the three columns to codes, across blocks."""

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}
        self.names: list[str] = []
        self.unknown = Counter()

    def gif(self, raw: bytes) -> int:
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

    def emotion(self, raw: bytes) -> int:
        name = raw.strip().decode("utf-8", "replace")
        return INDEX.get(name.lower(), -1)

    @staticmethod
    def choice(raw: bytes) -> int:
        key = raw.strip().lower()
        return LEFT if key == b"left" else RIGHT if key == b"right" else NEITHER


_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)
_MUL = np.uint64(0x9E3779B97F4A7C15)
_TABLE_BITS = 20


def _distinct(arr: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Distinct byte strings ``arr[start:end]`` -> (list of bytes, inverse index per row).

    ``arr`` must be followed by 8 zero bytes (see ``_Reader.block``). Each string becomes
    little-endian 64-bit words read through an 8-byte sliding window, the words are hashed,
    and a hash table (last writer wins) picks one representative per slot. A row counts as
    found only if its words equal its representative's, so the result is exact; rows whose
    slot another string took are done again with a sort.
    """
    n = len(start)
    lens = end - start
    if n == 0:
        return [], np.zeros(0, np.int64)
    nwords = max(1, -(-int(lens.max()) // 8))
    win = np.lib.stride_tricks.as_strided(arr, shape=(len(arr) - 7, 8), strides=(1, 1))
    last = len(arr) - 8
    words = np.empty((n, nwords), np.uint64)
    for j in range(nwords):
        w = win[np.minimum(start + 8 * j, last)].view("<u8")[:, 0]
        words[:, j] = w & _MASKS[np.clip(lens - 8 * j, 0, 8)]
    h = words[:, 0] ^ (lens.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    for j in range(1, nwords):
        h = h * _MUL ^ words[:, j]
    slot = (h * _MUL) >> np.uint64(64 - _TABLE_BITS)
    table = np.empty(1 << _TABLE_BITS, np.int64)
    table[slot] = np.arange(n)
    rep = table[slot]
    found = (lens[rep] == lens) & (words[rep] == words).all(axis=1)
    used = np.zeros(1 << _TABLE_BITS, bool)
    used[slot[found]] = True
    code_of_slot = np.cumsum(used) - 1
    inv = np.empty(n, np.int64)
    inv[found] = code_of_slot[slot[found]]
    firsts = list(table[used])
    if not found.all():
        # Strings that lost their slot never share a key with a found one (a string maps to
        # one slot), so they get fresh codes after the found ones.
        rest = np.flatnonzero(~found)
        keyed = np.concatenate([words[rest], lens[rest].astype(np.uint64)[:, None]], axis=1)
        void = np.ascontiguousarray(keyed).view(np.dtype((np.void, keyed.shape[1] * 8)))[:, 0]
        _, first, sub = np.unique(void, return_index=True, return_inverse=True)
        inv[rest] = len(firsts) + sub.reshape(-1)
        firsts.extend(rest[first])
    keys = [arr[start[i] : end[i]].tobytes() for i in firsts]
    return keys, inv


class _Reader:
    def __init__(self) -> None:
        self.vocab = _Vocab()
        self.order = list(range(4))  # field position of metric, left, right, choice
        self.first_line = True
        self.rows = 0
        self.skipped = dict.fromkeys(SKIP_REASONS, 0)
        self.parts: list[tuple[np.ndarray, ...]] = []

    def header(self, line: bytes) -> bool:
        """Take the column order from a header line; False if the line is data."""
        names = [f.strip().strip('"').lower() for f in line.decode("utf-8", "replace").split(",")]
        if sorted(names) == sorted(COLUMNS):
            self.order = [names.index(c) for c in COLUMNS]
            return True
        return False

    def block(self, buf: bytes) -> None:
        # 8 zero bytes after the data let _distinct read whole words at any field start.
        arr = np.frombuffer(buf + bytes(8), np.uint8)
        nl = np.flatnonzero(arr[:-8] == 10)
        starts = np.empty_like(nl)
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
        ends = nl.copy()
        cr = (ends > starts) & (arr[ends - 1] == 13)
        ends[cr] -= 1
        live = ends > starts
        if self.first_line:
            self.first_line = False
            if buf.startswith(b"\xef\xbb\xbf"):
                starts[0] += 3
                live[0] = ends[0] > starts[0]
            if live[0] and self.header(buf[starts[0] : ends[0]]):
                live[0] = False
        quoted = np.zeros(len(nl), bool)
        quote_pos = np.flatnonzero(arr[:-8] == 34)
        if len(quote_pos):
            quoted[np.searchsorted(nl, quote_pos)] = True
            quoted &= live
        commas = np.flatnonzero(arr[:-8] == 44)
        line_of = np.searchsorted(nl, commas)
        count = np.bincount(line_of, minlength=len(nl))
        first = np.cumsum(count) - count
        fast = live & ~quoted
        good = fast & (count == 3)
        self.rows += int(live.sum())
        self.skipped["malformed"] += int((fast & (count != 3)).sum())

        idx = np.flatnonzero(good)
        f = first[idx]
        cuts = [starts[idx], commas[f], commas[f + 1], commas[f + 2], ends[idx]]
        bounds = [(cuts[0], cuts[1]), (cuts[1] + 1, cuts[2]), (cuts[2] + 1, cuts[3]),
                  (cuts[3] + 1, cuts[4])]
        fields = [bounds[p] for p in self.order]
        too_long = np.zeros(len(idx), bool)
        for s, e in fields:
            too_long |= (e - s) > MAX_FIELD
        if too_long.any():
            self.skipped["malformed"] += int(too_long.sum())
            fields = [(s[~too_long], e[~too_long]) for s, e in fields]
        if len(fields[0][0]):
            self._codes(arr, fields)
        for i in np.flatnonzero(quoted):
            self._python_row(buf[starts[i] : ends[i]])

    def _codes(self, arr: np.ndarray, fields) -> None:
        (ms, me), (ls, le), (rs, re), (cs, ce) = fields
        v = self.vocab
        keys, inv = _distinct(arr, ms, me)
        emo = np.array([v.emotion(k) for k in keys], np.int64)[inv]
        unknown = emo < 0
        if unknown.any():
            for k, c in zip(keys, np.bincount(inv[unknown], minlength=len(keys)), strict=True):
                if c:
                    v.unknown[k.strip().decode("utf-8", "replace")] += int(c)
        keys, inv = _distinct(arr, np.concatenate([ls, rs]), np.concatenate([le, re]))
        gid = np.array([v.gif(k) for k in keys], np.int64)[inv]
        left, right = gid[: len(ls)], gid[len(ls) :]
        keys, inv = _distinct(arr, cs, ce)
        choice = np.array([v.choice(k) for k in keys], np.int64)[inv]
        self._keep(emo, left, right, choice)

    def _keep(self, emo, left, right, choice) -> None:
        bad = (left == _BAD) | (right == _BAD)
        unknown = ~bad & (emo < 0)
        empty = ~bad & ~unknown & ((left == _EMPTY) | (right == _EMPTY))
        same = ~bad & ~unknown & ~empty & (left == right)
        self.skipped["malformed"] += int(bad.sum())
        self.skipped["unknown_emotion"] += int(unknown.sum())
        self.skipped["empty_id"] += int(empty.sum())
        self.skipped["same_gif"] += int(same.sum())
        ok = ~(bad | unknown | empty | same)
        self.parts.append((emo[ok].astype(np.int8), left[ok].astype(np.int32),
                           right[ok].astype(np.int32), choice[ok].astype(np.int8)))

    def _python_row(self, line: bytes) -> None:
        try:
            row = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            self.skipped["malformed"] += 1
            return
        if len(row) != 4 or any(len(x.encode()) > MAX_FIELD for x in row):
            self.skipped["malformed"] += 1
            return
        m, lft, rgt, ch = (row[p].encode() for p in self.order)
        v = self.vocab
        emo = v.emotion(m)
        if emo < 0:
            v.unknown[m.strip().decode()] += 1
        self._keep(np.array([emo]), np.array([v.gif(lft)]), np.array([v.gif(rgt)]),
                   np.array([v.choice(ch)]))

    def result(self) -> GifgifData:
        if self.parts:
            emo, left, right, choice = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        else:
            emo, choice = np.zeros(0, np.int8), np.zeros(0, np.int8)
            left, right = np.zeros(0, np.int32), np.zeros(0, np.int32)
        # Only GIFs of kept rows count (an id seen only in skipped rows is no GIF of the fit).
        used = np.zeros(len(self.vocab.names), bool)
        used[left] = True
        used[right] = True
        names = [name for name, u in zip(self.vocab.names, used, strict=True) if u]
        if len(names) < len(used):
            new_index = (np.cumsum(used) - 1).astype(np.int32)
            left, right = new_index[left], new_index[right]
        return GifgifData(names, emo, left, right, choice, self.rows,
                          dict(self.skipped), dict(self.vocab.unknown.most_common()))


def read_gifgif_csv(path: str | Path, block_size: int = _BLOCK) -> GifgifData:
    """Read a GIFGIF-format CSV (or .csv.gz); bad rows are counted in ``skipped``, never raised.

    Raises only ``OSError`` for a file that cannot be opened or read.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    reader = _Reader()
    with opener(path, "rb") as fh:
        while True:
            buf = fh.read(block_size)
            if not buf:
                break
            if not buf.endswith(b"\n"):
                buf += fh.readline()
                if not buf.endswith(b"\n"):
                    buf += b"\n"
            reader.block(buf)
    return reader.result()
