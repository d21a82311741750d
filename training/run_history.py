"""The retrain runs as people read them: `moodgif retrain history` and `/admin/retrains`.

A plain SELECT of the `retrain_runs` rows, apart from `training.retrain` on purpose: that
module imports the head training (torch) at the top, and the chat process, which shows this
history on its admin page, must never load torch (docs/bot.md). `training.retrain`
re-exports `history` from here.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from scorer.store import RetrainRun, session_scope

# What a run's message says when the candidate could not be measured: no vote fell on a GIF
# it was not trained on. Runs before this wording said "dev RMSE nan" instead.
NOT_MEASURED = "no held-out comparisons yet to measure it on"
_OLD_NOT_MEASURED = "dev RMSE nan"


def history(engine: Engine, limit: int = 20) -> list[dict]:
    """The newest `limit` runs, newest first, with their metrics made readable."""
    with session_scope(engine) as s:
        runs = s.scalars(select(RetrainRun).order_by(RetrainRun.id.desc()).limit(limit)).all()
        return [{
            "id": r.id, "trigger": r.trigger, "status": r.status, "step": r.step,
            "started_at": r.started_at, "finished_at": r.finished_at, "host": r.host,
            "bt_fit_id": r.bt_fit_id, "model_version_id": r.model_version_id,
            "metrics": readable_metrics(r.metrics or {}), "error": r.error,
        } for r in runs]


def readable_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics with no NaN in them (None instead) and its message in today's words:
    rows written by older versions stored NaN for "not measured"."""
    out = {k: _finite(v) for k, v in metrics.items()}
    message = out.get("message")
    if isinstance(message, str):
        out["message"] = message.replace(_OLD_NOT_MEASURED, NOT_MEASURED)
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


__all__ = ["NOT_MEASURED", "history", "readable_metrics"]
