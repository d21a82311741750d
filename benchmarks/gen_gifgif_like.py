"""Generate a CSV in the GIFGIF dump format (``metric,left,right,choice``) with known truth.

Default size matches the real 2015-01-21 dump (../shared/data/gifgif/README.md): 6,170 GIFs,
17 emotions, ~2.7M rows of which ~1.1M decisive, per-emotion decisive counts in the
proportions of ``emotions.csv``, and a few rows with an empty id. Popularity is long-tailed
(Zipf-like over a random order of the GIFs), so many GIFs have only a handful of
comparisons. Outcomes follow the Davidson tie model, whose decisive outcomes are exactly
Bradley-Terry in the true log-strengths; "neither" is written as ``none``.

Everything is vectorised numpy (27M rows in well under a minute), rendered straight into
byte buffers. Usage::

    python benchmarks/gen_gifgif_like.py OUT.csv [--gifs 6170] [--rows 2700000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scorer.emotions import NAMES  # noqa: E402

# Decisive comparisons per emotion in the real dump (emotions.csv), in NAMES order.
REAL_DECISIVE = np.array([76653, 65880, 50976, 71493, 60361, 49579, 82054, 51703, 44971,
                          106877, 87941, 50394, 39609, 64631, 79612, 47099, 65030], float)
REAL_ROWS = 2_700_000
DECISIVE_SHARE = REAL_DECISIVE.sum() / REAL_ROWS  # ~0.405
CHOICES = (b"left", b"right", b"none")
_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", np.uint8)


def giphy_like_ids(n: int, rng: np.random.Generator) -> list[bytes]:
    """n distinct GIPHY-looking ids (13 to 18 letters and digits)."""
    out: set[bytes] = set()
    while len(out) < n:
        k = n - len(out)
        lens = rng.integers(13, 19, k)
        chars = _ALNUM[rng.integers(0, len(_ALNUM), (k, 18))]
        out.update(chars[i, : lens[i]].tobytes() for i in range(k))
    return sorted(out)[:n]


def true_theta(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 17) true log-strengths: a 3-normal mixture per emotion, as in the notes' set."""
    comp = rng.choice(3, size=(n, len(NAMES)), p=[0.25, 0.5, 0.25])
    return np.array([-1.5, 0.0, 1.5])[comp] + rng.normal(0, 0.5, (n, len(NAMES)))


def _tie_nu(theta: np.ndarray, share_ties: float, rng: np.random.Generator) -> float:
    """The Davidson nu whose expected "neither" share on random pairs is share_ties."""
    i, j = rng.integers(0, theta.shape[0], (2, 50_000))
    c = 2 * np.cosh((theta[i, 0] - theta[j, 0]) / 2)
    lo, hi = 1e-3, 1e3
    for _ in range(60):
        nu = np.sqrt(lo * hi)
        lo, hi = (nu, hi) if np.mean(nu / (c + nu)) < share_ties else (lo, nu)
    return float(nu)


def _table(words: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    width = max(1, max(len(w) for w in words))
    mat = np.zeros((len(words), width), np.uint8)
    for i, w in enumerate(words):
        mat[i, : len(w)] = np.frombuffer(w, np.uint8)
    return mat, np.array([len(w) for w in words], np.int64)


def render(parts: list) -> bytes:
    """Concatenate per-row fields into CSV lines. parts: (matrix, lengths) or a single byte."""
    n = len(next(p for p in parts if not isinstance(p, int))[1])
    linelen = sum(np.ones(n, np.int64) if isinstance(p, int) else p[1] for p in parts)
    pos = np.cumsum(linelen) - linelen
    buf = np.empty(int(linelen.sum()), np.uint8)
    for p in parts:
        if isinstance(p, int):
            buf[pos] = p
            pos += 1
            continue
        mat, lens = p
        for k in range(mat.shape[1]):
            m = lens > k
            buf[pos[m] + k] = mat[m, k]
        pos += lens
    return buf.tobytes()


def generate(
    path: str | Path,
    n_gifs: int = 6170,
    rows: int = REAL_ROWS,
    seed: int = 0,
    zipf_s: float = 0.9,
    empty_frac: float = 0.001,
    chunk: int = 1_000_000,
) -> dict:
    """Write the CSV; returns the truth (ids, theta) and counts for the caller to check."""
    rng = np.random.default_rng(seed)
    ids = giphy_like_ids(n_gifs, rng)
    theta = true_theta(n_gifs, rng)
    nu = _tie_nu(theta, 1 - DECISIVE_SHARE, rng)
    # Long tail: popularity 1/(rank + 20)^s over a random order; the offset keeps the head
    # from swallowing everything (the real dump's top GIFs had thousands, not millions).
    pop = 1.0 / (np.arange(n_gifs) + 20.0) ** zipf_s
    pop = pop[rng.permutation(n_gifs)]
    cdf = np.cumsum(pop / pop.sum())
    p_emotion = REAL_DECISIVE / REAL_DECISIVE.sum()
    id_mat, id_len = _table([*ids, b""])  # last row: the empty id
    emo_mat, emo_len = _table([n.encode() for n in NAMES])
    ch_mat, ch_len = _table(list(CHOICES))
    counts = {"rows": 0, "decisive": 0, "empty_id": 0}
    with open(path, "wb") as fh:
        fh.write(b"metric,left,right,choice\n")
        done = 0
        while done < rows:
            k = min(chunk, rows - done)
            e = rng.choice(len(NAMES), size=k, p=p_emotion)
            a = np.minimum(np.searchsorted(cdf, rng.random(k)), n_gifs - 1)
            b = np.minimum(np.searchsorted(cdf, rng.random(k)), n_gifs - 1)
            same = a == b
            b[same] = (a[same] + 1 + rng.integers(0, n_gifs - 1, same.sum())) % n_gifs
            d = theta[a, e] - theta[b, e]
            c = 2 * np.cosh(d / 2)
            p_tie = nu / (c + nu)
            p_left = (1 - p_tie) / (1 + np.exp(-d))
            r = rng.random(k)
            choice = np.where(r < p_left, 0, np.where(r < p_left + (1 - p_left - p_tie), 1, 2))
            empty = rng.random(k) < empty_frac
            side = rng.random(k) < 0.5
            a = np.where(empty & side, n_gifs, a)
            b = np.where(empty & ~side, n_gifs, b)
            fh.write(render([(emo_mat[e], emo_len[e]), 44, (id_mat[a], id_len[a]), 44,
                             (id_mat[b], id_len[b]), 44, (ch_mat[choice], ch_len[choice]), 10]))
            counts["rows"] += k
            counts["decisive"] += int(((choice < 2) & ~empty).sum())
            counts["empty_id"] += int(empty.sum())
            done += k
    return {"ids": [i.decode() for i in ids], "theta": theta, "nu": nu, **counts}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--gifs", type=int, default=6170)
    ap.add_argument("--rows", type=int, default=REAL_ROWS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--truth", help="also save the true theta (.npz: ids, theta)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = generate(args.out, args.gifs, args.rows, args.seed)
    if args.truth:
        np.savez(args.truth, ids=np.array(info["ids"]), theta=info["theta"])
    print(f"{args.out}: {info['rows']:,} rows, {info['decisive']:,} decisive, "
          f"{info['empty_id']:,} with an empty id, nu={info['nu']:.3f}, "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
