"""Is a process still there? One answer for the job locks (a dead holder's lock is taken over)
and the decode workers (a worker whose parent died exits)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie counts: it is not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


__all__ = ["pid_alive"]
