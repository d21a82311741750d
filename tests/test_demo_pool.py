"""The synthetic demo pool: deterministic files, a manifest with ground truth, visible signal."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from scorer.demo_pool import (
    PROTOTYPES,
    make_demo_pool,
    raw_similarity,
    read_truth,
    sample_spec,
)
from scorer.emotions import N_EMOTIONS, NAMES, emotion_index
from scorer.frames import decode_gif


@pytest.fixture(scope="module")
def pool60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_pool(tmp_path_factory.mktemp("demo") / "pool", 60, seed=11)


def _files(manifest: Path) -> dict[str, bytes]:
    rows = list(csv.DictReader(manifest.open()))
    return {r["path"]: (manifest.parent / r["path"]).read_bytes() for r in rows}


def test_manifest_columns_and_truth(pool60: Path) -> None:
    rows = list(csv.DictReader(pool60.open()))
    assert len(rows) == 60
    assert list(rows[0].keys()) == ["path", "title", "tags", "rating", "sha256",
                                    *(f"truth_{n}" for n in NAMES)]
    truth = read_truth(pool60)
    assert len(truth) == 60
    for row in rows:
        data = (pool60.parent / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert row["rating"] in {"g", "pg", "pg-13"}
        t = truth[row["sha256"]]
        assert t.shape == (N_EMOTIONS,) and t.min() >= 0.0 and t.max() <= 1.0
    matrix = np.stack(list(truth.values()))
    # min-max per emotion across the pool
    assert np.allclose(matrix.min(axis=0), 0.0) and np.allclose(matrix.max(axis=0), 1.0)
    assert matrix.std(axis=0).min() > 0.05
    ratings = [r["rating"] for r in rows]
    assert ratings.count("g") + ratings.count("pg") > 0.8 * len(rows)


def test_gifs_are_animated_faces(pool60: Path) -> None:
    rows = list(csv.DictReader(pool60.open()))
    lengths, delays = set(), set()
    for row in rows[:20]:
        g = decode_gif(pool60.parent / row["path"])
        assert (g.width, g.height) == (128, 128)
        assert 2 <= g.n_frames <= 40
        # frames really move (not a still image repeated)
        assert np.abs(np.diff(g.frames.astype(np.int16), axis=0)).max() > 0
        lengths.add(g.n_frames)
        delays.add(int(g.durations_ms.mean()))
    assert len(lengths) > 5 and len(delays) > 5


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    a = make_demo_pool(tmp_path / "a", 20, seed=5, workers=1)
    b = make_demo_pool(tmp_path / "b", 20, seed=5, workers=2)
    assert a.read_bytes() == b.read_bytes()
    assert _files(a) == _files(b)
    c = make_demo_pool(tmp_path / "c", 20, seed=6, workers=1)
    assert set(read_truth(c)).isdisjoint(read_truth(a))
    # GIF i depends on (seed, i) only, whatever the count
    d = make_demo_pool(tmp_path / "d", 7, seed=5, workers=1)
    files_a, files_d = _files(a), _files(d)
    assert all(files_d[k] == files_a[k] for k in files_d)


def test_prototypes_score_highest_on_their_own_emotion() -> None:
    sims = raw_similarity(PROTOTYPES)
    assert sims.shape == (N_EMOTIONS, N_EMOTIONS)
    assert (sims.argmax(axis=1) == np.arange(N_EMOTIONS)).all()
    assert np.allclose(np.diag(sims), 1.0)


def test_mixtures_follow_their_weights() -> None:
    # over many GIFs, the emotion with the largest mixture weight tends to score highest
    hits = 0
    for i in range(200):
        spec = sample_spec(3, i)
        top = max(spec.mixture, key=spec.mixture.get)  # type: ignore[arg-type]
        hits += int(raw_similarity(spec.params).argmax() == emotion_index(top))
    assert hits > 120


def test_visual_features_carry_the_signal(pool60: Path) -> None:
    """Cheap pixel statistics already correlate with the truth the way the design says."""
    truth = read_truth(pool60)
    rows = list(csv.DictReader(pool60.open()))
    feats, ys = [], []
    for row in rows:
        g = decode_gif(pool60.parent / row["path"])
        f = g.frames.astype(np.float32)
        border = np.concatenate([f[:, :6].reshape(-1, 3), f[:, -6:].reshape(-1, 3)])
        warm = float((border[:, 0] - border[:, 2]).mean())
        motion = float(np.abs(np.diff(f, axis=0)).mean() / (g.durations_ms.mean() / 100))
        green = float(((f[..., 1] > f[..., 0] + 30) & (f[..., 1] > f[..., 2] + 30)).mean())
        tears = float(((f[..., 2] > 200) & (f[..., 0] < 120)).mean())
        feats.append([warm, motion, green, tears])
        ys.append(truth[row["sha256"]])
    x, y = np.asarray(feats), np.asarray(ys)

    def corr(j: int, emotion: str) -> float:
        return float(np.corrcoef(x[:, j], y[:, emotion_index(emotion)])[0, 1])

    assert corr(0, "sadness") < -0.3 and corr(0, "excitement") > 0.3
    assert corr(1, "excitement") > 0.2 and corr(1, "contentment") < -0.2
    assert corr(2, "disgust") > 0.5
    assert corr(3, "sadness") > 0.4


def test_read_truth_needs_truth_columns(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text("path,title\nx.gif,x\n")
    with pytest.raises(ValueError, match="ground truth"):
        read_truth(m)
