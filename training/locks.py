"""One run at a time across processes and hosts: a named database lock.

- PostgreSQL: a session-level `pg_try_advisory_lock` on a connection held for the whole run.
  The server drops it the moment that connection closes, so a killed process (SIGKILL, a
  crashed host) never leaves it behind.
- SQLite: a lease row in `job_locks` (name, holder, expires_at). The holder renews it from a
  heartbeat thread; another process may take it over when it has expired, or at once when
  the holder is a process on this host that no longer exists (the common "killed" case).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import delete, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from scorer.processes import pid_alive
from scorer.store import JobLock, session_scope, utcnow

log = logging.getLogger("moodgif.training.locks")

LEASE_S = 120.0
# The retrain's lock: a run, a prune and a rollback hold it, so none meets another half done.
RETRAIN_LOCK = "retrain"


class LockBusy(RuntimeError):
    """The lock is held by another run; the message names the holder when known."""


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _advisory_key(name: str) -> int:
    # pg advisory keys are signed 64-bit integers.
    return int.from_bytes(hashlib.sha256(f"moodgif:{name}".encode()).digest()[:8], "big", signed=True)


def _holder_is_dead(holder: str) -> bool:
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host: only the lease expiry can tell
    return int(pid) != os.getpid() and not pid_alive(int(pid))


class _Lease:
    def __init__(self, engine: Engine, name: str, lease_s: float) -> None:
        self.engine, self.name, self.lease_s = engine, name, lease_s
        self.holder = holder_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        now = utcnow()
        expires = now + dt.timedelta(seconds=self.lease_s)
        for _ in range(2):
            try:
                with session_scope(self.engine) as s:
                    row = s.get(JobLock, self.name)
                    if row is not None:
                        if row.expires_at > now and not _holder_is_dead(row.holder):
                            raise LockBusy(f"already running ({row.holder}, since "
                                           f"{row.acquired_at:%Y-%m-%d %H:%M:%S} UTC)")
                        log.warning("lock %s: taking over the stale lease of %s", self.name,
                                    row.holder)
                        s.delete(row)
                        s.flush()
                    s.add(JobLock(name=self.name, holder=self.holder, acquired_at=now,
                                  expires_at=expires))
                break
            except IntegrityError:
                continue  # someone inserted between our read and write: read again
        else:
            raise LockBusy("already running (lock contended)")
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                with session_scope(self.engine) as s:
                    s.execute(update(JobLock).where(
                        JobLock.name == self.name, JobLock.holder == self.holder
                    ).values(expires_at=utcnow() + dt.timedelta(seconds=self.lease_s)))
            except OperationalError as exc:  # a busy database: try again next beat
                log.warning("lock %s: renewing the lease failed: %s", self.name, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with session_scope(self.engine) as s:
            s.execute(delete(JobLock).where(JobLock.name == self.name,
                                            JobLock.holder == self.holder))


class _Advisory:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self.key = _advisory_key(name)
        self.conn: Connection | None = None

    def acquire(self) -> None:
        conn = self.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        conn.commit()
        if not got:
            conn.close()
            raise LockBusy("already running (PostgreSQL advisory lock held by another session)")
        self.conn = conn

    def release(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self.conn.commit()
        finally:
            # Closing returns the connection to the pool; invalidate so the session (and any
            # lock it might still hold) ends for sure.
            self.conn.invalidate()
            self.conn.close()
            self.conn = None


@contextmanager
def job_lock(engine: Engine, name: str, *, lease_s: float = LEASE_S) -> Iterator[None]:
    """Hold the named lock for the block, or raise LockBusy at once (never waits)."""
    lock: _Lease | _Advisory
    lock = _Advisory(engine, name) if engine.dialect.name == "postgresql" else _Lease(engine, name, lease_s)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
