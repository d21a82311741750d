"""Drop helper-written bank lines that would leak an evaluation set into the bank: exact
copies of a bank line, and lines close to any tests/data line (MiniLM cosine >= 0.85, the
rule every bank round since the tenth has used; docs/bench/intent.md).

    .venv/bin/python benchmarks/near_copies.py NEW.tsv [MORE.tsv ...] --out KEPT.tsv

Each input is `emotion<TAB>line` with `#` comments; the kept lines are written in the same
format, and what was dropped is printed with the test line it was close to.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.embedder import load_sentence_model  # noqa: E402
from scorer.emotions import INDEX  # noqa: E402

DATA = REPO / "tests" / "data"
BANK = REPO / "bot" / "data" / "situations.tsv"
NEAR = 0.85


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(emotion, line) pairs; a line with an unknown emotion is reported and skipped."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        emotion, _, text = raw.partition("\t")
        if emotion.strip() not in INDEX or not text.strip():
            print(f"skipped (not emotion<TAB>line): {raw!r}")
            continue
        out.append((emotion.strip(), " ".join(text.split())))
    return out


def test_lines() -> list[str]:
    lines = []
    for path in sorted(DATA.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames and "text" in reader.fieldnames:
                lines += [r["text"] for r in reader if r["text"]]
    return lines


def nearest(texts: list[str], against: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """For each text, the index of its closest line in `against` and their MiniLM cosine."""
    model = load_sentence_model()
    a = np.asarray(model.encode(texts, normalize_embeddings=True))
    b = np.asarray(model.encode(against, normalize_embeddings=True))
    sims = a @ b.T
    best = sims.argmax(axis=1)
    return best, sims[np.arange(len(texts)), best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    bank = {text.lower() for _, text in read_tsv(BANK)}
    new: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in args.inputs:
        for emotion, text in read_tsv(path):
            key = text.lower()
            if key in bank or key in seen:
                print(f"dropped (a copy): {text}")
                continue
            seen.add(key)
            new.append((emotion, text))
    tests = test_lines()
    best, cosines = nearest([t for _, t in new], tests)
    kept = []
    for i, (emotion, text) in enumerate(new):
        cos = float(cosines[i])
        if cos >= NEAR:
            print(f"dropped (cosine {cos:.2f} to a test line {tests[best[i]]!r}): {text}")
        else:
            kept.append((emotion, text))
    args.out.write_text("".join(f"{e}\t{t}\n" for e, t in kept), encoding="utf-8")
    print(f"kept {len(kept)} of {len(new)} new lines ({len(tests)} test lines compared) -> {args.out}")


if __name__ == "__main__":
    main()
