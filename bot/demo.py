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
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.core import BotCore
from bot.simulate import SIM_PLATFORM
from scorer.emotions import N_EMOTIONS, NAMES
from scorer.settings import Settings
from scorer.store import Comparison, Meta, Pool, PoolGif, RetrainRun, session_scope
from scorer.versions import active_version_id

log = logging.getLogger("moodgif.bot.demo")

POOL = "demo"


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


async def simulate(core: BotCore, truth: dict[str, np.ndarray], *, sessions: int, seed: int = 0,
                   on_progress: Callable[[int], None] | None = None) -> SimReport:
    """Virtual users driving the bot through its public API (platform "sim").

    The same people as the learning benchmark (`bot.simulate.Population`): they ask for
    emotions in a realistic mix, shuffle past GIFs below their own bar, send or give up,
    vote on posts and answer polls by Bradley-Terry choices on the truth. Nothing else ever
    reads `truth`.
    """
    from bot.simulate import Population, Truth, UserModel, Window, one_request

    pop = Population(UserModel(), Truth.from_mapping(truth, 0, seed), adversarial=0.0,
                     seed=seed, parser=core.parser)
    window = Window()
    started = time.perf_counter()
    for _ in range(sessions):
        await one_request(core, pop, window)
        if on_progress:
            on_progress(1)
    return SimReport(sessions=window.previews, sends=window.sends, votes=window.votes,
                     polls=window.polls_answered, seconds=time.perf_counter() - started)


def ranking_quality(engine: Engine, truth: dict[str, np.ndarray]) -> dict[str, float] | None:
    """Spearman correlation of the active model's predictions with the truth, per emotion."""
    from bot.score_matrix import load_matrix
    from training.evaluate import spearman_per_emotion

    m = load_matrix(engine)
    if not m.scored:
        return None
    idx = [i for i, sha in enumerate(m.shas) if sha in truth]
    if len(idx) < 3:
        return None
    t = np.stack([truth[m.shas[i]] for i in idx])
    rho = np.nan_to_num(spearman_per_emotion(m.mean[:, idx].T, t), nan=0.0)
    return {NAMES[e]: float(rho[e]) for e in range(N_EMOTIONS)}


def _count(engine: Engine, stmt) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.scalar(stmt) or 0)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _bar(total: int, desc: str, initial: int = 0):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="", file=sys.stderr, disable=None, leave=False,
                initial=initial)


DEFAULT_COUNT = 600  # GIFs in a demo pool unless --count says otherwise


def run_demo(settings: Settings, engine: Engine, *, count: int = DEFAULT_COUNT, sessions: int = 2500,
             seed: int = 0, serve: bool = True, open_browser: bool = False) -> dict:
    """The whole demo; returns what it did (for tests and `--no-serve`)."""
    out: dict = {}
    t0 = time.perf_counter()
    _refuse_another_draw(settings, engine, count, seed)
    with _steps_speak_for_themselves():
        truth, manifest = _pool_files(settings, count, seed)
        _ingest(settings, engine, truth, manifest)
        _score(settings, engine)
        out.update(_simulate_users(settings, engine, truth, sessions, seed))
        out.update(_retrain(settings, engine))
        out.update(_measure(engine, truth))
    out["seconds"] = time.perf_counter() - t0
    _say(f"demo ready in {out['seconds']:.0f} s")
    if serve:
        _serve(settings, engine, open_browser, count, seed)
    return out


@contextlib.contextmanager
def _steps_speak_for_themselves() -> Iterator[None]:
    """Each step prints its own summary; the modules' INFO lines said the same again, or,
    on a first run, things that read like failures ("no trained head", "not scored yet")
    before the step that trains the first head. `moodgif -v demo` keeps them."""
    loggers = [logging.getLogger(name) for name in
               ("scorer.pipeline", "moodgif.bot.ranking", "moodgif.training.retrain")]
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _refuse_another_draw(settings: Settings, engine: Engine, count: int, seed: int) -> None:
    """A home keeps its demo (pool, votes, model): other --count or --seed would silently mix
    with or be hidden by it, so they ask for a home of their own."""
    from scorer.demo_pool import read_truth

    with session_scope(engine) as s:
        in_pool = set(s.scalars(select(PoolGif.gif_sha).join(Pool, Pool.id == PoolGif.pool_id)
                                .where(Pool.name == POOL)))
    wanted = demo_folder(settings, count, seed)
    manifest = wanted / "manifest.csv"
    if not in_pool or (manifest.is_file() and in_pool <= set(read_truth(manifest))):
        return
    raise RuntimeError(
        f"{settings.home} already holds a demo of {len(in_pool)} GIFs drawn with other options "
        f"(its pool, votes and model are kept between runs), so --count {count} --seed {seed} "
        f"would not apply there: give this draw a home of its own, e.g. moodgif demo --count "
        f"{count} --seed {seed} --home {settings.home.parent / wanted.name}")


def _pool_files(settings: Settings, count: int, seed: int) -> tuple[dict, Path]:
    """Step 1: the pool's files (drawn once, then reused); returns (truth, manifest)."""
    from scorer.demo_pool import make_demo_pool, read_truth

    folder = demo_folder(settings, count, seed)
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        _say(f"[1/6] demo pool: reusing {manifest}")
    else:
        _say(f"[1/6] demo pool: drawing {count} GIFs into {folder}")
        with _bar(count, "draw") as bar:
            make_demo_pool(folder, count, seed, on_progress=bar.update)
    return read_truth(manifest), manifest


def _ingest(settings: Settings, engine: Engine, truth: dict, manifest: Path) -> None:
    """Step 2: ingest, skipped when the pool already holds every demo GIF."""
    in_pool = _count(engine, select(func.count()).select_from(PoolGif)
                     .join(Pool, Pool.id == PoolGif.pool_id).where(Pool.name == POOL)
                     .where(PoolGif.gif_sha.in_(list(truth))))
    if in_pool >= len(truth):
        _say(f"[2/6] ingest: pool {POOL!r} already holds the {in_pool} GIFs")
        return
    from scorer.pool import ingest

    _say(f"[2/6] ingest: adding {manifest} to pool {POOL!r}")
    report = ingest(settings, engine, POOL, str(manifest), progress=True)
    _say(f"      {report.summary()}")


def _score(settings: Settings, engine: Engine) -> None:
    """Step 3: score (cached features make a rerun quick)."""
    from scorer.pipeline import score_pool

    _say(f"[3/6] score: encoder {settings.scoring.encoder} (features are kept, so a rerun is quick)")
    scored = score_pool(settings, engine, pool=POOL, progress=True)
    first = " (no model yet: step 5 trains the first)" if not scored.scored else ""
    _say(f"      {scored.encoded} encoded, {scored.cached} cached, {len(scored.failed)} failed, "
         f"{scored.scored} predictions in {scored.seconds:.0f} s{first}")


SIM_TARGET_KEY, SIM_DONE_KEY = "demo_sim_target", "demo_sim_done"
SIM_SAVE_EVERY = 25  # requests between notes of how far the virtual users got


def _meta(engine: Engine, key: str) -> int | None:
    with session_scope(engine) as s:
        row = s.get(Meta, key)
        return int(row.value) if row is not None else None


def _set_meta(engine: Engine, key: str, value: int) -> None:
    with session_scope(engine) as s:
        s.merge(Meta(key=key, value=str(value)))


def _simulate_users(settings: Settings, engine: Engine, truth: dict, sessions: int,
                    seed: int) -> dict:
    """Step 4: virtual users. A run that was stopped part way (Ctrl-C) is finished by the
    next one, so an interrupted demo does not stay weaker for good; a finished one is reused."""
    out: dict = {}
    done = _count(engine, select(func.count()).select_from(Comparison)
                  .where(Comparison.platform == SIM_PLATFORM))
    target, reached = _meta(engine, SIM_TARGET_KEY), _meta(engine, SIM_DONE_KEY) or 0
    if (target is not None and reached >= target) or (target is None and done):  # finished (or a home from before the notes)
        _say(f"[4/6] simulate: reusing the {done} comparisons of earlier virtual users "
             "(--sessions counts in a fresh home only)")
        out["comparisons"] = done
        return out
    if target is None:
        target, reached = sessions, 0
        _set_meta(engine, SIM_TARGET_KEY, target)
        _say(f"[4/6] simulate: {target} requests from virtual users (ground truth decides "
             "only their clicks)")
    else:
        _say(f"[4/6] simulate: an earlier run stopped after {reached} of {target} requests; "
             f"the virtual users make the other {target - reached}")
    sim_settings = settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.3,
                                     ranking__repeat_window_hours=0.0, chat__preview_count=1)
    core = BotCore(sim_settings, engine, seed=seed + reached)
    progress = [reached]

    def step(n: int, bar: Callable[[int], object]) -> None:
        bar(n)
        progress[0] += n
        if progress[0] % SIM_SAVE_EVERY == 0:
            _set_meta(engine, SIM_DONE_KEY, progress[0])

    with _bar(target, "simulate", initial=reached) as bar:
        sim = asyncio.run(simulate(core, truth, sessions=target - reached, seed=seed + reached,
                                   on_progress=lambda n: step(n, bar.update)))
    _set_meta(engine, SIM_DONE_KEY, target)
    done = _count(engine, select(func.count()).select_from(Comparison)
                  .where(Comparison.platform == SIM_PLATFORM))
    _say(f"      {sim.summary()}: {done} comparisons in the ledger")
    out["simulation"] = dataclasses.asdict(sim)
    out["comparisons"] = done
    return out


def _retrain(settings: Settings, engine: Engine) -> dict:
    """Step 5: retrain, unless a retrained version is already active."""
    activated = _count(engine, select(func.count()).select_from(RetrainRun)
                       .where(RetrainRun.status == "activated"))
    active = active_version_id(engine) is not None
    if activated and active:
        _say("[5/6] retrain: a retrained model version is already active")
        return {}
    from training.retrain import run_retrain

    _say("[5/6] retrain: Bradley-Terry fit, head training, rescore, activate")
    outcome = run_retrain(settings, engine, trigger="demo", force=True)
    _say(f"      {outcome.status}: {outcome.message}")
    if not outcome.ok:
        raise RuntimeError(f"the demo's retrain failed: {outcome.message}")
    return {"retrain": outcome.status}


def _measure(engine: Engine, truth: dict) -> dict:
    """Step 6: how good is it now (the truth's second use: measuring)."""
    quality = ranking_quality(engine, truth)
    if not quality:
        _say("[6/6] ranking vs ground truth: no active model yet")
        return {}
    mean_rho = float(np.mean(list(quality.values())))
    best = sorted(quality.items(), key=lambda kv: -kv[1])[:3]
    _say(f"[6/6] ranking vs ground truth: mean Spearman {mean_rho:.2f} over 17 emotions "
         f"(best: {', '.join(f'{k} {v:.2f}' for k, v in best)}; random = 0)")
    return {"spearman_mean": mean_rho, "spearman": quality}


def _serve(settings: Settings, engine: Engine, open_browser: bool, count: int, seed: int) -> None:
    import shlex

    from bot.serve import run_serve

    # The exact way back: a plain `moodgif demo` may mean another home (scripts/demo sets
    # MOODGIF_HOME), and another home draws a new demo.
    again = (f"moodgif demo --home {shlex.quote(str(settings.home))} --port {settings.http.port}"
             f"{f' --count {count}' if count != DEFAULT_COUNT else ''}{f' --seed {seed}' if seed else ''}")
    run_serve(settings, engine, open_browser=open_browser, announce=lambda url: print(
        f"\nmoodgif playground: {url}\n  type /gif happy · admin pages: {url}admin\n"
        f"  (Ctrl-C stops it; `{again}` comes back)", flush=True))

def demo_folder(settings: Settings, count: int, seed: int) -> Path:
    return settings.home / f"demo-{count}-{seed}"
