"""`moodgif demo`: from nothing to a playground that has learned from votes, in one command.

Steps (each skipped when its result already exists, so a second run is quick):

1. **pool** — draw the synthetic demo GIFs (`scorer.demo_pool`) into `$MOODGIF_HOME/demo-*`;
2. **ingest** them as pool "demo";
3. **score** them with the default encoder (features are cached; with no trained head yet,
   only features and ratings are written, and the ranking is random: "not scored yet");
4. **simulate** virtual users who ask for GIFs, shuffle, send, vote 👍/👎 and answer polls
   through `BotCore`, exactly like people on a chat platform, so their clicks land in the
   ledger as real comparisons. The manifest's ground truth decides *only* what these
   virtual users click; the ranking never sees it;
5. **retrain** once (Bradley-Terry fit, head training, rescore, activate);
6. **measure** how well the active model now orders the pool against the ground truth
   (Spearman per emotion; this is what the truth exists for besides the simulation);
7. **serve** the playground and print its URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.core import BotCore
from bot.events import Actor
from scorer.emotions import N_EMOTIONS, NAMES
from scorer.settings import Settings
from scorer.store import Comparison, ModelVersion, Pool, PoolGif, RetrainRun, session_scope

log = logging.getLogger("moodgif.bot.demo")

POOL = "demo"
SIM_PLATFORM = "sim"
SIM_WORKSPACE = "demo"
MAX_SHUFFLES = 3


@dataclass
class SimReport:
    sessions: int = 0
    sends: int = 0
    votes: int = 0
    polls: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.sessions} requests, {self.sends} sends, {self.votes} 👍/👎, "
                f"{self.polls} poll answers in {self.seconds:.0f} s")


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


async def simulate(core: BotCore, truth: dict[str, np.ndarray], *, sessions: int, seed: int = 0,
                   users: int = 40, channels: int = 12,
                   on_progress: Callable[[int], None] | None = None) -> SimReport:
    """Virtual users driving the bot through its public API (platform "sim").

    Each asks for a random emotion, judges what it sees by the ground truth plus personal
    noise, shuffles past GIFs that do not fit (up to MAX_SHUFFLES), sends the best it saw;
    two other users vote on the post; polls are answered by a Bradley-Terry choice on the
    truth. Nothing else ever reads `truth`.
    """
    rng = np.random.default_rng(seed)
    report = SimReport()
    started = time.perf_counter()
    names = [f"sim-user-{i:03d}" for i in range(users)]

    def judge(sha: str, e: int) -> float:
        t = truth.get(sha)
        return (float(t[e]) if t is not None else 0.0) + float(rng.normal(0, 0.08))

    for _ in range(sessions):
        e = int(rng.integers(N_EMOTIONS))
        who = names[int(rng.integers(users))]
        actor = Actor(SIM_PLATFORM, SIM_WORKSPACE, f"sim-{int(rng.integers(channels)):02d}", who)
        reply = await core.request(actor, NAMES[e])
        if on_progress:
            on_progress(1)
        if reply.kind != "preview" or reply.preview is None:
            continue
        report.sessions += 1
        sid = reply.preview.session_id
        best_sha, best_score = None, -np.inf
        for step in range(MAX_SHUFFLES + 1):
            cards = reply.preview.cards if reply.preview else ()
            for card in cards:
                score = judge(card.sha256, e)
                if score > best_score:
                    best_sha, best_score = card.sha256, score
            if best_score > 0.55 or step == MAX_SHUFFLES:
                break
            nxt = await core.shuffle(actor, sid)
            if nxt.kind != "preview":
                break
            reply = nxt
        posted = await core.send(actor, sid, best_sha)
        if posted.kind == "posted" and posted.post is not None:
            report.sends += 1
            for _v in range(2):
                voter = names[int(rng.integers(users))]
                if voter == who:
                    continue
                up = judge(posted.post.card.sha256, e) > 0.45
                r = await core.vote(dataclasses.replace(actor, user_id=voter),
                                    post_id=posted.post.post_id, up=up)
                report.votes += r.kind == "ack"
        poll = await core.maybe_poll(actor, NAMES[e])
        if poll is not None and poll.poll is not None:
            left, right = judge(poll.poll.left.sha256, e), judge(poll.poll.right.sha256, e)
            if abs(left - right) < 0.03:
                answer = "neither"
            else:
                answer = "left" if rng.random() < _sigmoid((left - right) / 0.08) else "right"
            r = await core.answer_poll(actor, poll.poll.poll_id, answer)
            report.polls += r.kind == "ack"
    report.seconds = time.perf_counter() - started
    return report


def ranking_quality(engine: Engine, truth: dict[str, np.ndarray]) -> dict[str, float] | None:
    """Spearman correlation of the active model's predictions with the truth, per emotion."""
    from scipy.stats import spearmanr

    from bot.ranking import load_matrix

    m = load_matrix(engine)
    if not m.scored:
        return None
    idx = [i for i, sha in enumerate(m.shas) if sha in truth]
    if len(idx) < 3:
        return None
    t = np.stack([truth[m.shas[i]] for i in idx])
    out = {}
    for e in range(N_EMOTIONS):
        rho = spearmanr(m.mean[e, idx], t[:, e]).statistic
        out[NAMES[e]] = float(rho) if np.isfinite(rho) else 0.0
    return out


def _count(engine: Engine, stmt) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.scalar(stmt) or 0)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _bar(total: int, desc: str):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="", file=sys.stderr, disable=None, leave=False)


def run_demo(settings: Settings, engine: Engine, *, count: int = 600, sessions: int = 700,
             seed: int = 0, serve: bool = True, open_browser: bool = False) -> dict:
    """The whole demo; returns what it did (for tests and `--no-serve`)."""
    from scorer.demo_pool import make_demo_pool, read_truth

    out: dict = {}
    t0 = time.perf_counter()

    # 1. the pool's files
    folder = demo_folder(settings, count, seed)
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        _say(f"[1/6] demo pool: reusing {manifest}")
    else:
        _say(f"[1/6] demo pool: drawing {count} GIFs into {folder}")
        with _bar(count, "draw") as bar:
            make_demo_pool(folder, count, seed, on_progress=bar.update)
    truth = read_truth(manifest)

    # 2. ingest
    in_pool = _count(engine, select(func.count()).select_from(PoolGif)
                     .join(Pool, Pool.id == PoolGif.pool_id).where(Pool.name == POOL)
                     .where(PoolGif.gif_sha.in_(list(truth))))
    if in_pool >= len(truth):
        _say(f"[2/6] ingest: pool {POOL!r} already holds the {in_pool} GIFs")
    else:
        from scorer.pool import ingest

        _say(f"[2/6] ingest: adding {manifest} to pool {POOL!r}")
        report = ingest(settings, engine, POOL, str(manifest), progress=True)
        _say(f"      {report.summary()}")

    # 3. score (cached features make a rerun quick)
    from scorer.pipeline import score_pool

    _say(f"[3/6] score: encoder {settings.encoder} (features are cached)")
    scored = score_pool(settings, engine, pool=POOL, progress=True)
    _say(f"      {scored.encoded} encoded, {scored.cached} cached, {len(scored.failed)} failed, "
         f"{scored.scored} predictions in {scored.seconds:.0f} s")

    # 4. virtual users
    done = _count(engine, select(func.count()).select_from(Comparison)
                  .where(Comparison.platform == SIM_PLATFORM))
    if done:
        _say(f"[4/6] simulate: reusing the {done} comparisons of earlier virtual users")
    else:
        sim_settings = dataclasses.replace(settings, cooldown_s=0.0, poll_share=0.3,
                                           repeat_window_hours=0.0, preview_count=1)
        core = BotCore(sim_settings, engine, seed=seed)
        _say(f"[4/6] simulate: {sessions} requests from virtual users (ground truth decides "
             "only their clicks)")
        with _bar(sessions, "simulate") as bar:
            sim = asyncio.run(simulate(core, truth, sessions=sessions, seed=seed,
                                       on_progress=bar.update))
        done = _count(engine, select(func.count()).select_from(Comparison)
                      .where(Comparison.platform == SIM_PLATFORM))
        _say(f"      {sim.summary()}: {done} comparisons in the ledger")
        out["simulation"] = dataclasses.asdict(sim)
    out["comparisons"] = done

    # 5. retrain
    activated = _count(engine, select(func.count()).select_from(RetrainRun)
                       .where(RetrainRun.status == "activated"))
    active = _count(engine, select(func.count()).select_from(ModelVersion)
                    .where(ModelVersion.status == "active"))
    if activated and active:
        _say("[5/6] retrain: a retrained model version is already active")
    else:
        from training.retrain import run_retrain

        _say("[5/6] retrain: Bradley-Terry fit, head training, rescore, activate")
        outcome = run_retrain(settings, engine, trigger="demo", force=True)
        _say(f"      {outcome.status}: {outcome.message}")
        out["retrain"] = outcome.status
        if not outcome.ok:
            raise RuntimeError(f"the demo's retrain failed: {outcome.message}")

    # 6. how good is it now (the truth's second use: measuring)
    quality = ranking_quality(engine, truth)
    if quality:
        mean_rho = float(np.mean(list(quality.values())))
        best = sorted(quality.items(), key=lambda kv: -kv[1])[:3]
        _say(f"[6/6] ranking vs ground truth: mean Spearman {mean_rho:.2f} over 17 emotions "
             f"(best: {', '.join(f'{k} {v:.2f}' for k, v in best)}; random = 0)")
        out["spearman_mean"] = mean_rho
        out["spearman"] = quality
    else:
        _say("[6/6] ranking vs ground truth: no active model yet")
    out["seconds"] = time.perf_counter() - t0
    _say(f"demo ready in {out['seconds']:.0f} s")

    if serve:
        from bot.serve import run_serve

        run_serve(settings, engine, open_browser=open_browser, announce=lambda url: print(
            f"\nmoodgif playground: {url}\n  type /gif happy · admin pages: {url}admin\n"
            "  (Ctrl-C stops it; run `moodgif demo` again to come back)", flush=True))
    return out


def demo_folder(settings: Settings, count: int, seed: int) -> Path:
    return settings.home / f"demo-{count}-{seed}"
