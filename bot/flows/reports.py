"""What an admin reads: the pools (from `scorer.pool.list_pools`, the one pool count) with
how many of their GIFs are ranked now, and the stats (ledger, model, retrain, jobs)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.events import Actor
from bot.flows.context import CoreContext
from bot.flows.jobs import recent_jobs
from bot.reports import ranked_count
from scorer.pool_owners import OPERATOR
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

    def stats_text(self, db: Session, actor: Actor) -> str:
        """A chat workspace's counts (the GIFs it may be offered, its own posts and votes) or,
        for the operator, the installation's; the model and retrain every workspace shares;
        and the jobs this viewer queued (with every retrain). Another workspace's numbers
        would tell of its private pools and its people's activity."""
        viewer = actor.pool_owner
        own = (actor.platform, actor.workspace) if viewer != OPERATOR else None
        st = stats(db, own)
        count_posts = select(func.count()).select_from(Post)
        if own is not None:
            count_posts = count_posts.where(Post.platform == own[0], Post.workspace == own[1])
        posts = db.scalar(count_posts) or 0
        mv = active_version(db)
        run = db.execute(select(RetrainRun.id, RetrainRun.status)
                         .order_by(RetrainRun.id.desc()).limit(1)).first()
        matrix = self.ctx.ranker.matrix()
        by_source = ", ".join(f"{k} {v}" for k, v in st["by_source"].items()) or "none yet"
        where = "this workspace" if own is not None else "whole installation"
        lines = [
            f"GIFs ranked ({where}): {matrix.visible_count(viewer)}"
            + (f" ({matrix.n_bt} with votes)" if own is None else ""),
            f"posts: {posts}; comparisons: {st['total']} ({by_source}) from {st['people']} people "
            f"({where})",
            f"active model: {f'#{mv.id} {mv.name}' if mv else 'none (not scored yet)'}",
            f"last retrain: {f'#{run[0]} {run[1]}' if run else 'never'}",
        ]
        lines += [f"job {i}: {label}: {state}{(' - ' + detail) if detail else ''}"
                  for i, label, state, detail in recent_jobs(db, viewer=viewer)]
        return "\n".join(lines)


__all__ = ["Reports"]
