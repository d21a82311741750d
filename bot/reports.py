"""What the admin pages show, as data (and one plot): pools with their ranking and prior
coverage, the top GIFs of an emotion, and the distribution of an emotion's scores.

The web adapter only renders these (`bot/adapters/web.py` + its templates). The order of the
top GIFs is the ranker's (`bot.ranking.rank` without exploration), "voted" is the ledger's
(`training.ledger_report.compared`), and a GIF's words are the pool's.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot import session as sess
from bot.events import gif_url
from bot.learned_phrases import memory_since, workspace_phrases
from bot.ranking import rank
from bot.scoped_settings import workspaces_setting
from bot.score_matrix import ScoreMatrix
from scorer.emotions import NAMES
from scorer.settings import RATINGS, Settings
from scorer.store import Gif, session_scope
from training.ledger_report import compared

TOP_K = 24
ACTIVE_DAYS = 90  # the workspaces listed when learning words is off (no memory window)
SENDS_READ = 10_000  # per workspace on the workspaces page (a chat admin's `phrases` reads 50,000)


def ranked_count(matrix: ScoreMatrix, pool: str) -> int:
    """How many of a pool's GIFs the ranking snapshot can serve now."""
    return int(matrix.pools[pool].sum()) if pool in matrix.pools else 0


def pool_rows(engine: Engine, matrix: ScoreMatrix) -> list[dict[str, Any]]:
    """Every pool: GIFs, how many the snapshot ranks, how many the zero-shot prior scored and
    how many have only its wide prior (no face, no words: explored more until votes place them)."""
    from scorer.pool import list_pools, pool_gifs
    from scorer.prior import prior_summary

    rows = []
    for pool in list_pools(engine):
        name = pool["name"]
        prior = prior_summary(engine, pool_gifs(engine, name))
        ranked = ranked_count(matrix, name)
        rows.append({**pool, "ranked": ranked, "prior_scored": prior["scored"],
                     "prior_wide": prior["wide"]})
    return rows


def gif_words(engine: Engine, shas: list[str]) -> dict[str, dict[str, Any]]:
    """The GIFs' own words (title, tags, slug), as the pool stored them."""
    with session_scope(engine) as s:
        return {g.sha256: {"title": g.title or "", "tags": list(g.tags or []), "slug": g.slug or ""}
                for g in s.scalars(select(Gif).where(Gif.sha256.in_(shas)))}


def workspace_rows(engine: Engine, settings: Settings, now: dt.datetime,
                   limit: int = 50, teaches: Callable[[str], bool] = lambda _key: True
                   ) -> list[dict[str, Any]]:
    """The workspaces an operator looks after: those with previews in the phrase memory's
    window (else the last `ACTIVE_DAYS`; the most recently active first, at most `limit`) and those that hide GIFs; each
    with the words its people's Sends have taught (`bot.learned_phrases`) and its hidden GIFs.
    The same facts as a chat admin's `phrases` and `hidden`, for every workspace at once."""
    since = memory_since(settings, now)
    active_since = since or now - dt.timedelta(days=ACTIVE_DAYS)
    seen = {(p, w): {"previews": n, "last_active": at}
            for p, w, n, at in sess.active_workspaces(engine, active_since, limit)}
    hidden = {(p, w): list(v or []) for p, w, v in workspaces_setting(engine, "hidden_gifs") if v}
    words = gif_words(engine, sorted({sha for shas in hidden.values() for sha in shas}))
    rows = []
    for platform, workspace in [*seen, *(k for k in hidden if k not in seen)]:
        phrases = ([] if since is None else  # each workspace's newest Sends: the page stays quick at 50
                   workspace_phrases(sess.phrase_sends(engine, platform, workspace, since, limit=SENDS_READ),
                                     limit=100))
        rows.append({
            "platform": platform, "workspace": workspace,
            **seen.get((platform, workspace), {"previews": 0, "last_active": None}),
            # only words whose reading the Sends change (`teaches`: not a sure feeling word)
            "phrases": [{"words": p.key, "emotion": p.learned.emotion, "people": p.learned.people,
                         "senders": p.learned.senders} for p in phrases if teaches(p.key)],
            "hidden": [{"sha256": sha, "title": words.get(sha, {}).get("title", ""),
                        "stored": sha in words} for sha in hidden.get((platform, workspace), [])],
        })
    return rows


def top_gifs(engine: Engine, matrix: ScoreMatrix, emotion: int, k: int = TOP_K) -> list[dict[str, Any]]:
    """The k GIFs with the highest posterior mean on one emotion, across every pool and
    rating; each with its mean, sd, words and whether people compared it on this emotion."""
    if not matrix.size:
        return []
    ranked = rank(matrix, emotion, k, rng=np.random.default_rng(0), ceiling=RATINGS[-1],
                  exploration="none", rate=0.0)
    words = gif_words(engine, ranked.shas)
    voted = compared(engine, emotion, ranked.shas)
    out = []
    for sha in ranked.shas:
        i = matrix.index[sha]
        out.append({"sha256": sha, "mean": float(matrix.mean[emotion, i]),
                    "sd": float(matrix.sd[emotion, i]), "voted": sha in voted,
                    "url": gif_url(sha), **words.get(sha, {})})
    return out


def distribution_png(engine: Engine, matrix: ScoreMatrix, emotion: int) -> bytes:
    """PNG histogram of one emotion's posterior means, the GIFs people compared on it drawn
    separately."""
    from matplotlib.figure import Figure  # no pyplot: thread-safe, no global state

    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.add_subplot()
    if matrix.size and matrix.scored:
        col = matrix.mean[emotion]
        voted = np.zeros(matrix.size, dtype=bool)
        rows = [matrix.index[s] for s in compared(engine, emotion) if s in matrix.index]
        voted[rows] = True
        bins = np.linspace(0, 1, 31)
        ax.hist(col[~voted], bins=bins, alpha=0.7, label=f"model only ({int((~voted).sum())})")
        if voted.any():
            ax.hist(col[voted], bins=bins, alpha=0.7, label=f"with votes ({int(voted.sum())})")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "not scored yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{NAMES[emotion]} score (posterior mean)")
    ax.set_ylabel("GIFs")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
