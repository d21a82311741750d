"""Another process's long write on a SQLite file: a thread holding BEGIN IMMEDIATE (the write
lock) until the block ends; `released` is set the moment it lets go."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def write_lock_held(path: Path | str) -> Iterator[threading.Event]:
    holding, done, released = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        holding.set()
        done.wait(120)
        released.set()
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(60), "the writer never took the lock"
        yield released
    finally:
        done.set()
        thread.join(60)
