"""The worker child (`python -m bot.retrain_worker [--force] [--jobs]`): the settings come on
stdin, pickled, from `bot.workers.run_in_worker` in the chat process. It runs the scheduled
retrain (`training.retrain.scheduled_job`; `--force`: a manual run) and then drains the admin
job queue (`bot.flows.jobs`; `--jobs`: only that), under the home's shared lock, and exits,
returning torch's memory. A SIGTERM from a stopping bot unwinds it (`bot.sigterm`).
"""

from __future__ import annotations

import logging
import pickle
import sys

from scorer.openmp import prefer_passive_waits
from scorer.settings import Settings

prefer_passive_waits()  # the worker child trains and scores: before torch is imported

log = logging.getLogger("moodgif.bot.retrain_worker")


BY_HAND = ("moodgif: bot.retrain_worker is the worker child that `moodgif serve` and `moodgif retrain "
           "--schedule` start, with their settings on its standard input; by hand, run `moodgif "
           "retrain --once` (a retrain) or `moodgif retrain --schedule` (the worker that also runs "
           "queued admin jobs)")


def _settings_from_parent() -> Settings | None:
    """The pickled settings `bot.workers.run_in_worker` writes; None when a person ran this
    (a terminal, or nothing readable on standard input)."""
    if sys.stdin.isatty():
        return None
    try:
        settings = pickle.loads(sys.stdin.buffer.read())
    except (EOFError, pickle.UnpicklingError, ValueError):
        return None
    return settings if isinstance(settings, Settings) else None


def main() -> int:
    from bot.sigterm import unwind_on_sigterm

    unwind_on_sigterm()  # a stopped bot's queued pool add must not leave an empty pool behind
    settings = _settings_from_parent()
    if settings is None:
        print(BY_HAND, file=sys.stderr)
        return 2
    from bot.logs import setup_logging

    setup_logging(settings)
    from bot.home_lock import HomeBusy, home_lock

    try:  # a restore must not swap the database under a running retrain or pool add
        with home_lock(settings.home, exclusive=False, doing="run a retrain or an admin job"):
            return _work(settings)
    except HomeBusy as exc:
        log.warning("%s", exc)
        return 3


def _work(settings: Settings) -> int:
    from bot.flows.jobs import drain
    from scorer.store import make_engine
    from training.retrain import run_retrain, scheduled_job

    engine = make_engine(settings.db_url)
    if "--jobs" in sys.argv[1:]:
        drain(settings, engine)
        return 0
    if "--force" in sys.argv[1:]:
        outcome = run_retrain(settings, engine, trigger="manual", force=True)
    else:
        outcome = scheduled_job(settings)
        drain(settings, engine)  # admin jobs queued while no worker ran
    return 1 if outcome.status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
