"""How a moodgif process ends on SIGTERM: as it ends on Ctrl-C.

systemd and `docker stop` end a process with SIGTERM, which by default kills it where it
stands. Raised as SystemExit instead, it unwinds like Ctrl-C, so work half done cleans up
after itself (a pool add that added nothing removes its new pool). `serve` and the retrain
worker put their own graceful stop in its place while they run. Set by the `moodgif` entry
point and by the worker child (`bot.retrain_worker`).
"""

from __future__ import annotations

import signal
from typing import Any


def unwind_on_sigterm() -> None:
    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


__all__ = ["unwind_on_sigterm"]
