"""Small real pools for the bot's tests: demo GIFs, ingested, with a model version's scores.

The GIFs come from `make_demo_pool` and go through the real `scorer.pool.ingest`; the
"model" is a `model_versions` row with `predictions` written through the store, so the
ranking tests need no encoder. The predicted scores are *designed* (a known permutation per
emotion), never the manifest's ground truth, so a test can say which GIF must come first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import update
from sqlalchemy.engine import Engine

from scorer.emotions import N_EMOTIONS
from scorer.settings import Settings
from scorer.store import (
    BTFit,
    BTScore,
    ModelVersion,
    Pool,
    PoolGif,
    Prediction,
    pack_scores,
    session_scope,
)


@dataclass
class FixturePool:
    name: str
    manifest: Path
    shas: list[str]  # in manifest order


def ingest_demo(settings: Settings, engine: Engine, demo_manifest: Path, pool: str = "demo"
                ) -> FixturePool:
    """Ingest a demo manifest with the real ingest; return the pool's GIFs in manifest order."""
    import csv

    from scorer.pool import ingest

    ingest(settings, engine, pool, str(demo_manifest))
    with demo_manifest.open(newline="") as fh:
        order = [row["sha256"] for row in csv.DictReader(fh)]
    with session_scope(engine) as s:
        pid = s.query(Pool.id).filter(Pool.name == pool).scalar()
        have = {sha for (sha,) in s.query(PoolGif.gif_sha).filter(PoolGif.pool_id == pid)}
    shas = [sha for sha in order if sha in have]
    assert shas, "ingest put no GIF into the pool"
    return FixturePool(pool, demo_manifest, shas)


def designed_scores(n: int) -> np.ndarray:
    """(n, 17) scores in [0, 1]: on emotion e, GIF i ranks by (i * 7 + e * 3) mod n."""
    i = np.arange(n)[:, None]
    e = np.arange(N_EMOTIONS)[None, :]
    return (((i * 7 + e * 3) % n) / max(n - 1, 1)).astype(np.float32)


def add_model_version(engine: Engine, shas: list[str], scores: np.ndarray, *,
                      activate: bool = True, name: str = "fixture") -> int:
    """A model version row (no head file: nothing here runs a head) and its predictions."""
    with session_scope(engine) as s:
        if activate:
            s.execute(update(ModelVersion).where(ModelVersion.status == "active")
                      .values(status="retired"))
        mv = ModelVersion(name=name, encoder_id="fixture", head_kind="fixture",
                          status="active" if activate else "candidate")
        s.add(mv)
        s.flush()
        for sha, row in zip(shas, scores, strict=True):
            s.add(Prediction(model_version_id=mv.id, gif_sha=sha, scores=pack_scores(row)))
        return int(mv.id)


def add_bt_fit(engine: Engine, rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]],
               *, prior_model_version_id: int | None = None) -> int:
    """An active BT fit with per-GIF (theta, se, scaled, n_comparisons)."""
    with session_scope(engine) as s:
        s.execute(update(BTFit).values(active=False))
        fit = BTFit(active=True, prior_model_version_id=prior_model_version_id,
                    n_comparisons=sum(r[3] for r in rows.values()))
        s.add(fit)
        s.flush()
        for sha, (theta, se, scaled, n) in rows.items():
            s.add(BTScore(fit_id=fit.id, gif_sha=sha, theta=pack_scores(theta),
                          se=pack_scores(se), scaled=pack_scores(scaled), n_comparisons=n))
        return int(fit.id)


_DEMO_CACHE: dict[tuple[int, int], Path] = {}


def demo_manifest(count: int = 24, seed: int = 7) -> Path:
    """A demo pool on disk, made once per test process (the files only depend on the seed)."""
    import tempfile

    key = (count, seed)
    if key not in _DEMO_CACHE:
        out = Path(tempfile.mkdtemp(prefix="moodgif-demo-"))
        from scorer.demo_pool import make_demo_pool

        _DEMO_CACHE[key] = make_demo_pool(out, count, seed, workers=1)
    return _DEMO_CACHE[key]
