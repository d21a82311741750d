"""The database's clock, for session times shared by several hosts.

Previews, their expiry and the cooldowns are compared across every process that shares the
database: one host's clock running 20 minutes fast would see every other host's previews
as expired (and its own as not yet started elsewhere). So the bot core's default clock is
the database server's: this machine's `time.time()` plus the offset to the server's clock,
measured at start and again every `REFRESH_S` (one tiny query). SQLite runs inside this
process, on this host's clock, so its offset is 0 and nothing is queried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger("moodgif.bot.dbclock")

REFRESH_S = 60.0


class DbClock:
    """A callable clock (Unix seconds) that follows the database server's clock."""

    def __init__(self, engine: Engine, *, local: Callable[[], float] = time.time,
                 refresh_s: float = REFRESH_S) -> None:
        self.engine = engine
        self.local = local
        self.refresh_s = refresh_s
        self.offset = 0.0
        self._next = 0.0  # monotonic time of the next measurement
        self._lock = threading.Lock()
        self._remote = engine.dialect.name != "sqlite"

    def measure(self) -> float:
        """Query the server's clock now; returns the offset in seconds (server - local)."""
        t0 = self.local()
        with self.engine.connect() as conn:
            server = float(conn.execute(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one())
        t1 = self.local()
        return server - (t0 + t1) / 2  # the query's round trip split evenly

    def __call__(self) -> float:
        if self._remote and time.monotonic() >= self._next:
            with self._lock:
                if time.monotonic() >= self._next:
                    try:
                        offset = self.measure()
                        if abs(offset - self.offset) > 5:
                            log.warning("this host's clock is %.1f s off the database's; "
                                        "session times follow the database", -offset)
                        self.offset = offset
                    except Exception as exc:  # keep the last offset; try again later
                        log.debug("database clock not read: %s", type(exc).__name__)
                    self._next = time.monotonic() + self.refresh_s
        return self.local() + self.offset


__all__ = ["DbClock"]
