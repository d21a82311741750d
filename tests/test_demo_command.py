"""The README's first command, end to end: `moodgif demo` from an empty home, then again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scorer.store import ModelVersion, Prediction, make_engine


def _demo(home: Path, count: int = 40) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOODGIF_HOME": str(home)}
    env.pop("MOODGIF_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--count", str(count), "--sessions", "160", "--no-serve"],
        env=env, capture_output=True, text=True, timeout=900,
    )


@pytest.mark.slow
def test_demo_from_nothing_then_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _demo(home)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["comparisons"] > 100
    assert summary["retrain"] == "activated"
    # The activated model orders the 40 demo GIFs by the hidden truth far better than chance
    # (random = 0; a constant scorer gives 0). The demo is seeded: 0.337 in each of 3 runs.
    assert summary["spearman_mean"] > 0.2, summary
    # The demo keeps its own home: nothing of it lands in the production home.
    assert not (home / "moodgif.db").exists() and not (home / "gifs").exists()
    engine = make_engine(f"sqlite:///{home / 'demo' / 'moodgif.db'}")
    with engine.connect() as conn:
        active = conn.execute(select(ModelVersion.id).where(ModelVersion.status == "active")).scalars().all()
        assert len(active) == 1
        n_pred = conn.execute(select(func.count()).select_from(Prediction)
                              .where(Prediction.model_version_id == active[0])).scalar_one()
    assert n_pred == 40  # every demo GIF scored by the new version

    second = _demo(home)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "reusing" in second.stderr
    assert "0 encoded" in second.stderr  # features come from the cache
    assert "already active" in second.stderr
    # another draw in the same home would be hidden by this one: it asks for its own home
    other = _demo(home, count=20)
    assert other.returncode == 1 and "already holds a demo of 40 GIFs" in other.stderr
    assert f"--home {home / 'demo-20-0'}" in other.stderr and not (home / "demo" / "demo-20-0").exists()
    engine.dispose()


def test_demo_settings_never_touch_the_production_database(tmp_path: Path) -> None:
    from bot.commands.serve import demo_settings
    from scorer.settings import load_settings

    prod = load_settings(env={"MOODGIF_DATABASE_URL": "postgresql://db/prod"}, home=str(tmp_path))
    demo = demo_settings(prod)
    assert demo.home == tmp_path / "demo" and demo.db_url == f"sqlite:///{tmp_path / 'demo' / 'moodgif.db'}"
    assert demo_settings(prod, tmp_path / "elsewhere").home == tmp_path / "elsewhere"
