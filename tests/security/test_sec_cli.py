"""The real CLI does not print secrets given in a database URL's query."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_config_show_masks_a_password_in_the_url_query(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MOODGIF_HOME": str(tmp_path),
           "MOODGIF_DATABASE_URL": "postgresql://moodgif@db.internal/moodgif?password=hunter2&sslmode=require",
           "MOODGIF_ADMIN_TOKEN": "tok-123456"}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "config", "show"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "hunter2" not in out.stdout and "tok-123456" not in out.stdout
    assert "password=***" in out.stdout and "sslmode=require" in out.stdout
