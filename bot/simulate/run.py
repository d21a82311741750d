"""One virtual request, one strategy from a fresh database to its last checkpoint, and the
whole run over strategies and seeds (the package docstring, `bot.simulate`, tells the story)."""


from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.simulate.cache import Prepared, _copy_db, _home_settings, _link_store, prepare
from bot.simulate.config import (
    POLL_SHARE_WHEN_OFF,
    SIM_PLATFORM,
    SIM_WORKSPACE,
    SimConfig,
    StrategySpec,
    strategy_spec,
)
from bot.simulate.metrics import measure, voter_weights
from bot.simulate.population import Population
from bot.simulate.truth import Truth
from scorer.emotions import NAMES
from scorer.settings import Settings

if TYPE_CHECKING:  # annotations only: importing this module loads no core, database or training
    from sqlalchemy.engine import Engine

    from bot.core import BotCore
    from training.retrain import RetrainOutcome

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
    _measure_first_card(core, pop, actor, e, reply, w)
    if u.kind == "adversarial":
        posted = await _adversary_sends(core, pop, actor, reply.preview.session_id, w)
    else:
        posted = await _person_chooses(core, pop, u, actor, e, reply, w)
    if posted is not None and posted.kind == "posted" and posted.post is not None:
        await _post_is_voted_on(core, pop, u, e, posted.post, w)
    await _maybe_answer_poll(core, pop, u, actor, e, w)


def _measure_first_card(core: Any, pop: Population, actor: Any, e: int, reply: Any, w: Window) -> None:
    """Regret and top-1 % of the GIF the bot showed first (what the ranking chose)."""
    if reply.preview.cards:
        first = reply.preview.cards[0].sha256
        w.regret_sum += first_regret(core, pop, actor, e, first)
        k = pop.truth.index.get(first)
        w.first_top += bool(k is not None and pop.truth.relevant[e][k])


async def _adversary_sends(core: Any, pop: Population, actor: Any, sid: str, w: Window) -> Any:
    """Shuffles a random 0-3 times and sends whatever is showing (never counted as a send
    without a shuffle: that figure is about people who judge what they see)."""
    for _ in range(int(pop.rng.integers(0, pop.m.max_shuffles + 1))):
        nxt = await core.shuffle(actor, sid)
        if nxt.kind != "preview":
            break
        w.shuffles += 1
    return await core.send(actor, sid)


async def _person_chooses(core: Any, pop: Population, u: Any, actor: Any, e: int, reply: Any,
                          w: Window) -> Any:
    """Sends the first card they want, shuffling up to max_shuffles times; else settles for
    the best card seen or cancels. The send's reply, or None when nothing was sent."""
    sid = reply.preview.session_id
    best_sha, best = None, -1.0
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
            if posted.kind == "posted" and step == 0:
                w.sent_first += 1
            return posted
        if step == pop.m.max_shuffles:
            break
        nxt = await core.shuffle(actor, sid)
        if nxt.kind != "preview":
            break
        w.shuffles += 1
        reply = nxt
    if best_sha is not None and pop.settle(u, best, e):
        return await core.send(actor, sid, best_sha)
    await core.cancel(actor, sid)
    w.cancels += 1
    return None


async def _post_is_voted_on(core: Any, pop: Population, u: Any, e: int, post: Any, w: Window) -> None:
    """The channel sees the post; some of its people thumb it."""
    from bot.events import Actor

    w.sends += 1
    pop.record_post(u.channel, post.card.sha256, core.clock())
    for v in pop.voters(u):
        voter = Actor(SIM_PLATFORM, SIM_WORKSPACE, u.channel, v.user_id)
        r = await core.vote(voter, post_id=post.post_id, up=pop.thumb(v, post.card.sha256, e))
        w.votes += r.kind == "ack"


async def _maybe_answer_poll(core: Any, pop: Population, u: Any, actor: Any, e: int, w: Window) -> None:
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


@dataclass
class _StrategyRun:
    """What one strategy's run threads from step to step: the core under test on its own
    database, the virtual people, the two clocks, and the curve measured so far."""

    s: Settings
    cfg: SimConfig
    spec: StrategySpec
    engine: Engine
    clock: SimClock
    versions: SimClock
    core: BotCore
    truth: Truth
    pop: Population
    mrng: np.random.Generator
    retrain_job: Callable[[Settings], RetrainOutcome]
    curve: list[dict] = field(default_factory=list)
    timing: dict[str, float] = field(
        default_factory=lambda: {"requests_s": 0.0, "retrain_s": 0.0, "measure_s": 0.0})

    @classmethod
    def open(cls, s: Settings, cfg: SimConfig, prepared: Prepared,
             spec: StrategySpec) -> _StrategyRun:
        from bot.core import BotCore
        from bot.intent import get_parser
        from bot.ranking import Ranker
        from scorer.migrate import init_db
        from training.retrain import scheduled_job

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
        return cls(s, cfg, spec, engine, clock, versions, core, truth, pop, mrng, scheduled_job)

    def checkpoint(self, done: int, window: Window, retrain: dict | None) -> None:
        t = time.perf_counter()
        self.clock.advance(10 * 60)
        self.versions.advance(10 * 60)  # past the ranker's stamp interval: it sees new versions
        matrix = self.core.ranker.matrix()
        point = {**measure(matrix, self.truth, self.mrng), **window.row(), "requests": done,
                 "model_version_id": matrix.model_version_id, "fit_id": matrix.fit_id,
                 "n_bt": matrix.n_bt}
        if self.spec.retrain and done:
            point.update(voter_weights(self.engine, self.s, self.pop))
        if retrain:
            point["retrain"] = retrain
        self.curve.append(point)
        self.timing["measure_s"] += time.perf_counter() - t

    async def serve_requests(self, done: int, target: int, window: Window) -> int:
        """Virtual requests, a simulated interval apart, until `target` in all; the new count."""
        t = time.perf_counter()
        while done < target:
            self.clock.advance(self.cfg.users.seconds_between_requests)
            await one_request(self.core, self.pop, window)
            done += 1
        self.timing["requests_s"] += time.perf_counter() - t
        return done

    async def retrain_if_due(self, target: int) -> dict | None:
        """The scheduled retrain at every `retrain_every` requests, for strategies that learn;
        what it did, for the checkpoint, or None when none ran."""
        if not (self.spec.retrain and target % self.cfg.retrain_every == 0):
            return None
        t = time.perf_counter()
        outcome = await asyncio.to_thread(self.retrain_job, self.s)
        took = time.perf_counter() - t
        self.timing["retrain_s"] += took
        return {"status": outcome.status, "message": outcome.message[:200],
                "model_version_id": outcome.model_version_id, "seconds": round(took, 1)}

    def result(self) -> dict:
        s = self.s
        return {"strategy": self.spec.name, "seed": self.cfg.seed,
                "adversarial": self.spec.adversarial, "curve": self.curve, "timing": self.timing,
                "settings": {
                    "poll_share": s.ranking.poll_share,
                    "bt_prior_strength": s.training.bt_prior_strength,
                    "exploration": s.ranking.exploration,
                    "exploration_rate": s.ranking.exploration_rate,
                    "bt_alpha": s.training.bt_alpha, "bt_ties": s.training.bt_ties}}


async def _run_async(s: Settings, cfg: SimConfig, prepared: Prepared, spec: StrategySpec) -> dict:
    """One strategy's run on its prepared home: checkpoint 0, then for each later checkpoint
    the requests up to it, the retrain when due, and a measurement; returns the run's
    record (its curve, timing and settings)."""
    asyncio.get_running_loop().set_default_executor(InlineExecutor(max_workers=1))
    run = _StrategyRun.open(s, cfg, prepared, spec)
    run.checkpoint(0, Window(), None)
    done = 0
    for target in cfg.checkpoints()[1:]:
        window = Window()
        done = await run.serve_requests(done, target, window)
        retrain = await run.retrain_if_due(target)
        run.checkpoint(done, window, retrain)
    run.engine.dispose()
    return run.result()


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
