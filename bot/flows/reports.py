"""What an admin reads: the pools (from `scorer.pool.list_pools`, the one pool count) with
how many of their GIFs are ranked now, and the stats (ledger, model, retrain, jobs)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.flows.context import CoreContext
from bot.flows.jobs import recent_jobs
from bot.reports import ranked_count
from scorer.store import Post, RetrainRun
from scorer.versions import active_version
from training.comparisons import stats


class Reports:
    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    def pools_text(self, db: Session, viewer: str) -> str:
        """The pools `viewer` (`Actor.pool_owner`) sees: the operator's and its own."""
        from scorer.pool import list_pools  # ingest's module: not loaded until an admin asks

        pools = list_pools(db, viewer)
        if not pools:
            return "No pools yet. Add one with `pools add NAME FOLDER|MANIFEST|URL-LIST`."
        matrix = self.ctx.ranker.matrix()
        lines = [f"{p['name']}: {p['gifs']} GIFs, {ranked_count(matrix, p['name'])} ranked"
                 + (" (this workspace's)" if p["owner"] and p["owner"] == viewer else "")
                 for p in pools]
        return "Pools:\n" + "\n".join(lines)

    def stats_text(self, db: Session, viewer: str) -> str:
        """The installation's counts, and the jobs `viewer` queued (with every retrain)."""
        st = stats(db)
        posts = db.scalar(select(func.count()).select_from(Post)) or 0
        mv = active_version(db)
        run = db.execute(select(RetrainRun.id, RetrainRun.status)
                         .order_by(RetrainRun.id.desc()).limit(1)).first()
        matrix = self.ctx.ranker.matrix()
        by_source = ", ".join(f"{k} {v}" for k, v in st["by_source"].items()) or "none yet"
        lines = [
            # whole-installation totals, said so: a workspace's own share is not counted apart
            f"GIFs ranked (whole installation): {matrix.size} ({matrix.n_bt} with votes)",
            f"posts: {posts}; comparisons: {st['total']} ({by_source}) from {st['people']} people "
            "(whole installation)",
            f"active model: {f'#{mv.id} {mv.name}' if mv else 'none (not scored yet)'}",
            f"last retrain: {f'#{run[0]} {run[1]}' if run else 'never'}",
        ]
        lines += [f"job {i}: {label}: {state}{(' - ' + detail) if detail else ''}"
                  for i, label, state, detail in recent_jobs(db, viewer=viewer)]
        return "\n".join(lines)


__all__ = ["Reports"]
