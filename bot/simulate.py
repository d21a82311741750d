"""`moodgif simulate`: the closed loop with virtual users, proving suggestions improve with use.

A demo pool whose true 17 scores are known stands in for a team's GIF pool. Virtual users
send `/gif` requests through the same `BotCore` the adapters use; the scheduled retrain job
(`training.retrain.scheduled_job`, called directly every K requests on a simulated clock)
turns their clicks into a new Bradley-Terry fit, head and scores; the ranker picks the new
version up through its own refresh. After every retrain the ranking the bot would show is
measured against the truth.

**The truth is used only to drive the virtual users and to measure.** The ranker sees the
model's predictions and the votes, never the manifest's truth columns.

Where the scorer prior comes from: the product ships a scorer trained elsewhere (the paper
trained on GIFGIF). The simulation does the same honestly: a separate *seed* demo pool (its
own random seed, so other GIFs) gets GIFGIF-style crowd comparisons drawn from its truth with
Bradley-Terry noise; the real training code fits Bradley-Terry and trains a head on them
(model version "v0"); v0 scores the evaluation pool, and that is the prior.

Strategies, each in its own fresh database and home (sharing one feature cache):

- ``prior``       the scorer prior only: v0 ranks, no retrain ever runs;
- ``feedback``    no scorer prior: the pool starts unscored (random order), Bradley-Terry
  with prior strength 0; everything the bot knows comes from the users (the heads the
  retrain trains on their votes included);
- ``both``        the product: v0 as prior plus the retrain loop, no polls;
- ``both+polls``  the product with "which is more X?" polls (`settings.ranking.poll_share`);
- ``random``      nothing scored, nothing learned: uniform random suggestions.

Everything heavy is cached under `cache_dir` (default `bench-out/sim-cache`): the demo pools,
the GIF files and their features (shared by every strategy and every run), v0 and the
template databases, so only the first run pays for encoding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorer.emotions import N_EMOTIONS, NAMES
from scorer.settings import Settings

log = logging.getLogger("moodgif.bot.simulate")

STRATEGIES: tuple[str, ...] = ("prior", "feedback", "both", "both+polls", "random")
ADVERSARIAL_SUFFIX = "@adv"  # "both@adv" = the same strategy with adversarial users


def product_strategy() -> str:
    """The strategy that is the product as shipped: prior + feedback, with polls only when
    the `poll_share` default turns them on."""
    return "both+polls" if Settings().ranking.poll_share > 0 else "both"
SIM_PLATFORM = "sim"
POLL_SHARE_WHEN_OFF = 0.15  # the poll share `both+polls` runs with when the default is 0
SIM_WORKSPACE = "sim-team"

# How popular each emotion is among requests: a Zipf-like mix over this order (the common
# chat feelings first, the self-conscious ones last).
POPULARITY: tuple[str, ...] = (
    "happiness", "amusement", "excitement", "sadness", "anger", "surprise", "satisfaction",
    "relief", "disgust", "contentment", "fear", "pleasure", "pride", "embarrassment",
    "contempt", "guilt", "shame",
)
# What virtual users type for each emotion (checked against the intent parser at start).
WORDS: dict[str, tuple[str, ...]] = {
    "amusement": ("lol", "amusement", "funny", "haha"),
    "anger": ("angry", "anger", "furious", "mad"),
    "contempt": ("contempt", "scorn", "disdain"),
    "contentment": ("content", "contentment", "cozy"),
    "disgust": ("gross", "disgust", "disgusting", "eww"),
    "embarrassment": ("embarrassed", "awkward", "embarrassment"),
    "excitement": ("excited", "excitement", "hyped"),
    "fear": ("scared", "fear", "afraid", "terrified"),
    "guilt": ("guilty", "guilt"),
    "happiness": ("happy", "happiness", "joy", "glad"),
    "pleasure": ("pleasure", "delight", "bliss"),
    "pride": ("proud", "pride"),
    "relief": ("relieved", "relief", "phew"),
    "sadness": ("sad", "sadness", "crying", "upset"),
    "satisfaction": ("satisfied", "satisfaction", "nailed it"),
    "shame": ("ashamed", "shame"),
    "surprise": ("surprised", "surprise", "wow", "shocked"),
}


# ---------------------------------------------------------------------------------------
# configuration


@dataclass
class UserModel:
    """How virtual users act on the truth (all scales are the truth's [0, 1])."""

    n_users: int = 300
    n_channels: int = 20
    seconds_between_requests: float = 60.0  # simulated clock step per request
    accept_quantile: tuple[float, float] = (0.80, 0.95)  # per-user acceptance level range
    choice_k: float = 12.0  # Bradley-Terry sharpness of send/shuffle and 👍/👎 decisions
    poll_k: float = 12.0  # sharpness of poll answers
    poll_tie: float = 0.02  # "neither" when the two truths are this close
    max_shuffles: int = 3
    vote_prob: float = 0.3  # chance that each of two channel members votes on a post
    vote_quantile: float = 0.75  # 👍 when the GIF beats this level of the emotion
    answer_poll_prob: float = 0.8
    noisy_share: float = 0.05  # users who click at random
    zipf_s: float = 1.0  # emotion popularity ~ 1 / rank^s


@dataclass
class SimConfig:
    pool_size: int = 2000
    requests: int = 5000
    retrain_every: int = 500
    strategies: tuple[str, ...] = STRATEGIES
    adversarial: float = 0.0  # share of adversarial users in the adversarial comparison run
    seed: int = 0  # the users, the core's draws, the held-out pairs
    pool_seed: int = 0  # the two demo pools (a new one means encoding them: minutes)
    seed_pool_size: int = 800  # the "GIFGIF" the shipped scorer was trained on
    crowd_comparisons_per_gif: int = 6  # per GIF and emotion, GIFGIF-style
    crowd_k: float = 5.0  # GIFGIF crowds are noisy: Bradley-Terry sharpness of their answers
    heldout_pairs: int = 500  # per emotion, truth-derived, never recorded
    seeds: int = 1  # each strategy runs with user seeds seed .. seed + seeds - 1
    workers: int = 2  # strategies run in parallel processes
    extra_checkpoints: tuple[int, ...] = (1000,)
    users: UserModel = field(default_factory=UserModel)

    def checkpoints(self) -> list[int]:
        pts = set(range(self.retrain_every, self.requests + 1, self.retrain_every))
        pts |= {c for c in self.extra_checkpoints if 0 < c <= self.requests}
        pts.add(self.requests)
        return [0, *sorted(pts)]


@dataclass(frozen=True)
class StrategySpec:
    name: str
    prior: bool  # start from v0's predictions
    retrain: bool  # run the scheduled retrain every K requests
    polls: bool  # show polls (settings.ranking.poll_share); else poll_share = 0
    prior_strength: float | None = None  # None = settings.training.bt_prior_strength
    adversarial: float = 0.0


def strategy_spec(name: str, adversarial: float = 0.0) -> StrategySpec:
    base, _, adv = name.partition(ADVERSARIAL_SUFFIX)
    specs = {
        "prior": StrategySpec("prior", prior=True, retrain=False, polls=False),
        "feedback": StrategySpec("feedback", prior=False, retrain=True, polls=False,
                                 prior_strength=0.0),
        "both": StrategySpec("both", prior=True, retrain=True, polls=False),
        "both+polls": StrategySpec("both+polls", prior=True, retrain=True, polls=True),
        "random": StrategySpec("random", prior=False, retrain=False, polls=False),
    }
    if base not in specs:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)} "
                         f"(optionally with {ADVERSARIAL_SUFFIX})")
    spec = specs[base]
    if adv is not None and ADVERSARIAL_SUFFIX in name:
        spec = dataclasses.replace(spec, name=name, adversarial=adversarial)
    return spec


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
    from scorer.pool import ingest
    from scorer.store import init_db

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
    from scorer.demo_pool import read_truth
    from scorer.store import ModelVersion, session_scope
    from training.workflow import activate_version, train_version

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

    # v0: the scorer "trained elsewhere", on crowd comparisons of the seed pool.
    v0_key = {"n": cfg.seed_pool_size, "seed": seed_seed, "per": cfg.crowd_comparisons_per_gif,
              "k": cfg.crowd_k, "enc": settings.scoring.encoder, "sampling": settings.scoring.sampling,
              "version": 1}
    v0_dir = cache_dir / f"v0-{_stamp(v0_key)}"
    v0_meta = v0_dir / "v0.json"
    t1 = time.perf_counter()
    if not v0_meta.is_file():
        home = v0_dir / "home"
        s, engine = _pool_home(settings, home, store, "seed", seed_manifest)
        from training.comparisons import import_pairs

        truth_seed = read_truth(seed_manifest)
        rep = import_pairs(engine, crowd_rows(truth_seed, cfg.crowd_comparisons_per_gif,
                                              cfg.crowd_k, seed_seed), source="import")
        _say(f"simulate: v0 is trained on {rep.added} crowd comparisons of the seed pool")
        report = train_version(s, engine, pool="seed", device="cpu")
        with session_scope(engine) as ss:
            mv = ss.get(ModelVersion, report.model_version_id)
            assert mv is not None
            head = v0_dir / "v0-head.pt"
            shutil.copyfile(s.models_dir / mv.path, head)
            meta = {"name": "v0", "encoder_id": mv.encoder_id, "sampling": mv.sampling,
                    "head_kind": mv.head_kind, "path": str(head), "config": mv.config,
                    "metrics": mv.metrics, "crowd_comparisons": rep.added, "key": v0_key}
        engine.dispose()
        v0_meta.write_text(json.dumps(meta, indent=1, default=str))
    v0 = json.loads(v0_meta.read_text())
    seconds["v0"] = time.perf_counter() - t1

    # the evaluation pool's templates
    t2 = time.perf_counter()
    tpl_key = {"n": cfg.pool_size, "seed": eval_seed, "v0": v0_dir.name, "version": 1}
    tpl_dir = cache_dir / f"eval-{_stamp(tpl_key)}"
    plain, prior = tpl_dir / "plain.db", tpl_dir / "prior.db"
    if not prior.is_file():
        home = tpl_dir / "home"
        s, engine = _pool_home(settings, home, store, "eval", eval_manifest)
        engine.dispose()
        _copy_db(home / "moodgif.db", plain)
        with session_scope(engine) as ss:
            mv = ModelVersion(name="v0 (trained on the seed pool's crowd votes)",
                              encoder_id=v0["encoder_id"], sampling=v0["sampling"],
                              head_kind=v0["head_kind"], path=v0["path"], config=v0["config"],
                              metrics=v0["metrics"], status="candidate")
            ss.add(mv)
            ss.flush()
            mv_id = mv.id
        from scorer.pipeline import write_predictions
        from scorer.pool import pool_gifs

        write_predictions(s, engine, mv_id, pool_gifs(engine, "eval"))
        activate_version(engine, mv_id, None)
        engine.dispose()
        _copy_db(home / "moodgif.db", tpl_dir / "prior.tmp.db")
        os.replace(tpl_dir / "prior.tmp.db", prior)
    seconds["eval"] = time.perf_counter() - t2
    return Prepared(cache_dir, store, eval_manifest, plain, prior, v0, seconds)


# ---------------------------------------------------------------------------------------
# metrics


@dataclass
class Truth:
    """The evaluation pool's truth, aligned to a list of shas, and the held-out pairs."""

    shas: list[str]
    index: dict[str, int]
    values: np.ndarray  # (N, 17)
    pairs: list[tuple[np.ndarray, np.ndarray]]  # per emotion: (i, j) with truth[i] > truth[j]
    relevant: list[np.ndarray]  # per emotion: bool (N,) the true top 1 %

    @classmethod
    def load(cls, manifest: Path, n_pairs: int, seed: int) -> Truth:
        from scorer.demo_pool import read_truth

        return cls.from_mapping(read_truth(manifest), n_pairs, seed)

    @classmethod
    def from_mapping(cls, truth: dict[str, np.ndarray], n_pairs: int, seed: int) -> Truth:
        shas = sorted(truth)
        values = np.stack([truth[s] for s in shas])
        rng = np.random.default_rng(seed + 777)
        n = len(shas)
        pairs, relevant = [], []
        top = max(5, n // 100)
        for e in range(N_EMOTIONS):
            i = rng.integers(0, n, n_pairs * 3)
            j = rng.integers(0, n, n_pairs * 3)
            d = values[i, e] - values[j, e]
            ok = np.flatnonzero(np.abs(d) >= 0.05)[:n_pairs]
            a = np.where(d[ok] > 0, i[ok], j[ok])
            b = np.where(d[ok] > 0, j[ok], i[ok])
            pairs.append((a, b))
            rel = np.zeros(n, bool)
            rel[np.argsort(-values[:, e], kind="stable")[:top]] = True
            relevant.append(rel)
        return cls(shas, {s: k for k, s in enumerate(shas)}, values, pairs, relevant)


def _ndcg_at(scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, kind="stable")[:k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((gains[top] * disc[: len(top)]).sum())
    ideal = np.sort(gains)[::-1][:k]
    idcg = float((ideal * disc[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def measure(matrix: Any, truth: Truth, rng: np.random.Generator) -> dict[str, Any]:
    """What the bot would show (deterministic top 5 of the posterior, no exploration) against
    the truth, per emotion and averaged over emotions."""
    n = len(truth.shas)
    cols = np.full(n, -1, dtype=np.int64)
    for k, sha in enumerate(truth.shas):
        cols[k] = matrix.index.get(sha, -1)
    per: dict[str, list[float]] = {"ndcg5": [], "p1": [], "spearman": [], "pair_acc": []}
    for e in range(N_EMOTIONS):
        if matrix.scored:
            post = np.where(cols >= 0, matrix.mean[e][np.maximum(cols, 0)], -np.inf)
            post = post.astype(np.float64)
        else:  # nothing scored: the bot shows GIFs in random order
            post = rng.random(n)
        # ties (e.g. many GIFs with the same prior) broken at random, not by sha order
        jitter = rng.random(n) * 1e-9
        score = post + jitter
        gains = truth.values[:, e]
        per["ndcg5"].append(_ndcg_at(score, gains, 5))
        per["p1"].append(float(truth.relevant[e][int(np.argmax(score))]))
        finite = np.isfinite(post)
        per["spearman"].append(_spearman(post[finite], gains[finite]) if matrix.scored else 0.0)
        a, b = truth.pairs[e]
        diff = score[a] - score[b]
        per["pair_acc"].append(float(np.mean((diff > 0) + 0.5 * (diff == 0))) if len(a) else 0.5)
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in per.items()}
    out["per_emotion"] = {k: [round(x, 4) for x in v] for k, v in per.items()}
    return out


def voter_weights(engine: Any, settings: Settings, pop: Population) -> dict[str, float]:
    """How the retrain weighs each kind of virtual person (training/reliability.py): their
    mean trust; the share of the judgements *against* the truly best GIFs (the true top 1 %
    losing to the send bar or the thumbs reference) that adversarial people made; and how
    much of the weight of those adversarial judgements, and of normal people's judgements
    on the same GIFs, the weighing keeps. The fit never sees the kinds: this only measures."""
    from training.comparisons import is_reference, load_ledger, user_hash
    from training.judgements import preview_judgements, weigh_ledger_people, with_judgements

    truth = pop.truth
    known = set(truth.shas)
    ledger, _ = load_ledger(engine, known_gifs=known, items=truth.shas)
    if not len(ledger):
        return {}
    raw = with_judgements(ledger, preview_judgements(engine, known), weigh_people=False)
    weighed, report = weigh_ledger_people(raw)
    kind = {user_hash(engine, settings, SIM_PLATFORM, u.user_id): u.kind for u in pop.users}
    out: dict[str, float] = {}
    for k in ("normal", "noisy", "adversarial"):
        trust = [t for who, t in report.trust.items() if kind.get(who) == k]
        if trust:
            out[f"trust_{k}"] = float(np.mean(trust))
    ref = np.asarray([is_reference(i) for i in raw.ids], dtype=bool)
    top = np.zeros((len(raw.ids), N_EMOTIONS), dtype=bool)
    for e in range(N_EMOTIONS):
        top[np.flatnonzero(truth.relevant[e]), e] = True  # ids lead with truth.shas
    e = raw.emotion.astype(np.int64)
    lost = ref[raw.winner] & top[raw.loser, e]
    on_top = lost | (ref[raw.loser] & top[raw.winner, e])
    kinds = np.asarray([kind.get(w, "") for w in raw.who], dtype=object)
    adv, normal = kinds == "adversarial", kinds == "normal"
    total = float(raw.weight[lost].sum())
    out["adv_share_top_losses"] = float(raw.weight[lost & adv].sum()) / total if total else 0.0
    for label, rows in (("adv_kept_top_losses", lost & adv), ("normal_kept_top", on_top & normal)):
        before = float(raw.weight[rows].sum())
        if before:
            out[label] = float(weighed[rows].sum()) / before
    return out


# ---------------------------------------------------------------------------------------
# virtual users


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class VirtualUser:
    user_id: str
    kind: str  # normal | noisy | adversarial
    accept_q: float
    channel: str


class Population:
    """The team: who asks, what for, and how each person judges a GIF."""

    def __init__(self, model: UserModel, truth: Truth, *, adversarial: float, seed: int,
                 parser: Any) -> None:
        self.m = model
        self.truth = truth
        self.rng = np.random.default_rng(seed)
        rng = np.random.default_rng(seed + 1)  # the team itself is the same for every strategy
        kinds = np.array(["normal"] * model.n_users, dtype=object)
        order = rng.permutation(model.n_users)
        n_adv = round(adversarial * model.n_users)
        n_noisy = round(model.noisy_share * model.n_users)
        kinds[order[:n_adv]] = "adversarial"
        kinds[order[n_adv:n_adv + n_noisy]] = "noisy"
        lo, hi = model.accept_quantile
        self.users = [
            VirtualUser(f"u{i:04d}", str(kinds[i]), float(rng.uniform(lo, hi)),
                        f"c{int(rng.integers(model.n_channels)):02d}")
            for i in range(model.n_users)
        ]
        by_channel: dict[str, list[int]] = {}
        for i, u in enumerate(self.users):
            by_channel.setdefault(u.channel, []).append(i)
        self.by_channel = by_channel
        # how much each person asks: a few people ask a lot
        w = rng.pareto(1.5, model.n_users) + 1.0
        self.user_p = w / w.sum()
        ranks = np.array([POPULARITY.index(name) + 1 for name in NAMES], dtype=np.float64)
        p = ranks ** -model.zipf_s
        self.emotion_p = p / p.sum()
        # per emotion: truth quantiles (what "good" means to a person asking for it)
        self.q_grid = np.linspace(0.0, 1.0, 201)
        self.quant = np.quantile(truth.values, self.q_grid, axis=0)  # (201, 17)
        self.words = {e: [w for w in WORDS[NAMES[e]] if _maps_to(parser, w, NAMES[e])] or [NAMES[e]]
                      for e in range(N_EMOTIONS)}
        self.posted: dict[str, list[tuple[float, int]]] = {}  # channel -> (time, truth row)

    def columns(self, matrix: Any) -> np.ndarray:
        """Each truth row's column in `matrix` (-1: not in it); cached per snapshot."""
        if getattr(self, "_cols_for", None) is not matrix:
            self._cols = np.asarray([matrix.index.get(s, -1) for s in self.truth.shas], np.int64)
            self._cols_for = matrix
        return self._cols

    def allowed(self, matrix: Any, ceiling: str) -> np.ndarray:
        """Per truth row: in the snapshot and allowed by the rating ceiling; cached per
        snapshot (read only: copy before changing it)."""
        key = (id(matrix), ceiling)
        if getattr(self, "_allowed_key", None) != key or self._allowed_for is not matrix:
            pen, _ = matrix.penalty(None, ceiling)
            cols = self.columns(matrix)
            self._allowed = np.isfinite(pen[np.maximum(cols, 0)]) & (cols >= 0)
            self._allowed_key, self._allowed_for = key, matrix
        return self._allowed

    def record_post(self, channel: str, sha: str, at: float) -> None:
        """A GIF reached `channel` at simulated time `at` (what the core keeps as an
        impression: the ranker does not offer it there again within the repeat window)."""
        k = self.truth.index.get(sha)
        if k is not None:
            self.posted.setdefault(channel, []).append((at, k))

    def posted_since(self, channel: str, since: float) -> list[int]:
        """Truth rows of the GIFs posted in `channel` at or after `since`."""
        posts = self.posted.get(channel)
        if not posts:
            return []
        while posts and posts[0][0] < since:  # posts arrive in time order: drop the old
            posts.pop(0)
        return [k for _at, k in posts]

    def level(self, e: int, q: float) -> float:
        return float(np.interp(q, self.q_grid, self.quant[:, e]))

    def t(self, sha: str, e: int) -> float:
        k = self.truth.index.get(sha)
        return float(self.truth.values[k, e]) if k is not None else 0.0

    def draw_request(self) -> tuple[VirtualUser, int, str]:
        u = self.users[int(self.rng.choice(len(self.users), p=self.user_p))]
        e = int(self.rng.choice(N_EMOTIONS, p=self.emotion_p))
        words = self.words[e]
        return u, e, words[int(self.rng.integers(len(words)))]

    def voters(self, u: VirtualUser) -> list[VirtualUser]:
        mates = [self.users[i] for i in self.by_channel[u.channel] if self.users[i] is not u]
        out = []
        for _ in range(2):
            if mates and self.rng.random() < self.m.vote_prob:
                out.append(mates[int(self.rng.integers(len(mates)))])
        return list({v.user_id: v for v in out}.values())

    def wants(self, u: VirtualUser, sha: str, e: int) -> bool:
        """Send (True) or shuffle on: a BT choice of the GIF against the person's bar."""
        if u.kind == "noisy":
            return bool(self.rng.random() < 0.5)
        if u.kind == "adversarial":
            return bool(self.rng.random() < 0.4)  # sends whatever, at random
        p = _expit(self.m.choice_k * (self.t(sha, e) - self.level(e, u.accept_q)))
        return bool(self.rng.random() < p)

    def settle(self, u: VirtualUser, best: float, e: int) -> bool:
        """Out of shuffles: send the best one seen (True) or cancel."""
        if u.kind != "normal":
            return bool(self.rng.random() < 0.5)
        margin = 0.1
        p = _expit(self.m.choice_k * (best - self.level(e, u.accept_q) + margin))
        return bool(self.rng.random() < p)

    def thumb(self, v: VirtualUser, sha: str, e: int) -> bool:
        if v.kind == "adversarial":
            return False
        if v.kind == "noisy":
            return bool(self.rng.random() < 0.5)
        p = _expit(self.m.choice_k * (self.t(sha, e) - self.level(e, self.m.vote_quantile)))
        return bool(self.rng.random() < p)

    def poll_answer(self, u: VirtualUser, left: str, right: str, e: int) -> str | None:
        if self.rng.random() >= self.m.answer_poll_prob:
            return None
        if u.kind == "noisy":
            return ("left", "right", "neither")[int(self.rng.integers(3))]
        tl, tr = self.t(left, e), self.t(right, e)
        if abs(tl - tr) < self.m.poll_tie:
            return "neither"
        left_wins = self.rng.random() < _expit(self.m.poll_k * (tl - tr))
        if u.kind == "adversarial":
            left_wins = not left_wins  # answers against what they see
        return "left" if left_wins else "right"


def _maps_to(parser: Any, word: str, emotion: str) -> bool:
    try:
        r = parser.parse(word)
    except Exception:  # a parser hiccup must not stop the simulation: fall back to the name
        return False
    return r.kind == "match" and r.emotion == emotion


# ---------------------------------------------------------------------------------------
# one strategy


class SimClock:
    """Simulated wall clock (seconds since the epoch) shared by the core and the ranker."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Window:
    """What users did between two checkpoints."""

    requests: int = 0
    previews: int = 0
    sent_first: int = 0
    sends: int = 0
    cancels: int = 0
    shuffles: int = 0
    votes: int = 0
    polls_shown: int = 0
    polls_answered: int = 0
    regret_sum: float = 0.0  # sum over previews of (best allowed truth - first GIF's truth)
    first_top: int = 0  # previews whose first GIF is in the emotion's true top 1 %
    not_preview: dict = field(default_factory=dict)

    def row(self) -> dict:
        d = dataclasses.asdict(self)
        d["window_requests"] = d.pop("requests")
        d["sent_without_shuffle"] = self.sent_first / self.previews if self.previews else 0.0
        # shuffles a person made per GIF that reached the channel (cancels count as cost too)
        d["shuffles_per_send"] = self.shuffles / self.sends if self.sends else 0.0
        d["regret"] = self.regret_sum / self.previews if self.previews else 0.0
        d["first_p1"] = self.first_top / self.previews if self.previews else 0.0
        return d


def first_regret(core: Any, pop: Population, actor: Any, e: int, first: str) -> float:
    """Regret of a preview's first GIF: the truth of the best GIF the bot could have shown
    first (allowed in the channel, not posted there within the repeat window, as the ranker
    sees it) minus the first GIF's truth. 0 = the best possible first suggestion.

    What was posted where comes from the simulation's own record of its sends (the same
    rows the core writes as impressions), not from a database query per request."""
    truth = pop.truth
    matrix = core.ranker.matrix()
    allowed = pop.allowed(matrix, core.settings.chat.rating_ceiling)
    if core.settings.ranking.repeat_window_hours > 0:
        since = core.clock() - 3600 * core.settings.ranking.repeat_window_hours
        recent = pop.posted_since(actor.channel, since)
        if recent:
            allowed = allowed.copy()
            allowed[recent] = False
    if not allowed.any():  # everything was posted recently: the ranker offers repeats
        allowed = pop.columns(matrix) >= 0
    best = float(truth.values[allowed, e].max()) if allowed.any() else 0.0
    return max(0.0, best - pop.t(first, e))


async def one_request(core: Any, pop: Population, w: Window) -> None:
    """One virtual person asks, looks, shuffles, sends or cancels, votes, answers a poll."""
    from bot.events import Actor

    u, e, word = pop.draw_request()
    actor = Actor(SIM_PLATFORM, SIM_WORKSPACE, u.channel, u.user_id)
    w.requests += 1
    reply = await core.request(actor, word)
    if reply.kind != "preview" or reply.preview is None:
        w.not_preview[reply.kind] = w.not_preview.get(reply.kind, 0) + 1
        return
    w.previews += 1
    sid = reply.preview.session_id
    if reply.preview.cards:
        first = reply.preview.cards[0].sha256
        w.regret_sum += first_regret(core, pop, actor, e, first)
        k = pop.truth.index.get(first)
        w.first_top += bool(k is not None and pop.truth.relevant[e][k])
    best_sha, best = None, -1.0
    sent = False
    if u.kind == "adversarial":
        for _ in range(int(pop.rng.integers(0, pop.m.max_shuffles + 1))):
            nxt = await core.shuffle(actor, sid)
            if nxt.kind != "preview":
                break
            w.shuffles += 1
        r = await core.send(actor, sid)
        sent = r.kind == "posted"
        posted = r
    else:
        posted = None
        for step in range(pop.m.max_shuffles + 1):
            cards = reply.preview.cards if reply.preview else ()
            card = cards[0] if cards else None
            if card is None:
                break
            s = pop.t(card.sha256, e)
            if s > best:
                best_sha, best = card.sha256, s
            if pop.wants(u, card.sha256, e):
                posted = await core.send(actor, sid, card.sha256)
                sent = posted.kind == "posted"
                if sent and step == 0:
                    w.sent_first += 1
                break
            if step == pop.m.max_shuffles:
                break
            nxt = await core.shuffle(actor, sid)
            if nxt.kind != "preview":
                break
            w.shuffles += 1
            reply = nxt
        if posted is None:
            if best_sha is not None and pop.settle(u, best, e):
                posted = await core.send(actor, sid, best_sha)
                sent = posted.kind == "posted"
            else:
                await core.cancel(actor, sid)
                w.cancels += 1
    if sent and posted is not None and posted.post is not None:
        w.sends += 1
        pop.record_post(u.channel, posted.post.card.sha256, core.clock())
        for v in pop.voters(u):
            voter = Actor(SIM_PLATFORM, SIM_WORKSPACE, u.channel, v.user_id)
            r = await core.vote(voter, post_id=posted.post.post_id,
                                up=pop.thumb(v, posted.post.card.sha256, e))
            w.votes += r.kind == "ack"
    poll = await core.maybe_poll(actor, NAMES[e])
    if poll is not None and poll.poll is not None:
        w.polls_shown += 1
        answer = pop.poll_answer(u, poll.poll.left.sha256, poll.poll.right.sha256, e)
        if answer is not None:
            r = await core.answer_poll(actor, poll.poll.poll_id, answer)
            w.polls_answered += r.kind == "ack"


class InlineExecutor(ThreadPoolExecutor):
    """Runs what the core hands to a worker thread right away, on the simulation's thread.

    The core answers each user action in a worker thread (`asyncio.to_thread`), so that a
    chat process keeps serving others meanwhile. The simulation awaits every action before
    the next, so the hop buys nothing there and costs a thread hand-over per action (most
    of a virtual request on a loaded machine). Same calls, same order, same results."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the awaiting coroutine, as a thread would
            fut.set_exception(exc)
        return fut


def run_strategy(settings: Settings, cfg: SimConfig, prepared: Prepared, name: str,
                 run_dir: Path) -> dict:
    """One strategy from a fresh database to the last checkpoint; returns its curve."""
    import torch

    torch.set_num_threads(1)  # strategies run side by side on a few cores
    logging.getLogger("moodgif").setLevel(logging.WARNING)
    spec = strategy_spec(name, cfg.adversarial)
    home = run_dir / f"{name.replace('+', '_').replace('@', '_')}-s{cfg.seed}"
    if home.exists():
        shutil.rmtree(home)
    _link_store(home, prepared.store)
    _copy_db(prepared.template_prior if spec.prior else prepared.template_plain,
             home / "moodgif.db")
    # `both+polls` measures what polls add: with polls off by default (settings.ranking.poll_share 0)
    # it runs with POLL_SHARE_WHEN_OFF, so "polls on vs off" stays measured.
    share = settings.ranking.poll_share if settings.ranking.poll_share > 0 else POLL_SHARE_WHEN_OFF
    overrides: dict[str, Any] = {"poll_share": share if spec.polls else 0.0,
                                 "user_hash_salt": f"simulate-{cfg.seed}"}
    if spec.prior_strength is not None:
        overrides["bt_prior_strength"] = spec.prior_strength
    s = _home_settings(settings, home, **overrides)
    return asyncio.run(_run_async(s, cfg, prepared, spec))


async def _run_async(s: Settings, cfg: SimConfig, prepared: Prepared, spec: StrategySpec) -> dict:
    from bot.core import BotCore
    from bot.intent import get_parser
    from bot.ranking import Ranker
    from scorer.store import init_db
    from training.retrain import scheduled_job

    asyncio.get_running_loop().set_default_executor(InlineExecutor(max_workers=1))
    engine = init_db(s.db_url)
    clock = SimClock(time.time())
    # The ranker's own clock moves only at checkpoints, where new versions appear: on the
    # shared clock (a minute per request) it re-checked the version stamp every request.
    versions = SimClock(0.0)
    ranker = Ranker(engine, clock=versions)
    parser = get_parser(s)
    core = BotCore(s, engine, intent_parser=parser, clock=clock, ranker=ranker,
                   seed=cfg.seed + 3)
    truth = Truth.load(prepared.eval_manifest, cfg.heldout_pairs, cfg.seed)
    pop = Population(cfg.users, truth, adversarial=spec.adversarial, seed=cfg.seed + 11,
                     parser=parser)
    mrng = np.random.default_rng(cfg.seed + 5)
    points = cfg.checkpoints()
    curve: list[dict] = []
    timing = {"requests_s": 0.0, "retrain_s": 0.0, "measure_s": 0.0}

    def checkpoint(done: int, window: Window, retrain: dict | None) -> None:
        t = time.perf_counter()
        clock.advance(10 * 60)
        versions.advance(10 * 60)  # past the ranker's stamp interval: it sees new versions
        matrix = core.ranker.matrix()
        point = {**measure(matrix, truth, mrng), **window.row(), "requests": done,
                 "model_version_id": matrix.model_version_id, "fit_id": matrix.fit_id,
                 "n_bt": matrix.n_bt}
        if spec.retrain and done:
            point.update(voter_weights(engine, s, pop))
        if retrain:
            point["retrain"] = retrain
        curve.append(point)
        timing["measure_s"] += time.perf_counter() - t

    checkpoint(0, Window(), None)
    done = 0
    for target in points[1:]:
        window = Window()
        t = time.perf_counter()
        while done < target:
            clock.advance(cfg.users.seconds_between_requests)
            await one_request(core, pop, window)
            done += 1
        timing["requests_s"] += time.perf_counter() - t
        retrain = None
        if spec.retrain and target % cfg.retrain_every == 0:
            t = time.perf_counter()
            outcome = await asyncio.to_thread(scheduled_job, s)
            took = time.perf_counter() - t
            timing["retrain_s"] += took
            retrain = {"status": outcome.status, "message": outcome.message[:200],
                       "model_version_id": outcome.model_version_id, "seconds": round(took, 1)}
        checkpoint(done, window, retrain)
    engine.dispose()
    return {"strategy": spec.name, "seed": cfg.seed, "adversarial": spec.adversarial, "curve": curve,
            "timing": timing, "settings": {
                "poll_share": s.ranking.poll_share, "bt_prior_strength": s.training.bt_prior_strength,
                "exploration": s.ranking.exploration, "exploration_rate": s.ranking.exploration_rate,
                "bt_alpha": s.training.bt_alpha, "bt_ties": s.training.bt_ties}}


def _run_strategy_job(args: tuple) -> dict:
    settings, cfg, prepared, name, run_dir = args
    t = time.perf_counter()
    out = run_strategy(settings, cfg, prepared, name, run_dir)
    out["seconds"] = time.perf_counter() - t
    return out


# ---------------------------------------------------------------------------------------
# the whole run


@dataclass
class SimResult:
    config: dict
    prepared: dict
    runs: list[dict]
    seconds: float
    v0_quality: dict

    def names(self) -> list[str]:
        return list(dict.fromkeys(r["strategy"] for r in self.runs))

    def of(self, name: str) -> list[dict]:
        """Every run (one per user seed) of a strategy."""
        runs = [r for r in self.runs if r["strategy"] == name]
        if not runs:
            raise KeyError(name)
        return runs

    def run(self, name: str) -> dict:
        """The strategy's curve averaged over its seeds (per-emotion lists included)."""
        runs = self.of(name)
        curve = []
        for points in zip(*(r["curve"] for r in runs), strict=True):
            avg: dict[str, Any] = {"requests": points[0]["requests"]}
            for key, value in points[0].items():
                if key != "requests" and isinstance(value, int | float) and not isinstance(value, bool):
                    vals = [float(p[key]) for p in points if p.get(key) is not None]
                    avg[key] = float(np.mean(vals)) if vals else None
            avg["per_emotion"] = {k: np.mean([p["per_emotion"][k] for p in points], axis=0).tolist()
                                  for k in points[0]["per_emotion"]}
            avg["ndcg5_min"] = float(min(p["ndcg5"] for p in points))
            avg["ndcg5_max"] = float(max(p["ndcg5"] for p in points))
            curve.append(avg)
        timing = {k: float(np.mean([r["timing"][k] for r in runs])) for k in runs[0]["timing"]}
        return {"strategy": name, "seeds": [r.get("seed") for r in runs], "curve": curve,
                "timing": timing, "seconds": float(np.mean([r["seconds"] for r in runs])),
                "settings": runs[0]["settings"], "adversarial": runs[0].get("adversarial", 0.0),
                "retrains": sum(1 for p in runs[0]["curve"] if p.get("retrain"))}

    def point(self, name: str, requests: int) -> dict:
        curve = self.run(name)["curve"]
        return min(curve, key=lambda p: abs(p["requests"] - requests))

    def at(self, name: str, requests: int, metric: str = "ndcg5") -> float:
        return float(self.point(name, requests)[metric])

    def final(self, name: str, metric: str = "ndcg5") -> float:
        return float(self.run(name)["curve"][-1][metric])


def simulate(settings: Settings, cfg: SimConfig, *, cache_dir: Path,
             on_done: Callable[[str, dict], None] | None = None) -> SimResult:
    """Prepare the cache, run every strategy (in `cfg.workers` processes), return the curves."""
    import multiprocessing

    t0 = time.perf_counter()
    prepared = prepare(settings, cfg, cache_dir)
    names = list(cfg.strategies)
    run_dir = prepared.cache_dir / "runs" / f"seed{cfg.seed}-{os.getpid()}"
    jobs = [(settings, dataclasses.replace(cfg, seed=cfg.seed + i), prepared, n, run_dir)
            for i in range(max(1, cfg.seeds)) for n in names]
    runs: list[dict] = []
    if cfg.workers <= 1 or len(jobs) == 1:
        for job in jobs:
            r = _run_strategy_job(job)
            runs.append(r)
            if on_done:
                on_done(r["strategy"], r)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as ex:
            futures = [ex.submit(_run_strategy_job, job) for job in jobs]
            for fut in futures:
                r = fut.result()
                runs.append(r)
                if on_done:
                    on_done(r["strategy"], r)
    shutil.rmtree(run_dir, ignore_errors=True)
    result = SimResult(config=_config_dict(cfg), prepared={
        "v0": {k: prepared.v0.get(k) for k in ("name", "head_kind", "crowd_comparisons", "metrics")},
        "prepare_seconds": prepared.seconds}, runs=runs,
        seconds=time.perf_counter() - t0, v0_quality={})
    return result


def _config_dict(cfg: SimConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["strategies"] = list(cfg.strategies)
    return d


# ---------------------------------------------------------------------------------------
# outputs


METRICS = (("ndcg5", "NDCG@5"), ("p1", "P@1"), ("sent_without_shuffle", "sent 1st"),
           ("shuffles_per_send", "shuffles/send"), ("regret", "regret"),
           ("spearman", "Spearman"), ("pair_acc", "pair acc."))


def markdown_table(result: SimResult, at: Sequence[int]) -> str:
    head = ["strategy", "requests", *(label for _k, label in METRICS), "NDCG@5 range over seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in at:
        for name in result.names():
            p = result.point(name, n)
            cells = [f"`{name}`", f"{p['requests']:,}",
                     *(f"{p.get(key, float('nan')):.3f}" for key, _l in METRICS),
                     f"{p['ndcg5_min']:.3f} – {p['ndcg5_max']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def felt_table(result: SimResult) -> str:
    """Per strategy and checkpoint: what people feel beside NDCG@5 (window metrics are over
    the requests since the previous checkpoint)."""
    head = ["strategy", "requests", "NDCG@5", "P@1", "sent without a shuffle",
            "shuffles per send", "regret of the 1st GIF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in result.names():
        for p in result.run(name)["curve"][1:]:
            lines.append(f"| `{name}` | {p['requests']:,} | {p['ndcg5']:.3f} | {p['p1']:.3f} | "
                         f"{p.get('sent_without_shuffle', 0.0):.3f} | "
                         f"{p.get('shuffles_per_send', 0.0):.2f} | {p.get('regret', 0.0):.3f} |")
    return "\n".join(lines)


def product_name(result: SimResult) -> str:
    """The strategy that is the product as shipped: with polls when they are on by default."""
    names = result.names()
    polls_on = Settings().ranking.poll_share > 0
    if polls_on and "both+polls" in names:
        return "both+polls"
    return "both" if "both" in names else "both+polls"


def check_targets(result: SimResult) -> list[tuple[str, bool | None, str]]:
    """Issue 12's targets, each as (target, met or None when not measured, the numbers)."""
    names = set(result.names())
    out: list[tuple[str, bool | None, str]] = []
    product = product_name(result)
    if product in names and "prior" in names:
        curve = result.run(product)["curve"]
        late = [p for p in curve if p["requests"] >= 2000]
        felt = [(p["requests"], p["p1"], result.at("prior", p["requests"], "p1"),
                 p["sent_without_shuffle"],
                 result.at("prior", p["requests"], "sent_without_shuffle")) for p in late]
        ok = bool(felt) and all(a > b and c > d for _n, a, b, c, d in felt)
        out.append((f"`{product}` beats `prior` on P@1 and on sent without a shuffle at "
                    "2,000 requests and after", ok if felt else None,
                    "; ".join(f"{n:,}: P@1 {a:.3f} vs {b:.3f}, sent 1st {c:.3f} vs {d:.3f}"
                              for n, a, b, c, d in felt) or "not run to 2,000"))
        from_1k = [p for p in curve if p["requests"] >= 1000]
        nd = [(p["requests"], p["ndcg5"], result.at("prior", p["requests"])) for p in from_1k]
        out.append((f"`{product}` beats `prior` on NDCG@5 at every checkpoint from 1,000",
                    all(a > b for _n, a, b in nd) if nd else None,
                    ", ".join(f"{n:,}: {a:.3f} vs {b:.3f}" for n, a, b in nd) or "not run"))
    if {"both", "both+polls"} <= names:
        on, off = result.point("both+polls", 1000), result.point("both", 1000)
        better = on["ndcg5"] > off["ndcg5"] and on["p1"] > off["p1"]
        default_off = Settings().ranking.poll_share == 0
        out.append(("polls on vs off: better at 1,000 requests on NDCG@5 and P@1, or off by "
                    "default", better or default_off,
                    f"at {on['requests']:,}: NDCG@5 {on['ndcg5']:.3f} vs {off['ndcg5']:.3f}, "
                    f"P@1 {on['p1']:.3f} vs {off['p1']:.3f}; poll_share default "
                    f"{Settings().ranking.poll_share:g}"))
    adv = [n for n in names if n.endswith(ADVERSARIAL_SUFFIX)]
    if adv and adv[0].removesuffix(ADVERSARIAL_SUFFIX) in names:
        base = adv[0].removesuffix(ADVERSARIAL_SUFFIX)
        clean, dirty = result.run(base)["curve"][-1], result.run(adv[0])["curve"][-1]
        dn, dp = dirty["ndcg5"] - clean["ndcg5"], dirty["p1"] - clean["p1"]
        out.append(("10 % adversarial users move the final NDCG@5 by < 0.02 and P@1 by < 0.05",
                    abs(dn) < 0.02 and abs(dp) < 0.05,
                    f"NDCG@5 {clean['ndcg5']:.3f} → {dirty['ndcg5']:.3f} ({dn:+.3f}), "
                    f"P@1 {clean['p1']:.3f} → {dirty['p1']:.3f} ({dp:+.3f})"))
    if "feedback" in names:
        curve = result.run("feedback")["curve"]
        best = max(p["ndcg5"] for p in curve)
        first = next((p["requests"] for p in curve if p["ndcg5"] >= 0.8), None)
        out.append(("from no prior (`feedback`), NDCG@5 ≥ 0.8 of the ceiling within 5,000 "
                    "requests", first is not None and first <= 5000,
                    f"first reached at {first:,} requests" if first is not None else
                    f"best {best:.3f}, final {curve[-1]['ndcg5']:.3f} at "
                    f"{curve[-1]['requests']:,}"))
    return out


def plot_curves(result: SimResult, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name in result.names():
        r = result.run(name)
        xs = [p["requests"] for p in r["curve"]]
        (line,) = axes[0].plot(xs, [p["ndcg5"] for p in r["curve"]], marker="o", ms=3, label=name)
        if len(r["seeds"]) > 1:
            axes[0].fill_between(xs, [p["ndcg5_min"] for p in r["curve"]],
                                 [p["ndcg5_max"] for p in r["curve"]], color=line.get_color(),
                                 alpha=0.12, lw=0)
        axes[1].plot(xs, [p["p1"] for p in r["curve"]], marker="o", ms=3, label=name)
        # window metrics: nothing happened before the first checkpoint
        axes[2].plot(xs[1:], [p.get("sent_without_shuffle", 0.0) for p in r["curve"][1:]],
                     marker="o", ms=3, label=name)
    axes[0].axhline(0.9, color="grey", ls="--", lw=0.8)
    axes[0].set_ylabel("NDCG@5 (share of the truth's ceiling)")
    axes[1].set_ylabel("P@1 (top GIF in the true top 1 %)")
    axes[2].set_ylabel("previews sent without a shuffle")
    for ax in axes:
        ax.set_xlabel("requests")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "moodgif: suggestion quality vs use (mean over 17 emotions; "
                 "band = range over user seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_json(result: SimResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))


def first_reaching(result: SimResult, name: str, level: float, metric: str = "ndcg5") -> int | None:
    """The first checkpoint from which `metric` stays at or above `level` to the end."""
    found = None
    for p in result.run(name)["curve"]:
        below = p[metric] < level
        found = None if below else (found if found is not None else int(p["requests"]))
    return found


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}"


def report_markdown(result: SimResult, command: str, png_name: str) -> str:
    """docs/learning-loop.md: what was run, the table, the targets, the adversarial check."""
    lines = _report_intro(result, command, png_name)
    for target, ok, numbers in check_targets(result):
        verdict = "not measured" if ok is None else ("**met**" if ok else "**not met**")
        lines.append(f"- {target}: {verdict} ({numbers})")
    lines += ["", "## Every checkpoint", "", felt_table(result), "", "## Earlier targets", ""]
    lines += _earlier_target_lines(result)
    lines += _per_emotion_lines(result)
    lines += _timing_lines(result)
    lines += ["", CAUSE, "", HOW_TO, ""]
    return "\n".join(lines)


def _report_intro(result: SimResult, command: str, png_name: str) -> list[str]:
    """What was run, at what scale, the results table and its legend."""
    cfg = result.config
    n_final = int(cfg["requests"])
    at = [n for n in (1000, n_final) if n <= n_final]
    at = list(dict.fromkeys(at))
    names = result.names()
    n_seeds = len(result.run(names[0])["seeds"]) if names else 0
    lines = [
        "# The learning loop: suggestions get better with use",
        "",
        "Virtual users with known tastes use the bot through the same core the chat adapters "
        "use (request, shuffle, send, cancel, 👍/👎, polls); the real retrain job (ledger → "
        "Bradley-Terry → head → rescore → activate) runs every "
        f"{cfg['retrain_every']} requests on a simulated clock, and the ranking the bot would "
        "show is measured against the demo pool's ground truth after every retrain. The truth "
        "only drives the virtual users and the measurement; the ranker never sees it.",
        "",
        "Made by (on " + machine() + f", {result.seconds:.0f} s in all):",
        "",
        "```",
        command,
        "```",
        "",
        *(["**Reduced scale.** The benchmark (`benchmarks/bench_learning_loop.py`) is a "
            "2,000-GIF pool and 5,000 requests per run; this page was made at the scale in the "
            "command above (the shared 2-core machine could not run the full one in time); "
            "`docs/bench/learning-loop.md` says what was and was not measured.", ""]
          if cfg["pool_size"] < 2000 or n_final < 5000 else []),
        f"![NDCG@5 versus requests per strategy]({png_name})",
        "",
        f"Evaluation pool: {cfg['pool_size']} demo GIFs; {n_final:,} requests per strategy, "
        f"each strategy run with {n_seeds} user seed(s) (numbers are means over them). "
        f"The shipped scorer `v0` was trained on a separate {cfg['seed_pool_size']}-GIF pool "
        f"with {result.prepared['v0'].get('crowd_comparisons') or '?'} GIFGIF-style crowd "
        "comparisons (Bradley-Terry noise), through the real training code.",
        "",
        "## Results (means over the 17 emotions)",
        "",
        markdown_table(result, at),
        "",
        "- **NDCG@5**: the deterministic top 5 of the posterior (no exploration) for each "
        "emotion, gain = the true score; the ceiling is the truth's own top 5, so the value is "
        "already a share of the ceiling (1.0 = the truth's ranking).",
        "- **P@1**: the first GIF is in the true top 1 % of the pool for that emotion.",
        "- **sent 1st**: share of previews sent without a shuffle (since the previous checkpoint).",
        "- **shuffles/send**: shuffles people made per GIF that reached the channel (since the "
        "previous checkpoint; shuffles before a cancel count too).",
        "- **regret**: per preview, the true score of the best GIF the bot could have shown "
        "first (allowed in the channel and not posted there in the repeat window) minus the "
        "true score of the GIF it did show first; mean since the previous checkpoint.",
        "- **Spearman**: posterior means against the truth over the whole pool.",
        "- **pair acc.**: a fixed held-out set of truth-derived pairs per emotion (never "
        "recorded as comparisons), ordered correctly by the posterior.",
        "",
        "## Issue 12's targets (what people feel)",
        "",
    ]
    return lines


def _earlier_target_lines(result: SimResult) -> list[str]:
    """The earlier targets: both+polls near the ceiling and ahead early; adversarial users."""
    cfg = result.config
    n_final = int(cfg["requests"])
    names = result.names()
    lines: list[str] = []
    if "both+polls" in names:
        reach = first_reaching(result, "both+polls", 0.9)
        lines.append("- both+polls holds 0.9 of the NDCG@5 ceiling: "
                     + (f"**yes, from {reach:,} requests on** (final "
                        f"{result.final('both+polls'):.3f})" if reach is not None else
                        f"**no** (final {result.final('both+polls'):.3f}, best "
                        f"{max(p['ndcg5'] for p in result.run('both+polls')['curve']):.3f})"))
        if n_final >= 1000:
            mine = result.at("both+polls", 1000)
            others = {n: result.at(n, 1000) for n in names
                      if n != "both+polls" and not n.endswith("@adv")}
            beats = all(mine > v for v in others.values())
            lines.append(f"- both+polls beats every other strategy at 1,000 requests: "
                         f"**{'yes' if beats else 'no'}** ({mine:.3f} vs "
                         + ", ".join(f"{k} {v:.3f}" for k, v in others.items()) + ")")
    adv = [n for n in names if n.endswith(ADVERSARIAL_SUFFIX)]
    if adv and adv[0].removesuffix(ADVERSARIAL_SUFFIX) in names:
        clean = result.final(adv[0].removesuffix(ADVERSARIAL_SUFFIX))
        dirty = result.final(adv[0])
        share = result.run(adv[0]).get("adversarial", cfg.get("adversarial", 0.0))
        lines += [
            f"- {share:.0%} adversarial users (always 👎, send at random, answer polls against "
            f"what they see) move the final NDCG@5 by **{dirty - clean:+.3f}** "
            f"({clean:.3f} → {dirty:.3f}; target: less than 0.02 in size)",
        ]
        last = result.run(adv[0])["curve"][-1]
        if last.get("trust_adversarial") is not None:
            lines.append(
                f"- how the retrain weighs people (`training/reliability.py`, final checkpoint): "
                f"mean trust normal {last.get('trust_normal') or 0:.2f}, noisy "
                f"{last.get('trust_noisy') or 0:.2f}, adversarial {last['trust_adversarial']:.2f}; "
                f"adversarial people made {last.get('adv_share_top_losses') or 0:.0%} of the "
                "judgements against the true top 1 % and keep "
                f"{last.get('adv_kept_top_losses') or 0:.0%} of their weight (normal people's "
                f"judgements on those GIFs keep {last.get('normal_kept_top') or 0:.0%})")
    return lines


def _per_emotion_lines(result: SimResult) -> list[str]:
    """The final NDCG@5 of every strategy, one column per emotion."""
    names = result.names()
    lines: list[str] = []
    lines += ["", "## Per emotion (final checkpoint, NDCG@5)", "",
              "| strategy | " + " | ".join(NAMES) + " |", "|---|" + "---|" * N_EMOTIONS]
    for name in names:
        per = result.run(name)["curve"][-1]["per_emotion"]["ndcg5"]
        lines.append(f"| `{name}` | " + " | ".join(f"{x:.2f}" for x in per) + " |")
    return lines


def _timing_lines(result: SimResult) -> list[str]:
    """Where the time went, and the settings each run used (so a rerun can match)."""
    names = result.names()
    lines: list[str] = []
    lines += ["", "## Where the time went", "",
              "Per run (mean over seeds; runs go side by side in `--workers` processes):", "",
              "| strategy | wall s | requests s | retrain s (count) | measuring s |",
              "|---|---|---|---|---|"]
    for name in names:
        r = result.run(name)
        t = r["timing"]
        lines.append(f"| `{name}` | {r['seconds']:.0f} | {t['requests_s']:.0f} | "
                     f"{t['retrain_s']:.0f} ({r['retrains']}) | {t['measure_s']:.0f} |")
    prep = result.prepared.get("prepare_seconds", {})
    lines += ["", "Preparing (pools, features, v0, templates; cached under the `--cache` folder, "
              "so only a cold first run pays): " + ", ".join(f"{k} {v:.0f} s"
                                                          for k, v in prep.items()) + "."]
    lines += ["", "Settings in effect (the product defaults unless the environment says "
              "otherwise; `feedback` runs with prior strength 0, `both` and the non-poll "
              "strategies with poll share 0):", ""]
    lines += [f"- `{name}`: " + ", ".join(f"{k}={v}" for k, v in result.run(name)["settings"].items())
              for name in names]
    return lines


CAUSE = """## Why learning used to make it feel worse (issue 12), measured

Before the fix, the product lowered what people feel the more it was used: on the 600-GIF
pool (2,000 requests, seed 0) previews sent without a shuffle fell from 0.54 to 0.30 and
the regret of the first GIF rose from 0.46 to 0.67, while the prior alone stayed at
0.50-0.54 and 0.46-0.49. Ablated one at a time (`docs/bench/learning-loop.md` has the
tables and commands):

1. **Thompson sampling over the whole pool never cooled** (the main cause). A GIF nobody
   voted on keeps the prior's width (sd 0.2) forever, while votes narrow the known-good GIFs
   (median sd 0.09): on the matrix after 2,000 requests the first GIF shown was an unvoted
   one 96 % of the time (truth percentile 0.33 from the top, against 0.02 for the best
   mean). Exploration off: sent without a shuffle 0.87 and regret 0.13 at 2,000 requests;
   thumbs off (no 👍/👎 at all): still 0.32 / 0.65, so not the thumbs; rehearsal off: the
   very same curve, because the retrained head never moved from its warm start (candidate
   and active version score identically on dev), so neither rehearsal nor the score scale
   between fits is it.
2. **With the best-known GIF first, "sent beats skipped" pairs are adversely selected.**
   A GIF sent without a shuffle recorded nothing, and the first GIF could only ever be
   skipped and beaten: the GIFs the ranker believed in most collected losses and no wins.
   P@1 of the posterior fell to 0.12-0.18 at 1,000 requests (prior 0.29) with exploration
   off or bounded. Fitting each preview decision against the sender's bar instead
   (`training/judgements.py`: sent GIF > bar > each skipped GIF) gives P@1 0.41 and
   NDCG@5 0.867-0.894 at every checkpoint (prior 0.851).

The fix: bounded exploration (`MOODGIF_EXPLORATION=bounded`, the default: the best-known GIF
first, Thompson draws only among GIFs whose upper bound beats the best remaining one,
cooling with the emotion's evidence), bar judgements in the fit, and polls picked by
expected information about each emotion's top (active sorting).
"""


HOW_TO = """What the numbers mean for the product, the tuning runs behind the defaults and the known
causes of the gaps: `docs/bench/learning-loop.md`.

## How it works and how to run it

```
moodgif simulate [--pool-size 2000] [--requests 5000] [--retrain-every 500]
                 [--strategies prior,feedback,both,both+polls,random] [--adversarial 0.1]
                 [--seed 0] [--seeds 1] [--pool-seed 0] [--seed-pool-size 800]
                 [--workers 2] [--out docs/]
                 [--cache bench-out/sim-cache] [--fast] [--json]
```

- **Strategies** (each in its own fresh database; all share one feature cache):
  `prior` = the shipped scorer only (no retrain); `feedback` = no scorer prior (the pool
  starts unscored, Bradley-Terry prior strength 0; the heads the retrain trains on the
  users' votes are part of learning from feedback); `both` = the product (scorer prior +
  retrain), no polls; `both+polls` = the product with "which is more X?" polls for
  `MOODGIF_POLL_SHARE` of requests (the core picks the pair by two Thompson draws near the
  top: the pair the ranking is least sure how to order); `random` = nothing scored.
  `--adversarial 0.1` adds one more run of `both+polls` in which 10 % of the users are
  adversarial.
- **The shipped scorer (v0)**: a separate seed demo pool gets GIFGIF-style crowd comparisons
  drawn from its truth (Bradley-Terry noise, about 6 per GIF and emotion); `moodgif train`'s
  code fits Bradley-Terry and trains the default head on them. v0 then scores the evaluation
  pool: that is the scorer prior. The evaluation pool never sees its truth.
- **Virtual users** (seeded; 300 people in 20 channels, a few ask a lot): the emotion mix is
  Zipf-like (happiness and amusement common, guilt and shame rare) and typed as words the
  intent parser maps (`happy`, `lol`, `phew`, ...). On each preview a person sends with
  probability expit(12 (truth - their bar)), their bar being their own 80-95th percentile of
  that emotion's truth, else shuffles; after 3 shuffles they send the best one seen or
  cancel. Two channel mates vote 👍/👎 30 % of the time each (expit(12 (truth - 75th
  percentile))). Polls are answered 80 % of the time: left with probability
  expit(12 (truth_left - truth_right)), "neither" within 0.02. 5 % of users click at random;
  adversarial users always vote 👎, send at random and answer polls against what they see.
- **The loop**: every `--retrain-every` requests the scheduled retrain job
  (`training.retrain.scheduled_job`, what APScheduler calls) runs on the simulated clock:
  ledger -> Bradley-Terry -> head -> rescore -> activate; the bot core's ranker notices the
  new version through its own version stamp, as in production.
- **Cache**: `--cache` holds the pools, GIF files, features, v0 and template databases; a
  warm rerun only simulates. `--fast` is a quick look (300-GIF pool, 600 requests).
- **Outputs**: `learning-loop.md` (this page), `learning-curve.png`, and the raw curves
  in the cache folder (`learning-loop.json`: every run and checkpoint, every metric per
  emotion, each retrain's outcome)."""


def write_report(result: SimResult, out_dir: Path, *, command: str, json_path: Path | None = None,
                 stem: str = "learning") -> tuple[Path, Path]:
    """OUT/learning-loop.md, OUT/learning-curve.png, and the raw curves as JSON at
    `json_path` (every checkpoint, every metric per emotion; too big for docs/)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{stem}-curve.png"
    plot_curves(result, png)
    md = out_dir / f"{stem}-loop.md"
    md.write_text(report_markdown(result, command, png.name))
    if json_path is not None:
        save_json(result, json_path)
    return md, png


__all__ = [
    "STRATEGIES",
    "Population",
    "Prepared",
    "SimConfig",
    "SimResult",
    "StrategySpec",
    "Truth",
    "UserModel",
    "crowd_rows",
    "markdown_table",
    "measure",
    "plot_curves",
    "prepare",
    "run_strategy",
    "simulate",
    "strategy_spec",
    "write_report",
]
