"""Heavy admin work (add a pool: ingest, encode, score; retrain now) leaves the chat process.

The chat process only queues a `core_jobs` row and starts the worker process
(`python -m bot.retrain_worker --jobs`, the same child the scheduled retrain runs in), then
reports the row's state; torch, the encoders and the training data never enter the process
that users wait on. The worker claims queued rows one at a time (a conditional UPDATE, so two
workers never run one job) and writes back "done", "failed" or "skipped" (it did not run, and
need not: a retrain was already running) with a one-line detail. A job that fails for a
reason the admin can act on (no GIPHY key, every file of a pool add refused) logs one line,
not a traceback. The
scheduled retrain's worker drains the queue too, so a job queued while no worker ran is
picked up at the next run.

A running job carries a heartbeat: the worker stamps its row every `HEARTBEAT_S` from a side
thread, and a row whose stamp is older than `LEASE_S` is a dead worker's (killed, host
restarted). The next worker and the chat process watching the job both mark it failed, so an
admin hears within a couple of minutes instead of after `JOB_TIMEOUT_S`.

`drain` and the runners import the heavy modules inside the functions: importing this module
costs the chat process nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from bot.flows.context import CoreContext
from scorer.pool_owners import OPERATOR
from scorer.settings import Settings
from scorer.store import CoreJob, session_scope, utcnow

log = logging.getLogger("moodgif.bot.jobs")

POOL_ADD, RETRAIN = "pool_add", "retrain"
FINISHED = ("done", "failed", "skipped")
JOB_TIMEOUT_S = 6 * 3600.0  # the chat process stops watching a job after this
HEARTBEAT_S = 10.0
# Several missed beats, so a worker busy in one long C call (a Bradley-Terry fit, a batch of
# frames through the encoder: the beat is a Python thread and waits for the GIL) is not
# declared dead.
LEASE_S = 120.0
DEAD_WORKER = "the worker stopped before the job finished"
_POLL_S = 1.0


@dataclass
class Job:
    """This process's handle on a queued job: its state is the `core_jobs` row's, read back
    when the worker finishes; `task` completes then (adapters and tests may await it)."""

    id: int
    what: str
    state: str = "queued"  # queued running done failed skipped
    detail: str = ""
    started: float = field(default_factory=time.time)
    task: asyncio.Task | None = field(default=None, repr=False)
    joined: bool = False  # `enqueue(once=True)` found this one already waiting


class JobSkipped(Exception):
    """The job did not run and need not (another run of it was already going); the message
    says why. The row ends "skipped", never "done"."""


class JobRefused(Exception):
    """The job failed for a reason the admin can act on, said in its one-line message (the
    log gets that line, no traceback)."""


def _start_worker(settings: Settings) -> int:
    from bot.workers import run_in_worker

    return run_in_worker(settings, timeout_s=JOB_TIMEOUT_S, jobs=True)


class JobQueue:
    """The chat side: queue a job, keep one worker running while any is queued, watch the row."""

    def __init__(self, ctx: CoreContext,
                 start_worker: Callable[[Settings], int] = _start_worker) -> None:
        from training.schedule import make_trigger

        self.ctx = ctx
        self.start_worker = start_worker
        self._jobs: list[Job] = []
        self._worker: asyncio.Task | None = None  # the one worker child running now, if any
        # A bot whose own retrain schedule is off (MOODGIF_RETRAIN_CRON= and _INTERVAL_MIN=0,
        # as compose and systemd set it) has a worker for that: `moodgif retrain --schedule`
        # drains the queue every minute, on its own host (the GPU one), not beside chat.
        self.runs_jobs = make_trigger(ctx.settings) is not None

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    async def enqueue(self, kind: str, args: dict[str, Any], label: str, *, once: bool = False) -> Job:
        """Queue a job and watch it. `once`: a job of this kind already waiting to run is
        the answer instead (six quick "retrain now" clicks once ran six retrains in a row;
        the one waiting will see every vote up to when it starts)."""
        if once:
            waiting = next((j for j in self._jobs if j.what == label and j.state == "queued"
                            and j.task is not None and not j.task.done()), None)
            if waiting is not None:
                return dataclasses.replace(waiting, joined=True)
        job_id = await asyncio.to_thread(enqueue, self.ctx.engine, kind, args, label)
        job = Job(id=job_id, what=label)
        job.task = asyncio.get_running_loop().create_task(self._watch(job))
        self._jobs.append(job)
        return job

    async def resume(self) -> None:
        """At start: jobs left queued by a process that stopped before running them (a
        restart, a killed worker) get a worker now instead of waiting for the next click."""
        if self.runs_jobs and await asyncio.to_thread(has_queued, self.ctx.engine):
            log.info("admin jobs left queued: starting the worker for them")
            self._ensure_worker()

    def _ensure_worker(self) -> asyncio.Task | None:
        """One worker child at a time: it drains the whole queue, so six clicks on "retrain
        now" start one process (each child imports torch), not six. None: the jobs are the
        separate worker's (`runs_jobs`)."""
        if not self.runs_jobs:
            return None
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run_workers())
        return self._worker

    async def _run_workers(self) -> None:
        while True:  # a job queued while the child was finishing is one it may not have seen
            await asyncio.to_thread(self.start_worker, self.ctx.settings)
            if not await asyncio.to_thread(has_queued, self.ctx.engine):
                return

    async def _watch(self, job: Job) -> None:
        try:
            worker = self._ensure_worker()
            deadline = time.monotonic() + JOB_TIMEOUT_S
            next_lease_check = time.monotonic()
            while True:  # another worker (another host, the scheduler's) may hold it
                if worker is not None and worker.done() and (failed := worker.exception()) is not None:
                    raise failed
                job.state, job.detail = await asyncio.to_thread(job_state, self.ctx.engine, job.id)
                if job.state == "queued" and (worker is None or worker.done()):
                    worker = self._ensure_worker()
                if job.state == "running" and time.monotonic() > next_lease_check:
                    next_lease_check = time.monotonic() + HEARTBEAT_S
                    if await asyncio.to_thread(fail_abandoned, self.ctx.engine, job_id=job.id):
                        job.state, job.detail = "failed", DEAD_WORKER
                if job.state in FINISHED or time.monotonic() > deadline:
                    break
                await asyncio.sleep(_POLL_S)
        except Exception as exc:
            log.exception("admin job %s: the worker could not be run", job.id)
            job.state, job.detail = "failed", str(exc)[:300]
        await asyncio.to_thread(self.ctx.ranker.refresh)

    async def close(self, timeout_s: float) -> None:
        for job in self._jobs:
            if job.task is not None and not job.task.done():
                log.info("waiting for admin job %s (%s)", job.id, job.what)
                await asyncio.wait({job.task}, timeout=timeout_s)


# ---------------------------------------------------------------------------------------
# the queue in the database (both sides)


def enqueue(engine: Engine, kind: str, args: dict[str, Any], label: str) -> int:
    with session_scope(engine) as s:
        row = CoreJob(kind=kind, args=args, label=label[:400], state="queued", detail="",
                      created_at=utcnow(), host="")
        s.add(row)
        s.flush()
        return int(row.id)


def has_queued(engine: Engine) -> bool:
    with session_scope(engine) as s:
        return s.scalar(select(CoreJob.id).where(CoreJob.state == "queued").limit(1)) is not None


def job_state(engine: Engine, job_id: int) -> tuple[str, str]:
    with session_scope(engine) as s:
        row = s.get(CoreJob, job_id)
        return ("failed", "the job row is gone") if row is None else (row.state, row.detail)


def recent_jobs(db: Any, limit: int = 5, viewer: str = OPERATOR) -> list[tuple[int, str, str, str]]:
    """(id, label, state, detail) of the newest jobs, newest last: what `stats` shows. A chat
    workspace (`viewer`, `Actor.pool_owner`) sees the jobs it queued (their args carry it)
    and the retrains, which name no source; never another workspace's pool adds."""
    q = select(CoreJob.id, CoreJob.label, CoreJob.state, CoreJob.detail)
    if viewer != OPERATOR:
        q = q.where(sa.or_(CoreJob.args["owner"].as_string() == viewer, CoreJob.kind == RETRAIN))
    rows = db.execute(q.order_by(CoreJob.id.desc()).limit(limit)).all()
    return [tuple(r) for r in reversed(rows)]


def newest_jobs(engine: Engine, limit: int = 20, label: str | None = None) -> list[Job]:
    """The newest jobs from the table, newest first (the web admin's Jobs list): every
    process's and every replica's, and still there after a restart."""
    q = select(CoreJob.id, CoreJob.label, CoreJob.state, CoreJob.detail).order_by(CoreJob.id.desc()).limit(limit)
    if label is not None:
        q = q.where(CoreJob.label == label)
    with session_scope(engine) as s:
        return [Job(id=i, what=what, state=state, detail=detail) for i, what, state, detail in s.execute(q)]


def _claim(engine: Engine) -> tuple[int, str, dict] | None:
    """The oldest queued job, now marked running by this worker; None when there is none."""
    while True:
        with session_scope(engine) as s:
            row = s.execute(select(CoreJob.id, CoreJob.kind, CoreJob.args)
                            .where(CoreJob.state == "queued").order_by(CoreJob.id).limit(1)).first()
            if row is None:
                return None
            took = s.execute(update(CoreJob).where(CoreJob.id == row.id, CoreJob.state == "queued")
                             .values(state="running", started_at=utcnow(), heartbeat_at=utcnow(),
                                     host=socket.gethostname()[:100]))
            if (took.rowcount or 0) == 1:
                return int(row.id), str(row.kind), dict(row.args or {})
        # another worker claimed it between the read and the update: try the next one


def _finish(engine: Engine, job_id: int, state: str, detail: str) -> None:
    with session_scope(engine) as s:
        s.execute(update(CoreJob).where(CoreJob.id == job_id)
                  .values(state=state, detail=detail[:2000], finished_at=utcnow()))


# ---------------------------------------------------------------------------------------
# the worker side


def fail_abandoned(engine: Engine, lease_s: float = LEASE_S, job_id: int | None = None) -> int:
    """Running jobs whose worker stopped beating more than `lease_s` ago (or, for rows from
    before the heartbeat, started that long ago): marked failed, so `stats` stops showing
    them as running. Only one job when `job_id` is given (the chat side's watch)."""
    cutoff = utcnow() - dt.timedelta(seconds=lease_s)
    last_sign = sa.func.coalesce(CoreJob.heartbeat_at, CoreJob.started_at)
    stale = update(CoreJob).where(CoreJob.state == "running", last_sign < cutoff)
    if job_id is not None:
        stale = stale.where(CoreJob.id == job_id)
    with session_scope(engine) as s:
        res = s.execute(stale.values(state="failed", finished_at=utcnow(), detail=DEAD_WORKER))
        return int(res.rowcount or 0)


class _Heartbeat:
    """Stamps one running job's row every `interval_s` until stopped (a daemon thread, so a
    killed worker stops beating with it)."""

    def __init__(self, engine: Engine, job_id: int, interval_s: float = HEARTBEAT_S) -> None:
        self.engine, self.job_id, self.interval_s = engine, job_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"job-{job_id}-heartbeat",
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with session_scope(self.engine) as s:
                    s.execute(update(CoreJob).where(CoreJob.id == self.job_id,
                                                    CoreJob.state == "running")
                              .values(heartbeat_at=utcnow()))
            except Exception:  # a busy database misses one beat; the lease allows several
                log.warning("job %s: heartbeat not written", self.job_id, exc_info=True)


def drain(settings: Settings, engine: Engine, heartbeat_s: float = HEARTBEAT_S) -> int:
    """Run every queued job, oldest first; returns how many ran (worker process only)."""
    fail_abandoned(engine)
    n = 0
    while (claimed := _claim(engine)) is not None:
        job_id, kind, args = claimed
        runner = RUNNERS.get(kind)
        try:
            if runner is None:
                raise ValueError(f"unknown job kind {kind!r}")
            with _Heartbeat(engine, job_id, heartbeat_s):
                detail, state = runner(settings, engine, args), "done"
        except JobSkipped as exc:
            log.info("admin job %s (%s) skipped: %s", job_id, kind, exc)
            detail, state = str(exc)[:600], "skipped"
        except Exception as exc:
            detail, state = _failed(job_id, kind, exc), "failed"
        _finish(engine, job_id, state, detail)
        n += 1
    return n


def drain_scheduled(settings: Settings, engine: Engine) -> int:
    """`drain` as the retrain worker's minute job: a database that does not answer (a restart,
    a network cut) is one warning line a minute, not APScheduler's traceback; the next minute
    retries."""
    from sqlalchemy.exc import OperationalError

    from scorer.store import db_error_line

    try:
        return drain(settings, engine)
    except OperationalError as exc:
        log.warning("admin jobs: the database does not answer (%s); retrying in a minute",
                    db_error_line(exc))
        return 0


def _failed(job_id: int, kind: str, exc: Exception) -> str:
    """The failed job's detail; logged as one line when the reason is an expected one (the
    configuration, the source), with its traceback otherwise (a bug to fix)."""
    from scorer.admin_sources import SourceNotAllowed
    from scorer.giphy import GiphyError
    from scorer.pool_storage import PoolError

    if isinstance(exc, JobRefused | GiphyError | PoolError | SourceNotAllowed):
        log.warning("admin job %s (%s) failed: %s", job_id, kind, exc)
        return str(exc)[:600]
    log.exception("admin job %s (%s) failed", job_id, kind)
    return str(exc)[:300]


def _run_pool_add(settings: Settings, engine: Engine, args: dict[str, Any]) -> str:
    from scorer.admin_sources import check_admin_source
    from scorer.pool import ingest

    # Checked again here: the queue is a table, and only an allowed SOURCE may be read.
    allowed = check_admin_source(settings, str(args["source"]))
    name = str(args["name"])
    # whose the pool is (a job queued before owners existed: the operator's); ingest refuses
    # a name another workspace took since the admin asked
    owner = str(args.get("owner", OPERATOR))
    report = ingest(settings, engine, name, allowed.source, confine=allowed.roots, owner=owner)
    if report.nothing_in:  # nothing to score: say why, with the reasons themselves
        raise JobRefused(_nothing_added(report))
    from bot.intent import get_parser
    from scorer.pipeline import score_pool

    # The zero-shot prior too, its words read by the bot's own intent parser.
    scored = score_pool(settings, engine, pool=name, prior=True,
                        text_model=get_parser(settings).distribution)
    refused = f" (refused: {report.first_refusals()})" if report.refused else ""
    waiting = unscored_elsewhere(engine, name, owner)
    # Once anything is scored the ranker leaves unscored GIFs out: say so, with the fix.
    rest = (f"; {waiting} GIFs of other pools are not scored yet and are not offered until "
            "`moodgif score` runs" if waiting else "")
    return f"{summary(report)}{refused}; {summary(scored)}{rest}"


def unscored_elsewhere(engine: Engine, pool: str, viewer: str = OPERATOR) -> int:
    """GIFs of pools other than `pool` with no prediction at all (added, never scored), among
    the pools `viewer` sees (`scorer.pool_owners.may_see`): a workspace is not told about
    another workspace's GIFs."""
    from scorer.store import Pool, PoolGif, Prediction

    query = (select(sa.func.count(sa.distinct(PoolGif.gif_sha)))
             .join(Pool, Pool.id == PoolGif.pool_id).where(Pool.name != pool)
             .where(~sa.exists().where(Prediction.gif_sha == PoolGif.gif_sha)))
    if viewer != OPERATOR:
        query = query.where(Pool.owner.in_((OPERATOR, viewer)))
    with session_scope(engine) as s:
        return int(s.scalar(query) or 0)


def _nothing_added(report: Any) -> str:
    """Why a pool add put no GIF in the pool, in one line."""
    kept = "; the new pool was not kept" if report.pool_dropped else ""
    if not report.refused:
        return f"nothing added to pool {report.pool}: the source names no GIF{kept}"
    return (f"nothing added to pool {report.pool}: {len(report.refused)} refused "
            f"({report.first_refusals()}){kept}")


# "Retrain now" that finds a retrain under way waits for it, then runs: a worker on an
# interval starts its own run at the same minute as it drains admin jobs, so the click was
# mostly thrown away ("skipped") for a run that had nothing new to learn.
BUSY_WAIT_S = 900.0
BUSY_POLL_S = 5.0


def _run_retrain(settings: Settings, engine: Engine, args: dict[str, Any]) -> str:
    from training.retrain import run_retrain

    deadline = time.monotonic() + BUSY_WAIT_S
    outcome = run_retrain(settings, engine, trigger="admin")
    while outcome.status == "busy" and time.monotonic() < deadline:
        time.sleep(BUSY_POLL_S)
        outcome = run_retrain(settings, engine, trigger="admin")
    if outcome.status == "busy":  # never ran: "done" would say it had
        raise JobSkipped(outcome.message.replace("a retrain is already running",
                                                 "a retrain was already running", 1))
    return summary(outcome)


RUNNERS: dict[str, Callable[[Settings, Engine, dict[str, Any]], str]] = {
    POOL_ADD: _run_pool_add, RETRAIN: _run_retrain}


def summary(report: Any) -> str:
    """One line for a job's outcome: a retrain's status, a report's own summary."""
    if report is None:
        return "done"
    if hasattr(report, "status") and hasattr(report, "message"):  # a RetrainOutcome
        return f"{report.status}: {report.message}"
    for attr in ("summary", "describe"):
        fn = getattr(report, attr, None)
        if callable(fn):
            return str(fn())
    return str(report)[:300]


__all__ = ["DEAD_WORKER", "HEARTBEAT_S", "LEASE_S", "POOL_ADD", "RETRAIN", "Job", "JobQueue", "JobRefused",
           "JobSkipped", "drain", "drain_scheduled", "enqueue", "fail_abandoned", "recent_jobs", "summary"]
