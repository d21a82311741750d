"""Which long-running processes use a home, so a restore never swaps the database under them.

`moodgif serve` and `moodgif retrain --schedule` hold a shared lock on
`$MOODGIF_HOME/.in-use.lock` for as long as they run; `restore` takes it exclusively for the
whole swap. The kernel drops a lock when its process ends, however it ends (SIGKILL too), so
nothing is left behind. It sees the processes of this host only: a second host on the same
PostgreSQL database is the operator's to stop (docs/deploy.md).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".in-use.lock"


class HomeBusy(RuntimeError):
    """The home is in use by another process (a server, the retrain worker, or a restore)."""


def _open(home: Path) -> int:
    home.mkdir(parents=True, exist_ok=True)
    return os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)


@contextmanager
def home_lock(home: Path, *, exclusive: bool, doing: str) -> Iterator[None]:
    """Hold the home's lock while the block runs: shared for a server or worker, exclusive
    for a restore. Raises HomeBusy at once, never waits."""
    fd = _open(Path(home))
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeBusy(_busy_text(Path(home), exclusive, doing)) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _busy_text(home: Path, exclusive: bool, doing: str) -> str:
    if exclusive:
        return (f"cannot {doing}: a moodgif server, retrain or worker is running on {home}; stop it "
                "first (systemctl stop moodgif-bot moodgif-worker, or docker compose stop bot worker)")
    return f"cannot {doing}: a restore is running on {home}; start again when it has finished"


__all__ = ["LOCK_NAME", "HomeBusy", "home_lock"]
