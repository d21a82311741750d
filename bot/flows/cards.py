"""GIF cards, how adapters render a GIF, cached per process (`CoreContext.cards`).

A card is cached by sha256: a GIF's file, size and credit never change under it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.events import GifCard, credit_line
from scorer.settings import Settings
from scorer.store import Gif, session_scope

_CARDS_MAX = 4096
# Built once (an expanding IN): building a statement costs more than SQLite takes to answer it
_CARDS = select(Gif.sha256, Gif.title, Gif.source_url, Gif.bytes, Gif.width, Gif.height,
                Gif.attribution).where(Gif.sha256.in_(bindparam("shas", expanding=True)))


class CardCache:
    """Cards by sha256, the least recently used dropped first; safe across worker threads."""

    def __init__(self) -> None:
        self._cards: OrderedDict[str, GifCard] = OrderedDict()
        self._lock = threading.Lock()

    def cards(self, db: Session | None, engine: Engine, settings: Settings, shas: Sequence[str],
              emotion: str) -> tuple[GifCard, ...]:
        """The cards of `shas` in order, labelled `emotion` (GIFs no longer stored are left
        out); `db` None: a missing card is read in a session of its own on `engine`."""
        with self._lock:
            hits = {sha: self._cards[sha] for sha in shas if sha in self._cards}
            for sha in hits:
                self._cards.move_to_end(sha)
        missing = [sha for sha in dict.fromkeys(shas) if sha not in hits]
        if missing:
            hits.update(self._load(db, engine, settings, missing))
        return tuple(dataclasses.replace(hits[sha], emotion=emotion) for sha in shas if sha in hits)

    def _load(self, db: Session | None, engine: Engine, settings: Settings,
              shas: list[str]) -> dict[str, GifCard]:
        if db is None:
            with session_scope(engine) as s:
                return self._load(s, engine, settings, shas)
        out = _read_cards(db, settings, shas)
        with self._lock:
            self._cards.update(out)
            while len(self._cards) > _CARDS_MAX:
                self._cards.popitem(last=False)
        return out


def _read_cards(db: Session, settings: Settings, shas: list[str]) -> dict[str, GifCard]:
    """The stored GIFs among `shas` as cards, with no emotion yet."""
    from scorer.pool import gif_path

    rows = db.connection().execute(_CARDS, {"shas": shas}).all()
    return {r.sha256: GifCard(
        sha256=r.sha256, emotion="", title=r.title or "", source_url=r.source_url,
        local_path=gif_path(settings, r.sha256), bytes=int(r.bytes),
        width=int(r.width), height=int(r.height), credit=credit_line(r.attribution))
        for r in rows}


__all__ = ["CardCache"]
