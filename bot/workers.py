"""The chat process's worker children: start one, stop them all, and the retrain schedule
that starts one.

`moodgif serve` answers chat; the retrain trains a torch head, rescoring every GIF. Run in
the chat process (as before: a worker thread), it mapped torch and the training data into
the process that users wait on, which then kept that memory for good (~1 GB RSS after the
first run). Here the scheduler lives in the chat process but the job itself is a child
process (`python -m bot.retrain_worker`, the child's side) that gets the settings on stdin,
runs `training.retrain.scheduled_job` and exits, returning its memory. The same child drains
the admin job queue (`--jobs`: a pool add or "retrain now" asked for in chat;
`bot.flows.jobs`). This module imports neither torch nor the training code: only the light
`training.schedule`.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import subprocess
import sys
import threading
import time
from typing import Any

from scorer.settings import Settings
from training.schedule import make_trigger

log = logging.getLogger("moodgif.bot.workers")

JOB_ID = "moodgif-retrain"
# A stopping bot gives its worker children this long to unwind (inside serve's 20 s deadline).
WORKER_GRACE_S = 10.0
_LIVE: set[subprocess.Popen[bytes]] = set()  # worker children running now
_LIVE_LOCK = threading.Lock()


def run_in_worker(settings: Settings, timeout_s: float | None = None, *,
                  force: bool = False, jobs: bool = False) -> int:
    """Run one scheduled retrain in a child process; returns its exit status.

    ``force``: retrain even without enough new comparisons (a manual run; benchmarks).
    ``jobs``: only run the admin jobs the chat process queued (`bot.flows.jobs`).
    The child's log lines go to this process's stderr (same handlers as the CLI's).
    """
    flags = [*(["--force"] if force else []), *(["--jobs"] if jobs else [])]
    cmd = [sys.executable, "-m", "bot.retrain_worker", *flags]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    try:
        proc.communicate(pickle.dumps(settings), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    if proc.returncode != 0:
        log.warning("scheduled retrain worker exited with status %d", proc.returncode)
    return proc.returncode


def stop_workers(grace_s: float = WORKER_GRACE_S) -> int:
    """Stop every worker child this process started (SIGTERM: a retrain unwinds and marks its
    run failed, a pool add drops its empty pool), killing those still there after `grace_s`:
    a bot that stops must not leave a retrain behind that activates a model later.
    Returns how many were running."""
    with _LIVE_LOCK:
        procs = [p for p in _LIVE if p.poll() is None]
    for proc in procs:
        log.info("stopping worker child %d", proc.pid)
        proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker child %d did not stop within %g s: killed", proc.pid, grace_s)
            proc.kill()
            proc.wait()
    return len(procs)


async def _job(settings: Settings) -> None:
    # Waiting on the child happens in a thread: the event loop keeps answering chat.
    await asyncio.to_thread(run_in_worker, settings)


def make_scheduler(settings: Settings) -> Any:
    """An AsyncIOScheduler (not started) whose retrain job runs in a worker process."""
    trigger = make_trigger(settings)
    if trigger is None:
        return None
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    sched = AsyncIOScheduler(timezone="UTC")
    sched.add_job(_job, trigger, args=[settings], id=JOB_ID, name="moodgif retrain",
                  max_instances=1, coalesce=True, misfire_grace_time=3600,
                  replace_existing=True)
    return sched
