"""What weighing people costs the retrain on a GIFGIF-sized ledger (training/reliability.py).

Random rows: 3M comparisons over 6,200 GIFs and the 34 reference items, 17 emotions, the
first 200k from 3,000 people (the rest imports, nobody's). Prints the seconds.

    .venv/bin/python benchmarks/bench_reliability.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(rows: int = 3_000_000, gifs: int = 6200, with_person: int = 200_000) -> None:
    from training.reliability import weigh_people

    rng = np.random.default_rng(0)
    is_ref = np.zeros(gifs + 34, bool)
    is_ref[gifs:] = True
    emotion = rng.integers(0, 17, rows)
    winner = rng.integers(0, gifs + 34, rows)
    loser = rng.integers(0, gifs, rows)
    who = np.full(rows, "", dtype=object)
    who[:with_person] = np.array([f"{i:064x}" for i in rng.integers(0, 3000, with_person)],
                                 dtype=object)
    t = time.perf_counter()
    _, report = weigh_people(np.ones(rows), who, emotion, winner, loser, is_ref)
    print(f"{rows:,} rows ({with_person:,} from {report.people:,} people): "
          f"{time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, not a run
    main()
