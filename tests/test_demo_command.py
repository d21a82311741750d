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


def test_an_interrupted_simulation_is_finished_by_the_next_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C during step 4 used to leave the demo with the few comparisons made so far for
    good (a rerun saw comparisons and reused them); now the rerun makes the rest."""
    from bot import demo
    from bot.commands.serve import demo_settings
    from bot.simulate import SIM_PLATFORM
    from scorer.migrate import init_db
    from scorer.settings import load_settings
    from scorer.store import Comparison

    settings = demo_settings(load_settings(env={}, home=str(tmp_path)))
    engine = init_db(settings.db_url)
    truth, manifest = demo._pool_files(settings, 20, 0)
    demo._ingest(settings, engine, truth, manifest)

    class CtrlC:
        """The progress bar, with a Ctrl-C arriving at the 60th request."""

        def __init__(self, total: int, desc: str, initial: int = 0) -> None:
            self.n = initial

        def __enter__(self) -> CtrlC:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: int) -> None:
            self.n += n
            if self.n == 60:
                raise KeyboardInterrupt

    def comparisons() -> int:
        return demo._count(engine, select(func.count()).select_from(Comparison)
                           .where(Comparison.platform == SIM_PLATFORM))

    with monkeypatch.context() as m:
        m.setattr(demo, "_bar", CtrlC)
        with pytest.raises(KeyboardInterrupt):
            demo._simulate_users(settings, engine, truth, 120, 0)
    cut_short = comparisons()
    assert demo._meta(engine, demo.SIM_DONE_KEY) == 50  # noted every 25 requests
    finished = demo._simulate_users(settings, engine, truth, 400, 0)  # --sessions of the first run holds
    assert "simulation" in finished and comparisons() > cut_short
    assert demo._meta(engine, demo.SIM_DONE_KEY) == demo._meta(engine, demo.SIM_TARGET_KEY) == 120
    again = demo._simulate_users(settings, engine, truth, 120, 0)
    assert "simulation" not in again and again["comparisons"] == comparisons()
    engine.dispose()


def test_a_taken_port_or_an_unusable_demo_database_is_said_before_any_work(tmp_path: Path) -> None:
    """Both were found late or named the wrong thing: a taken port after the whole pipeline
    had run, and a demo database that cannot be opened as the production one
    (MOODGIF_DATABASE_URL), which the demo never uses."""
    import socket

    from click.testing import CliRunner

    from bot.cli import cli

    env = {"MOODGIF_HOME": str(tmp_path / "home"), "MOODGIF_DATABASE_URL": ""}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        res = CliRunner().invoke(cli, ["demo", "--count", "20", "--port", str(port),
                                       "--home", str(tmp_path / "demo")], env=env)
    assert res.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in res.output, res.output
    assert "--port N" in res.output and not list((tmp_path / "demo").glob("demo-*"))  # nothing drawn

    blocked = tmp_path / "blocked"
    (blocked / "moodgif.db").mkdir(parents=True)  # the file's place is taken: SQLite cannot open it
    res = CliRunner().invoke(cli, ["demo", "--count", "20", "--no-serve", "--home", str(blocked)], env=env)
    assert res.exit_code == 1 and f"cannot open the demo's database in {blocked}" in res.output, res.output
    assert "MOODGIF_DATABASE_URL" not in res.output and "Traceback" not in res.output


def test_a_demo_without_virtual_users_is_finished_not_resumed(tmp_path: Path) -> None:
    """--sessions 0 leaves no comparisons: it is a finished simulation, not one that stopped
    after 0 of 0 requests at every later run."""
    from bot import demo
    from bot.commands.serve import demo_settings
    from scorer.migrate import init_db
    from scorer.settings import load_settings

    settings = demo_settings(load_settings(env={}, home=str(tmp_path)))
    engine = init_db(settings.db_url)
    truth, manifest = demo._pool_files(settings, 20, 0)
    demo._ingest(settings, engine, truth, manifest)
    assert "simulation" in demo._simulate_users(settings, engine, truth, 0, 0)
    assert demo._simulate_users(settings, engine, truth, 0, 0) == {"comparisons": 0}
    engine.dispose()


def test_the_demo_port_check_takes_ipv6_hosts_as_serve_does() -> None:
    import socket

    import click

    from bot.commands.serve import _port_free_or_fail

    try:
        probe = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with probe:
        port = probe.getsockname()[1]
        with pytest.raises(click.ClickException, match=rf"cannot listen on \[::1\]:{port} "):
            _port_free_or_fail("::1", port)
    _port_free_or_fail("::1", port)  # free again: no error (it was "address family not supported")


def test_a_demo_home_another_moodgif_is_writing_is_said_busy_not_unwritable(tmp_path: Path) -> None:
    from _sqlite_writer import write_lock_held
    from click.testing import CliRunner

    from bot.cli import cli

    home = tmp_path / "demo"
    home.mkdir()
    with write_lock_held(home / "moodgif.db"):  # another demo in this home, migrating
        res = CliRunner().invoke(cli, ["demo", "--count", "20", "--no-serve", "--home", str(home)],
                                 env={"MOODGIF_HOME": str(tmp_path / "home"), "MOODGIF_DATABASE_URL": ""})
    assert res.exit_code == 1 and "is busy: another moodgif is using this home" in res.output, res.output
    assert "folder you can write to" not in res.output
