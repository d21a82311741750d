"""The chat process's scheduled retrain runs in a worker process, never importing torch here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_retrain import make_pool

from bot import workers
from training.retrain import history, make_trigger

REPO = Path(__file__).resolve().parent.parent


def test_same_trigger_as_training(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    for cron, minutes in (("17 3 * * *", 0.0), ("", 5.0), ("", 0.0), ("*/10 * * * *", 0.0)):
        s = sqlite_settings.override(training__retrain_cron=cron,
                                     training__retrain_interval_min=minutes)
        ours, theirs = workers.make_trigger(s), make_trigger(s)
        assert str(ours) == str(theirs)
        sched = workers.make_scheduler(s)
        assert (sched is None) == (theirs is None)
        if sched is not None:
            job = sched.get_job(workers.JOB_ID)
            assert job.max_instances == 1 and job.coalesce is True


@pytest.mark.slow
def test_the_job_runs_in_a_child_process(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    make_pool(sqlite_settings, sqlite_engine, n=10)
    assert workers.run_in_worker(sqlite_settings, timeout_s=300) == 0
    runs = history(sqlite_engine)
    assert runs and runs[0]["trigger"] == "schedule" and runs[0]["status"] == "skipped"


def test_serving_modules_do_not_import_torch() -> None:
    code = ("import sys, bot.serve, bot.cli, bot.workers, bot.retrain_worker, bot.adapters.slack, "
            "bot.adapters.discord, bot.embedder; "
            "bad = [m for m in ('torch', 'transformers', 'sentence_transformers', 'training.fit')"
            " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_stopping_bot_stops_its_retrain_child_which_says_it_was_interrupted(
        sqlite_settings, sqlite_engine, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """serve's shutdown once left the child running (parent PID 1), and it activated a model
    90 s after the bot had gone; the run also stayed "running" until the next one."""
    import threading
    import time

    from test_retrain import simulate_votes

    truth = make_pool(sqlite_settings, sqlite_engine)
    simulate_votes(sqlite_engine, truth, 1500)
    marker = tmp_path / "held"
    monkeypatch.setenv("MOODGIF_RETRAIN_HOLD_AT", "train")
    monkeypatch.setenv("MOODGIF_RETRAIN_HOLD_FILE", str(marker))
    monkeypatch.setenv("MOODGIF_RETRAIN_HOLD_S", "300")
    codes: list[int] = []
    child = threading.Thread(target=lambda: codes.append(workers.run_in_worker(sqlite_settings)))
    child.start()
    deadline = time.monotonic() + 180
    while not marker.exists() and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.1)
    assert marker.exists(), "the retrain child never reached its held step"
    assert workers.stop_workers(grace_s=60) == 1
    child.join(60)
    assert not child.is_alive() and codes and codes[0] != 0
    (run,) = history(sqlite_engine)
    assert run["status"] == "failed" and "interrupted at step train" in run["error"], run
    assert workers.stop_workers() == 0


def test_the_worker_child_run_by_hand_says_what_to_run_instead(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The docs name `python -m bot.retrain_worker --jobs`: typed by hand it was an EOFError
    traceback (it reads the parent's pickled settings on standard input)."""
    proc = subprocess.run([sys.executable, "-m", "bot.retrain_worker", "--jobs"], cwd=REPO,
                          input=b"", capture_output=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MOODGIF_HOME": str(tmp_path)})
    said = proc.stderr.decode()
    assert proc.returncode == 2 and "moodgif retrain --schedule" in said and "Traceback" not in said


def test_a_scheduled_run_without_its_database_says_so_in_one_line(sqlite_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    """A database outage made every scheduled run end in APScheduler's traceback; now one
    warning line, and the scheduler goes on. The database is really unreachable (a PostgreSQL
    URL on a port nothing listens on)."""
    import logging

    from training.retrain import scheduled_job

    dead = sqlite_settings.override(database_url="postgresql://moodgif@127.0.0.1:9/none?connect_timeout=2")
    caplog.set_level(logging.INFO, logger="moodgif")
    outcome = scheduled_job(dead)
    assert outcome.status == "failed" and outcome.message.startswith("the database does not answer")
    said = [r for r in caplog.records if "scheduled retrain" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING" and not said[0].exc_info


def test_the_workers_job_poll_without_its_database_says_so_in_one_line(sqlite_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from sqlalchemy import create_engine

    from bot.flows.jobs import drain_scheduled

    dead = create_engine("postgresql+psycopg://moodgif@127.0.0.1:9/none?connect_timeout=2")
    caplog.set_level(logging.INFO, logger="moodgif")
    try:
        assert drain_scheduled(sqlite_settings, dead) == 0
    finally:
        dead.dispose()
    said = [r for r in caplog.records if "admin jobs" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING" and not said[0].exc_info
    assert "the database does not answer" in said[0].getMessage()
