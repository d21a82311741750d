"""An admin hides a GIF from a workspace (`hide`, `unhide`, `hidden`): the workspace's scoped
key `hidden_gifs`, which the ranking (`bot.flows.requests._rank`) and the polls
(`bot.ranking.poll_pair`) treat as never to be offered there. The commands themselves are
typed in `bot.flows.admin`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor
from bot.flows.context import CoreContext


@dataclass(frozen=True)
class HideGif:
    gif: str  # "last": the GIF last posted in this channel; else 8+ hex digits of its SHA-256


@dataclass(frozen=True)
class UnhideGif:
    gif: str  # 8+ hex digits of a hidden GIF's SHA-256, or "all"


@dataclass(frozen=True)
class ListHidden:
    pass


def answer(ctx: CoreContext, db: Session, actor: Actor, cmd: HideGif | UnhideGif | ListHidden) -> str:
    """Hide a GIF from this workspace (the workspace's `hidden_gifs`), show it again, or list."""
    hidden = list(sess.get_scoped(db, ctx.settings, actor.platform, actor.workspace, "",
                                  "hidden_gifs"))
    if not hidden and not isinstance(cmd, HideGif):
        return "No GIF is hidden in this workspace."
    if isinstance(cmd, ListHidden):
        return "Hidden in this workspace (`unhide SHA` shows one again):\n" + "\n".join(
            f"{sha[:12]}  {_title(ctx, db, sha)}" for sha in hidden)
    if isinstance(cmd, UnhideGif):
        gone = hidden if cmd.gif == "all" else [s for s in hidden if s.startswith(cmd.gif)]
        if len(gone) != 1 and cmd.gif != "all":
            return (f"No hidden GIF starts with {cmd.gif}." if not gone
                    else f"{cmd.gif} matches {len(gone)} hidden GIFs; give more digits.")
        sess.set_scoped(db, actor.platform, actor.workspace, "", "hidden_gifs",
                        [s for s in hidden if s not in gone] or None)
        return f"Shown again: {len(gone)} GIF{'' if len(gone) == 1 else 's'}."
    sha = _which_gif(ctx, db, actor, cmd.gif)
    if sha is None:
        return ("No GIF was posted in this channel yet." if cmd.gif == "last"
                else f"No GIF here has a SHA-256 starting with {cmd.gif}, or more than one does.")
    sess.set_scoped(db, actor.platform, actor.workspace, "", "hidden_gifs", [*hidden, sha])
    return (f"Hidden: {_title(ctx, db, sha)} ({sha[:12]}). moodgif will not offer it in this workspace "
            f"again (`unhide {sha[:12]}` undoes it); a message that already shows it stays until "
            "someone deletes it.")


def _which_gif(ctx: CoreContext, db: Session, actor: Actor, gif: str) -> str | None:
    if gif == "last":
        return sess.last_post_in(db, actor.platform, actor.workspace, actor.channel)
    matrix = ctx.ranker.matrix()
    # only the GIFs this workspace may be offered: another workspace's own pools are not
    # its to name (`scorer.pool_owners.may_see`), nor their titles its to read
    pools = matrix.channel_pools((), actor.pool_owner)
    matches = [sha for i, sha in enumerate(matrix.shas) if sha.startswith(gif)
               and (pools is None or any(matrix.pools[name][i] for name in pools))]
    return matches[0] if len(matches) == 1 else None


def _title(ctx: CoreContext, db: Session, sha: str) -> str:
    cards = ctx.cards(db, [sha], "")
    if not cards:
        return "a GIF no longer stored"
    return f"“{cards[0].title[:60]}”" if cards[0].title else "an untitled GIF"


__all__ = ["HideGif", "ListHidden", "UnhideGif", "answer"]
