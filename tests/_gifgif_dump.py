"""A small synthetic GIFGIF dump in the real formats: `metric,left,right,choice` as .csv.gz,
and an uncompressed tar of `<giphy_id>.gif`.

The GIFs are demo-pool cartoon faces (known true scores); each comparison's outcome is drawn
from a Bradley-Terry model on that truth, and a share of rows are "neither" or corrupt (an
empty id), as in the real dump.
"""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scorer.emotions import NAMES


@dataclass
class Dump:
    csv_gz: Path
    tar: Path
    ids: list[str]
    gifs: dict[str, bytes]  # giphy id -> bytes
    rows: int


def giphy_id(rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(list(letters), size=int(rng.integers(13, 19))))


def make_dump(out: Path, demo_manifest: Path, *, seed: int = 3, emotions: int = 4,
              rounds: int = 3, sharpness: float = 8.0) -> Dump:
    from scorer.demo_pool import read_truth

    rng = np.random.default_rng(seed)
    truth = read_truth(demo_manifest)
    with demo_manifest.open(newline="") as fh:
        paths = {row["sha256"]: demo_manifest.parent / row["path"] for row in csv.DictReader(fh)}
    shas = sorted(truth)
    ids = [giphy_id(rng) for _ in shas]
    gifs = {gid: paths[sha].read_bytes() for gid, sha in zip(ids, shas, strict=True)}
    out.mkdir(parents=True, exist_ok=True)
    csv_gz = out / "gifgif-dataset-test-v1.csv.gz"
    n = 0
    with gzip.open(csv_gz, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "left", "right", "choice"])
        for e in range(emotions):
            for _ in range(rounds):
                for i in range(len(ids)):
                    for j in range(i + 1, len(ids)):
                        a, b = truth[shas[i]][e], truth[shas[j]][e]
                        p_left = 1.0 / (1.0 + np.exp(-sharpness * (a - b)))
                        u = rng.random()
                        choice = "neither" if u < 0.1 else ("left" if rng.random() < p_left else "right")
                        w.writerow([NAMES[e], ids[i], ids[j], choice])
                        n += 1
        w.writerow([NAMES[0], "", ids[0], "left"])  # a corrupt row, as the real dump has
        n += 1
    tar = out / "gifgif-images-test-v1.tar"
    with tarfile.open(tar, "w") as tf:
        readme = b"synthetic GIFGIF-format images for tests\n"
        info = tarfile.TarInfo("gifgif-images/README.txt")
        info.size = len(readme)
        tf.addfile(info, io.BytesIO(readme))
        for gid, data in gifs.items():
            info = tarfile.TarInfo(f"gifgif-images/{gid}.gif")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("gifgif-images/evil.gif")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return Dump(csv_gz, tar, ids, gifs, n)
