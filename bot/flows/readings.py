"""A request's reading (feeling and topic), cached per process (`CoreContext.read`).

Cached per query, snapshot and asker's workspace (where it sees only some of the snapshot's
GIFs), so a preview's buttons re-read a request for free.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from bot.topics import Reading, TopicIndex, read_request

_READINGS_MAX = 2048


class ReadingCache:
    """Readings by (query, snapshot's words, viewer), the oldest dropped first; safe across
    threads."""

    def __init__(self) -> None:
        self._readings: OrderedDict[tuple[str, int, str], Reading] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, query: str, topics: TopicIndex | None, parser: Callable[[], Any],
             viewer: str = "", visible: np.ndarray | None = None) -> Reading:
        """`query` read against `topics`, among the rows `visible` to `viewer` (None: every
        row, the same reading for every such viewer); `parser` is asked for only when not
        cached (it may load a model)."""
        key = (query, id(topics), viewer if visible is not None else "")
        with self._lock:
            hit = self._readings.get(key)
            if hit is not None:
                return hit
        reading = _read_fresh(parser, topics, query, visible)
        with self._lock:
            self._readings[key] = reading
            while len(self._readings) > _READINGS_MAX:
                self._readings.popitem(last=False)
        return reading


def _read_fresh(parser: Callable[[], Any], topics: TopicIndex | None, query: str,
                visible: np.ndarray | None) -> Reading:
    reader = parser()
    if hasattr(reader, "word_roles"):
        return read_request(reader, topics, query, visible)
    # a parser without word roles (a test double) reads feelings only
    return Reading(reader.parse(query))


__all__ = ["ReadingCache"]
