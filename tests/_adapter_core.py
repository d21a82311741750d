"""The real bot core over a small real pool, for the Slack and Discord adapter tests.

A demo pool goes through the real ingest, a model version with designed scores makes it
rankable (no encoder runs), and `BotCore` is the real one on a real SQLite file.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core import BotCore
from bot.intent import IntentParser
from scorer.settings import Settings
from scorer.store import ChatSession, Comparison, Post, session_scope


class Clock:
    """A clock the test moves, so cooldowns never make a test wait."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_core(settings: Settings, engine: Engine, **overrides: Any) -> tuple[BotCore, Settings, Clock]:
    """A core on a 24-GIF demo pool. `overrides` replace settings (tokens, URLs...)."""
    settings = settings.override(**{"poll_share": 0.0, **overrides})
    pool = ingest_demo(settings, engine, demo_manifest())
    add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    clock = Clock()
    # Lexicon and edit distance only: the sentence model is not what these tests are about.
    parser = IntentParser(settings, use_embeddings=False)
    return BotCore(settings, engine, intent_parser=parser, clock=clock, seed=1), settings, clock


def ledger(engine: Engine) -> list[tuple[str, str, str, bool, str]]:
    """Every comparison as (source, winner, loser, tie, who), in id order."""
    with session_scope(engine) as s:
        rows = s.execute(select(Comparison).order_by(Comparison.id)).scalars().all()
        return [(r.source, r.winner, r.loser, r.tie, r.who) for r in rows]


def sources(engine: Engine) -> Counter[str]:
    return Counter(row[0] for row in ledger(engine))


def posts(engine: Engine) -> list[tuple[int, str, str, str]]:
    with session_scope(engine) as s:
        rows = s.execute(select(Post).order_by(Post.id)).scalars().all()
        return [(r.id, r.platform, r.message_ref, r.gif_sha) for r in rows]


def n_sessions(engine: Engine) -> int:
    with session_scope(engine) as s:
        return len(s.execute(select(ChatSession.id)).all())


def give_words(core: BotCore, engine: Engine, n: int = 4, *, title: str = "Cat being silly",
               tags: tuple[str, ...] = ("cats", "kitten")) -> list[str]:
    """Give the first `n` GIFs (by sha) a title and tags, as ingest keeps them, and rebuild
    the core's snapshot so its topic index has them. Returns those GIFs' shas."""
    from sqlalchemy import update

    from scorer.store import Gif

    with session_scope(engine) as s:
        shas = sorted(s.scalars(select(Gif.sha256)))[:n]
        s.execute(update(Gif).where(Gif.sha256.in_(shas)).values(title=title, tags=list(tags)))
    core.ranker.refresh()
    return shas
