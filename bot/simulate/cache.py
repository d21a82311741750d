"""The cache every strategy starts from: demo pools, shared features, v0 (the scorer
"trained elsewhere") and the template databases, built once under `cache_dir`.

Part of `bot.simulate` (`moodgif simulate`); see the package's doc for the whole loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.simulate.config import SimConfig
from scorer.emotions import N_EMOTIONS, NAMES
from scorer.settings import Settings

# ---------------------------------------------------------------------------------------
# the cache: pools, features, v0, template databases


@dataclass
class Prepared:
    cache_dir: Path
    store: Path  # shared gifs/ and features/
    eval_manifest: Path
    template_plain: Path  # eval pool ingested and encoded, nothing scored
    template_prior: Path  # + v0 active with its predictions
    v0: dict  # what v0 is and how good it is
    seconds: dict


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _link_store(home: Path, store: Path) -> None:
    """A home whose gifs/ and features/ are the shared store (files are content-addressed)."""
    home.mkdir(parents=True, exist_ok=True)
    for name in ("gifs", "features"):
        (store / name).mkdir(parents=True, exist_ok=True)
        link = home / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == (store / name).resolve():
                continue
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink()
        link.symlink_to((store / name).resolve(), target_is_directory=True)


def _home_settings(base: Settings, home: Path, **overrides: Any) -> Settings:
    return base.override(home=home, database_url="", config_file="", **overrides)


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), via SQLite's backup API."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def _stamp(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _make_pool(folder: Path, count: int, seed: int) -> Path:
    from scorer.demo_pool import make_demo_pool

    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        _say(f"simulate: drawing {count} demo GIFs (seed {seed}) into {folder}")
        make_demo_pool(folder, count, seed, workers=2)
    return manifest


def _encode(settings: Settings, engine: Any, pool: str) -> None:
    from scorer.pipeline import score_pool

    rep = score_pool(settings, engine, pool=pool, progress=sys.stderr.isatty())
    if rep.encoded:
        _say(f"simulate: encoded {rep.encoded} GIFs of pool {pool!r} ({rep.cached} cached) "
             f"in {rep.seconds:.0f} s")
    if rep.failed:
        _say(f"simulate: {len(rep.failed)} GIFs of pool {pool!r} could not be encoded")


def crowd_rows(truth: dict[str, np.ndarray], per_gif: int, k: float, seed: int
               ) -> list[tuple[str, str, str, str]]:
    """GIFGIF-style `(metric, left, right, choice)` rows drawn from the truth with BT noise:
    about `per_gif` comparisons per GIF and emotion between random pairs."""
    rng = np.random.default_rng(seed)
    shas = sorted(truth)
    t = np.stack([truth[s] for s in shas])
    n = len(shas)
    rows: list[tuple[str, str, str, str]] = []
    m = max(1, n * per_gif // 2)
    for e in range(N_EMOTIONS):
        i = rng.integers(0, n, m)
        j = (i + rng.integers(1, n, m)) % n
        p = 1.0 / (1.0 + np.exp(-k * (t[i, e] - t[j, e])))
        left = rng.random(m) < p
        rows += [(NAMES[e], shas[a], shas[b], "left" if w else "right")
                 for a, b, w in zip(i, j, left, strict=True)]
    return rows


def _pool_home(settings: Settings, home: Path, store: Path, pool: str, manifest: Path
               ) -> tuple[Settings, Any]:
    """A fresh home sharing the GIF/feature store, with `manifest` ingested and encoded."""
    from scorer.migrate import init_db
    from scorer.pool import ingest

    if home.exists():
        shutil.rmtree(home)
    _link_store(home, store)
    s = _home_settings(settings, home)
    engine = init_db(s.db_url)
    ingest(s, engine, pool, str(manifest))
    _encode(s, engine, pool)
    return s, engine


def prepare(settings: Settings, cfg: SimConfig, cache_dir: Path) -> Prepared:
    """Build (or reuse) the pools, the shared features, v0 and the template databases."""
    cache_dir = cache_dir.resolve()
    store = cache_dir / "store"
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    seed_seed, eval_seed = 10_000 + cfg.pool_seed, 20_000 + cfg.pool_seed
    seed_manifest = _make_pool(cache_dir / "pools" / f"seed-{cfg.seed_pool_size}-{seed_seed}",
                               cfg.seed_pool_size, seed_seed)
    eval_manifest = _make_pool(cache_dir / "pools" / f"eval-{cfg.pool_size}-{eval_seed}",
                               cfg.pool_size, eval_seed)
    seconds["pools"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    v0_dir, v0 = _prepare_v0(settings, cfg, cache_dir, store, seed_manifest, seed_seed)
    seconds["v0"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    plain, prior = _prepare_templates(settings, cfg, cache_dir, store, eval_manifest, eval_seed,
                                      v0_dir, v0)
    seconds["eval"] = time.perf_counter() - t2
    return Prepared(cache_dir, store, eval_manifest, plain, prior, v0, seconds)


def _prepare_v0(settings: Settings, cfg: SimConfig, cache_dir: Path, store: Path,
                seed_manifest: Path, seed_seed: int) -> tuple[Path, dict]:
    """v0: the scorer "trained elsewhere", on crowd comparisons of the seed pool (cached)."""
    from scorer.demo_pool import read_truth
    from scorer.store import ModelVersion, session_scope
    from scorer.versions import head_path
    from training.comparisons import import_pairs
    from training.workflow import train_version

    v0_key = {"n": cfg.seed_pool_size, "seed": seed_seed, "per": cfg.crowd_comparisons_per_gif,
              "k": cfg.crowd_k, "enc": settings.scoring.encoder, "sampling": settings.scoring.sampling,
              "version": 1}
    v0_dir = cache_dir / f"v0-{_stamp(v0_key)}"
    v0_meta = v0_dir / "v0.json"
    if not v0_meta.is_file():
        s, engine = _pool_home(settings, v0_dir / "home", store, "seed", seed_manifest)
        rep = import_pairs(engine, crowd_rows(read_truth(seed_manifest), cfg.crowd_comparisons_per_gif,
                                              cfg.crowd_k, seed_seed), source="import")
        _say(f"simulate: v0 is trained on {rep.added} crowd comparisons of the seed pool")
        report = train_version(s, engine, pool="seed", device="cpu")
        with session_scope(engine) as ss:
            mv = ss.get(ModelVersion, report.model_version_id)
            assert mv is not None
            head = v0_dir / "v0-head.pt"
            shutil.copyfile(head_path(s, mv), head)
            meta = {"name": "v0", "encoder_id": mv.encoder_id, "sampling": mv.sampling,
                    "head_kind": mv.head_kind, "path": str(head), "config": mv.config,
                    "metrics": mv.metrics, "crowd_comparisons": rep.added, "key": v0_key}
        engine.dispose()
        v0_meta.write_text(json.dumps(meta, indent=1, default=str))
    return v0_dir, json.loads(v0_meta.read_text())


def _prepare_templates(settings: Settings, cfg: SimConfig, cache_dir: Path, store: Path,
                       eval_manifest: Path, eval_seed: int, v0_dir: Path, v0: dict
                       ) -> tuple[Path, Path]:
    """The evaluation pool's two template databases: unscored ("plain") and ranked by v0
    ("prior"), cached by pool and v0."""
    from scorer.pipeline import write_predictions
    from scorer.pool import pool_gifs
    from scorer.store import session_scope
    from scorer.versions import create_candidate
    from training.workflow import activate_version

    tpl_key = {"n": cfg.pool_size, "seed": eval_seed, "v0": v0_dir.name, "version": 2}
    tpl_dir = cache_dir / f"eval-{_stamp(tpl_key)}"
    plain, prior = tpl_dir / "plain.db", tpl_dir / "prior.db"
    if prior.is_file():
        return plain, prior
    home = tpl_dir / "home"
    s, engine = _pool_home(settings, home, store, "eval", eval_manifest)
    engine.dispose()
    _copy_db(home / "moodgif.db", plain)
    # v0 is the scorer shipped to every installation, so it ranks any pool: the "pools" its
    # training home recorded (["seed"]) would make the evaluation pool out of its domain
    # (scorer.pipeline.in_domain) and v0 would write no predictions there, leaving `prior`
    # unscored (random) and `both` without its prior.
    v0_config = {**(v0["config"] or {}), "pools": None}
    with session_scope(engine) as ss:
        mv_id = create_candidate(ss, name="v0 (trained on the seed pool's crowd votes)",
                                 encoder_id=v0["encoder_id"], sampling=v0["sampling"],
                                 head_kind=v0["head_kind"], path=v0["path"],
                                 config=v0_config, metrics=v0["metrics"]).id
    if not write_predictions(s, engine, mv_id, pool_gifs(engine, "eval")):
        raise ValueError("v0 wrote no predictions on the evaluation pool: the prior "
                         "strategies would run unscored")
    activate_version(engine, mv_id, None)
    engine.dispose()
    _copy_db(home / "moodgif.db", tpl_dir / "prior.tmp.db")
    os.replace(tpl_dir / "prior.tmp.db", prior)
    return plain, prior
