"""Where the third-party data for local checks lives (`../shared/data`: real GIFs, EmotionGIF
tweets, GIFGIF facts). It is never copied into the repository; tests that read it skip when it
is absent, and benchmarks exit with a clear message.

The one owner of that path for tests and benchmarks: `MOODGIF_SHARED_DATA` when set, else the
first `shared/data` beside the checkout or above it (a worktree sits a level or two deeper).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    """The shared data folder; the usual place beside the checkout when none exists."""
    if env := os.environ.get("MOODGIF_SHARED_DATA"):
        return Path(env)
    for base in (REPO.parent, *REPO.parent.parents):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return REPO.parent / "shared" / "data"


SHARED_DATA = shared_data()
