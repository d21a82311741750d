"""Training data: cached frame features paired with fitted scores, split 80/10/10 by GIF.

A GIF is in exactly one split, chosen by ranking `sha256(seed:sha)`: the same seed gives the
same split on every machine, and augmented copies always stay with their GIF (train only;
dev and test are never augmented). GIFs under 4 frames are dropped, as in the paper: with
so little motion the decoders see a still image.

The paper's three training sets, selectable by name (`TRAINING_SETS`):
sparse-small (sparse sampling), dense-small (dense sampling), sparse-aug (sparse sampling
plus flipped, scaled, translated and salt-and-pepper copies of the training GIFs).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from scorer.emotions import N_EMOTIONS
from scorer.store import Gif, session_scope

log = logging.getLogger("moodgif.training.dataset")

MIN_FRAMES = 4
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class TrainingSet:
    name: str
    sampling: str  # sparse | dense
    augment: bool


TRAINING_SETS: dict[str, TrainingSet] = {
    "sparse-small": TrainingSet("sparse-small", "sparse", False),
    "dense-small": TrainingSet("dense-small", "dense", False),
    "sparse-aug": TrainingSet("sparse-aug", "sparse", True),
}


def training_set(name: str) -> TrainingSet:
    try:
        return TRAINING_SETS[name]
    except KeyError:
        raise ValueError(f"unknown training set {name!r}; expected one of: "
                         f"{', '.join(TRAINING_SETS)}") from None


@dataclass
class Dataset:
    """Variable-length features with 17 targets each; `weights` (optional) weighs each target."""

    keys: list[str]  # sha, or sha#aug-kind for augmented copies
    shas: list[str]  # the GIF each item comes from
    feats: list[np.ndarray]  # (T_i, D) float32
    targets: np.ndarray  # (N, 17) float32
    weights: np.ndarray | None = None  # (N, 17) float32, None = all 1

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def dim(self) -> int:
        return int(self.feats[0].shape[1]) if self.feats else 0

    def subset(self, idx: Sequence[int]) -> Dataset:
        idx = list(idx)
        return Dataset(
            keys=[self.keys[i] for i in idx],
            shas=[self.shas[i] for i in idx],
            feats=[self.feats[i] for i in idx],
            targets=self.targets[idx],
            weights=None if self.weights is None else self.weights[idx],
        )

    def with_extra(self, other: Dataset) -> Dataset:
        """This set followed by `other` (augmented copies)."""
        if self.weights is None and other.weights is None:
            weights = None
        else:
            weights = np.concatenate([_w(self), _w(other)])
        return Dataset(self.keys + other.keys, self.shas + other.shas, self.feats + other.feats,
                       np.concatenate([self.targets, other.targets]), weights)

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, T_max, D) zero-padded float32 features and (N,) lengths."""
        return pad(self.feats)


def _w(d: Dataset) -> np.ndarray:
    return d.weights if d.weights is not None else np.ones_like(d.targets)


def pad(feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray([f.shape[0] for f in feats], dtype=np.int64)
    if not feats:
        return np.zeros((0, 1, 1), np.float32), lengths
    out = np.zeros((len(feats), int(lengths.max()), feats[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lengths


@dataclass
class Splits:
    train: Dataset
    dev: Dataset
    test: Dataset
    set_name: str = "sparse-small"
    encoder_id: str = ""
    info: dict = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.set_name}: train {len(self.train)}, dev {len(self.dev)}, "
                f"test {len(self.test)} (D={self.train.dim or self.dev.dim})")


def split_of(shas: Sequence[str], seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS
             ) -> dict[str, str]:
    """{sha: "train" | "dev" | "test"}: 80/10/10 by GIF, fixed by the seed.

    GIFs are ordered by a seeded hash and cut at 80 % and 90 %, so the proportions are exact
    and the assignment depends only on (seed, set of GIFs). With 3 or more GIFs dev and test
    get at least one each.
    """
    order = sorted(set(shas), key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    n = len(order)
    n_train = round(n * fractions[0])
    n_dev = round(n * fractions[1])
    if n >= 3:
        n_dev = max(1, n_dev)
        n_train = min(n_train, n - n_dev - 1)
    out: dict[str, str] = {}
    for i, sha in enumerate(order):
        out[sha] = "train" if i < n_train else ("dev" if i < n_train + n_dev else "test")
    return out


def assemble(
    targets: Mapping[str, np.ndarray],
    features: Callable[[str], np.ndarray | None],
    *,
    seed: int,
    n_frames: Mapping[str, int] | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    augmented: Callable[[str], list[tuple[str, np.ndarray]]] | None = None,
    set_name: str = "sparse-small",
    encoder_id: str = "",
    min_frames: int = MIN_FRAMES,
) -> Splits:
    """Pair each GIF's targets (17,) with its features and split them.

    `features(sha)` returns the cached (T, D) array or None (counted, skipped);
    `n_frames` gives the GIF's own frame count for the under-4-frames filter (the feature
    length is used when absent); `augmented(sha)` returns [(kind, features)] for train GIFs.
    """
    feats, skipped = _usable_features(targets, features, n_frames, min_frames)
    info = {"candidates": len(targets), **skipped, "augmented": 0}
    parts = _split_datasets(targets, feats, weights, seed)
    if augmented is not None:
        parts["train"], info["augmented"] = _with_augmented(parts["train"], augmented)
    info.update({k: len(v) for k, v in parts.items()})
    return Splits(parts["train"], parts["dev"], parts["test"], set_name, encoder_id, info)


def _usable_features(
    targets: Mapping[str, np.ndarray],
    features: Callable[[str], np.ndarray | None],
    n_frames: Mapping[str, int] | None,
    min_frames: int,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """{sha: float32 features} in sha order, and how many GIFs had none or too few frames."""
    skipped = {"no_features": 0, "too_short": 0}
    feats: dict[str, np.ndarray] = {}
    for sha in sorted(targets):
        f = features(sha)
        if f is None or f.ndim != 2 or f.shape[0] == 0:
            skipped["no_features"] += 1
            continue
        frames = n_frames.get(sha) if n_frames is not None else None
        if (frames if frames is not None else f.shape[0]) < min_frames:
            skipped["too_short"] += 1
            continue
        feats[sha] = np.asarray(f, dtype=np.float32)
    return feats, skipped


def _split_datasets(
    targets: Mapping[str, np.ndarray],
    feats: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray] | None,
    seed: int,
) -> dict[str, Dataset]:
    """{"train" | "dev" | "test": Dataset} of the kept GIFs, each in sha order."""
    keep = list(feats)
    which = split_of(keep, seed)
    parts: dict[str, Dataset] = {}
    for name in ("train", "dev", "test"):
        shas = [s for s in keep if which[s] == name]
        parts[name] = Dataset(
            keys=list(shas), shas=list(shas), feats=[feats[s] for s in shas],
            targets=np.asarray([targets[s] for s in shas], np.float32).reshape(-1, N_EMOTIONS),
            weights=None if weights is None else np.asarray(
                [weights[s] for s in shas], np.float32).reshape(-1, N_EMOTIONS),
        )
    return parts


def _with_augmented(
    train: Dataset, augmented: Callable[[str], list[tuple[str, np.ndarray]]]
) -> tuple[Dataset, int]:
    """The training set followed by each GIF's augmented copies, and how many were added."""
    keys, shas_, fs, ys, ws = [], [], [], [], []
    weights = _w(train)  # once: without weights it is a fresh array of ones
    for i, sha in enumerate(train.shas):
        for kind, f in augmented(sha):
            keys.append(f"{sha}#{kind}")
            shas_.append(sha)
            fs.append(np.asarray(f, np.float32))
            ys.append(train.targets[i])
            ws.append(weights[i])
    if keys:
        extra = Dataset(keys, shas_, fs, np.asarray(ys, np.float32),
                        None if train.weights is None else np.asarray(ws, np.float32))
        train = train.with_extra(extra)
    return train, len(keys)


# ---------------------------------------------------------------------------------------
# from the database


def gif_frame_counts(engine: Engine, shas: Sequence[str] | None = None) -> dict[str, int]:
    with session_scope(engine) as s:
        q = select(Gif.sha256, Gif.n_frames)
        if shas is not None:
            q = q.where(Gif.sha256.in_(list(shas)))
        return {sha: int(n) for sha, n in s.execute(q)}
