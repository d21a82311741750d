"""The Arrow-based GIFGIF reader gives exactly what the former hand-written reader gave.

tests/_bt_csv_reference.py is that reader, kept as the oracle: same rows kept, same skip
counts per reason, same unknown emotion names, same GIF ids, on the edge cases (quotes,
CRLF, blank lines, BOM, bad rows, non-UTF-8, over-long fields) and on random mixes of them.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tests import _bt_csv_reference as reference
from training import bt_csv

GOOD = [
    "happiness,aaa,bbb,left", "fear,bbb,ccc,right", "sadness,ccc,aaa,neither",
    " Happiness , aaa ,ddd, LEFT ", "anger,ddd,eee,none", '"surprise","a,b","bbb","right"',
    '"fear",aaa,"ccc",left', "relief,x y,aaa,left",
]
BAD = [
    "happiness,aaa,bbb", "happiness,aaa,bbb,left,extra", "sympathy,aaa,bbb,left",
    "happiness,,bbb,left", "happiness,aaa, ,right", "fear,aaa,aaa,left", "   ",
    "fear," + "x" * 300 + ",bbb,left", "x" * 300 + ",aaa,bbb,left", "fear,aaa,bbb," + "l" * 300,
    '"fear","aaa","bbb"', "only one field", ",,,", "happiness,\xff\xfe,bbb,left",
    "\xff\xfe,aaa,bbb,left",
]


def canon(data) -> tuple:
    ids = data.gif_ids
    rows = sorted(zip(data.emotion.tolist(), [ids[i] for i in data.left],
                      [ids[i] for i in data.right], data.choice.tolist(), strict=True))
    return data.rows, data.skipped, data.unknown_emotions, sorted(ids), rows


def same(path) -> None:
    new, old = bt_csv.read_gifgif_csv(path), reference.read_gifgif_csv(path)
    assert canon(new) == canon(old)
    assert new.rows == new.kept + sum(new.skipped.values())
    assert new.left.dtype == np.int32 and new.emotion.dtype == np.int8


def write(path, lines: list[str], *, header: str | None, eol: str, bom: bool, final: bool):
    body = eol.join(([header] if header is not None else []) + lines) + (eol if final else "")
    raw = body.encode("utf-8", "surrogateescape").replace("\xff".encode(), b"\xff").replace(
        "\xfe".encode(), b"\xfe")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("header", [None, "metric,left,right,choice", "choice,left,metric,right"])
def test_edge_cases_match_the_former_reader(tmp_path, eol, header) -> None:
    path = tmp_path / "edge.csv"
    lines = GOOD + BAD + ["", ""] + GOOD[:3]
    for bom in (False, True):
        for final in (False, True):
            write(path, lines, header=header, eol=eol, bom=bom, final=final)
            same(path)


def test_random_mixes_match_the_former_reader(tmp_path) -> None:
    rng = np.random.default_rng(17)
    pool = GOOD + BAD + [""] + [f"{e},g{i},g{j},{c}" for e, i, j, c in zip(
        rng.choice(["happiness", "fear", "anger", "Shame", "joy?"], 40), rng.integers(0, 30, 40),
        rng.integers(0, 30, 40), rng.choice(["left", "right", "none", "RIGHT"], 40), strict=True)]
    for k in range(25):
        lines = list(rng.choice(pool, int(rng.integers(1, 200))))
        path = tmp_path / f"mix{k}.csv"
        write(path, lines, header="metric,left,right,choice" if k % 3 else None,
              eol="\r\n" if k % 2 else "\n", bom=k % 5 == 0, final=k % 4 != 0)
        same(path)
    gz = tmp_path / "mix.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    same(gz)


# A malformed row that is not UTF-8 must fall back to the line reader without Arrow printing
# "exception ignored" (training.bt_csv._quiet_undecodable_rows).
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_degenerate_files_match_the_former_reader(tmp_path) -> None:
    cases = {"empty": b"", "header only": b"metric,left,right,choice\n", "blank": b"\n\r\n\n",
             "junk": bytes(range(256)) * 4, "open quote": b'happiness,"aaa,bbb,left\nfear,a,b,left\n',
             "nul": b"happiness,a\x00a,bbb,left\n"}
    for name, raw in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.csv"
        path.write_bytes(raw)
        same(path)


def test_many_ids_across_arrow_blocks(tmp_path) -> None:
    # Several Arrow blocks, each with its own dictionary: codes must be unified exactly.
    rng = np.random.default_rng(14)
    ids = [f"gif{i:05d}{'x' * (i % 11)}" for i in range(3000)]
    pairs = rng.integers(0, 3000, (40000, 2))
    path = tmp_path / "many.csv"
    path.write_text("metric,left,right,choice\n" + "".join(
        f"happiness,{ids[a]},{ids[b]},left\n" for a, b in pairs))
    data = bt_csv.read_gifgif_csv(path, block_size=1 << 16)
    got = [(data.gif_ids[a], data.gif_ids[b]) for a, b in zip(data.left, data.right, strict=True)]
    assert got == [(ids[a], ids[b]) for a, b in pairs if a != b]
    assert canon(data) == canon(reference.read_gifgif_csv(path))
