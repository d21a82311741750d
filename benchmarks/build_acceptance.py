"""Count which emotions people accept together, from the evaluation sets' labels: the table
`bench_acceptance.py` scores (docs/bench/intent.md, twenty-first round; not adopted).

    .venv/bin/python benchmarks/build_acceptance.py          # each emotion's closest three

A[f][e] is the share of lines accepting f that also accept e (1 on the diagonal). Only tune
and selection labels count: a held-out set would vote on the answers it is then used to judge.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scorer.emotions import INDEX, N_EMOTIONS, NAMES  # noqa: E402

DATA = REPO / "tests" / "data"
# (name, file, the split that counts: None for every row)
SOURCES: tuple[tuple[str, str, str | None], ...] = (
    ("issuetune", "intent_sentences.csv", "tune"),
    ("evaltune", "intent_eval.csv", "tune"),
    *((f"fresh{k}", f"intent_sentences_fresh{k}.csv", None) for k in ("", 2, 3, 4, 6, 7, 9, 11, 12, 13)),
    ("terse1", "intent_sentences_terse1.csv", None),
)
HELD_OUT_FILES = frozenset({"intent_sentences_extra.csv", "intent_sentences_fresh5.csv",
                            "intent_sentences_fresh8.csv", "intent_sentences_fresh10.csv",
                            "intent_sentences_terse2.csv"})


def co_acceptance(label_sets: Iterable[Iterable[str]]) -> np.ndarray:
    """A[f][e]: of the lines that accept f, the share that also accept e (an emotion no line
    accepts keeps the identity's row)."""
    counts = np.zeros((N_EMOTIONS, N_EMOTIONS))
    for labels in label_sets:
        idx = sorted({INDEX[name] for name in labels})
        for f in idx:
            counts[f, idx] += 1.0
    seen = np.diag(counts).copy()
    out = np.eye(N_EMOTIONS)
    out[seen > 0] = counts[seen > 0] / seen[seen > 0, None]
    return out


def labels_of(name: str) -> list[set[str]]:
    """The accepted sets of one source's counted rows."""
    (file, split), = [(f, s) for n, f, s in SOURCES if n == name]
    with (DATA / file).open(newline="", encoding="utf-8") as fh:
        return [set(r["accepted"].split("|")) for r in csv.DictReader(fh)
                if split is None or r["split"] == split]


def counted(leave_out: str | None = None) -> np.ndarray:
    """The table from every source, or from all but `leave_out`."""
    assert not HELD_OUT_FILES & {f for _, f, _ in SOURCES}
    return co_acceptance(labels for name, _, _ in SOURCES if name != leave_out
                         for labels in labels_of(name))


def main() -> None:
    a = counted()
    n = sum(len(labels_of(name)) for name, _, _ in SOURCES)
    print(f"co-acceptance from {n} labelled lines; each emotion's three most often accepted with it:")
    for f, name in enumerate(NAMES):
        close = sorted(((a[f, e], NAMES[e]) for e in range(N_EMOTIONS) if e != f), reverse=True)[:3]
        print(f"{name:13s} " + ", ".join(f"{e} {v:.2f}" for v, e in close))


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    main()
