"""Read-only views of the comparisons ledger for people: the admin pages' summary, the most
recent rows, and which GIFs people have compared on an emotion.

The ledger's writers and the loader the fits read stay in `training/comparisons.py` (which
also owns `stats`, the counts by source and emotion, shared with `moodgif retrain history`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.engine import Engine

from scorer.emotions import NAMES
from scorer.store import Comparison, session_scope
from training.comparisons import is_reference, stats


def compared(engine: Engine, emotion: int, among: Iterable[str] | None = None) -> set[str]:
    """The GIFs that appear in at least one comparison on `emotion` (as winner or loser, thumbs
    included): the GIFs whose score on it people's votes moved. `among` limits the answer
    (and the query) to those GIFs; None: every compared GIF (bounded by the ledger, not the
    pool). The reference items of thumbs votes are never in the answer."""
    shas = None if among is None else list(dict.fromkeys(among))
    if shas == []:
        return set()
    wins = select(Comparison.winner.label("sha")).where(Comparison.emotion == emotion)
    losses = select(Comparison.loser.label("sha")).where(Comparison.emotion == emotion)
    if shas is not None:
        wins = wins.where(Comparison.winner.in_(shas))
        losses = losses.where(Comparison.loser.in_(shas))
    with session_scope(engine) as s:
        found = set(s.scalars(union(wins, losses)))
    return {sha for sha in found if not is_reference(sha)}


def recent(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` comparisons, newest first (who stays hashed: it is not shown)."""
    with session_scope(engine) as s:
        rows = s.execute(select(Comparison.id, Comparison.source, Comparison.emotion,
                                Comparison.winner, Comparison.loser, Comparison.tie,
                                Comparison.platform, Comparison.created_at)
                         .order_by(Comparison.id.desc()).limit(limit)).all()
    return [{"id": r[0], "source": r[1], "emotion": NAMES[r[2]] if 0 <= r[2] < len(NAMES) else r[2],
             "winner": r[3], "loser": r[4], "tie": bool(r[5]), "platform": r[6],
             "at": r[7].isoformat(timespec="seconds")} for r in rows]


def summary(engine: Engine, limit: int = 50) -> dict[str, Any]:
    """`stats` plus the `limit` most recent rows under "recent" (the comparisons page)."""
    return {**stats(engine), "recent": recent(engine, limit)}
