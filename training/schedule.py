"""When the retrain runs: the APScheduler trigger from settings (one definition).

Light on purpose (settings and apscheduler only): the chat process builds the same trigger
for its retrain worker (`bot.workers`) without importing torch or the training code.
"""

from __future__ import annotations

from typing import Any

from scorer.settings import Settings, SettingsError


def make_trigger(settings: Settings) -> Any:
    """An interval if `retrain_interval_min` > 0, else the crontab; None = scheduling off."""
    if settings.training.retrain_interval_min > 0:
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(minutes=settings.training.retrain_interval_min)
    if settings.training.retrain_cron.strip():
        from apscheduler.triggers.cron import CronTrigger

        try:
            return CronTrigger.from_crontab(settings.training.retrain_cron.strip(), timezone="UTC")
        except ValueError as exc:
            raise SettingsError(f"MOODGIF_RETRAIN_CRON {settings.training.retrain_cron!r} is not a "
                                f"crontab: {exc}") from None
    return None
