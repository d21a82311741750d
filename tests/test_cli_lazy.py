"""`moodgif` imports a subcommand's module only when it runs; the listing stays complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from bot.cli import MoodgifGroup, cli
from bot.commands import SUBCOMMANDS, register_all, register_subcommand

REPO = Path(__file__).resolve().parent.parent


def _eager() -> click.Group:
    group = click.Group("moodgif")
    register_all(group)
    return group


def _listing(help_text: str) -> list[str]:
    return help_text.split("Commands:\n", 1)[1].splitlines()


def test_the_table_names_every_command_the_modules_register() -> None:
    visible = {n for n, c in _eager().commands.items() if not c.hidden}
    assert visible == set(SUBCOMMANDS)


def test_summaries_shorten_exactly_like_the_commands_own_help() -> None:
    for name, cmd in _eager().commands.items():
        summary = click.Command(name, help=SUBCOMMANDS[name].summary)
        for limit in (20, 45, 74, 1000):
            assert summary.get_short_help_str(limit) == cmd.get_short_help_str(limit), (name, limit)


def test_help_lists_every_subcommand_as_the_eager_group_would() -> None:
    lazy = CliRunner().invoke(cli, ["--help"])
    assert lazy.exit_code == 0
    eager = CliRunner().invoke(_eager(), ["--help"])
    assert _listing(lazy.output) == _listing(eager.output)
    for name in SUBCOMMANDS:
        assert any(line.split()[0] == name for line in _listing(lazy.output)), name


def _fresh_process(args: list[str], tmp_path: Path) -> dict:
    """Run `moodgif ARGS` in a new interpreter; which modules it had imported at the end."""
    code = (
        "import json, sys\n"
        "from bot.cli import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='moodgif')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "mods = sorted(m for m in sys.modules if m.startswith(('bot.commands.', 'sqlalchemy', "
        "'torch', 'pydantic')))\n"
        "print('\\n' + json.dumps({'code': code, 'modules': mods}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MOODGIF_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stdout": out.stdout}


def test_help_imports_no_subcommand_module_and_no_settings(tmp_path: Path) -> None:
    got = _fresh_process(["--help"], tmp_path)
    assert got["code"] == 0
    assert got["modules"] == []
    assert "bt-fit" in got["stdout"] and "simulate" in got["stdout"]


def test_bt_fit_imports_its_own_module_only(tmp_path: Path) -> None:
    data = tmp_path / "votes.csv"
    data.write_text("metric,left,right,choice\nhappiness,a,b,left\nhappiness,b,c,right\n"
                    "fear,a,c,neither\n")
    got = _fresh_process(["bt-fit", str(data), "--out", str(tmp_path / "s.csv")], tmp_path)
    assert got["code"] == 0
    assert (tmp_path / "s.csv").read_text().startswith("gif_id,")
    commands = [m for m in got["modules"] if m.startswith("bot.commands.")]
    assert commands == ["bot.commands.bt"]
    assert not [m for m in got["modules"] if m.startswith(("sqlalchemy", "torch"))]


def test_an_unknown_subcommand_is_one_clear_error() -> None:
    res = CliRunner().invoke(cli, ["bt-fitt", "x.csv"])
    assert res.exit_code == 2
    assert "No such command 'bt-fitt'. Did you mean bt-fit?" in res.output
    res = CliRunner().invoke(cli, ["frobnicate"])
    assert res.exit_code == 2
    assert "No such command 'frobnicate'." in res.output and "Did you mean" not in res.output


def test_pool_starter_is_there_whichever_module_loads_first() -> None:
    group = MoodgifGroup("moodgif")
    assert register_subcommand(group, "pretrain") is not None  # sources, before pool
    pool = group.get_command(click.Context(group), "pool")
    assert isinstance(pool, click.Group)
    assert {"add", "list", "show", "remove", "starter"} <= set(pool.commands)


def test_pool_starter_is_there_after_demo_pool_in_the_same_process() -> None:
    # demo-pool's module also registers the `pool` group, without `starter` (another module):
    # a fresh process, so no earlier test has loaded that module already.
    probe = ("from click.testing import CliRunner; from bot.cli import cli; r = CliRunner(); "
             "print(r.invoke(cli, ['demo-pool', '--help']).exit_code, "
             "r.invoke(cli, ['pool', 'starter', '--help']).exit_code)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["0", "0"], out.stdout + out.stderr


def test_bt_fit_reports_bad_settings_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "votes.csv"
    data.write_text("metric,left,right,choice\nhappiness,a,b,left\n")
    env = {"MOODGIF_HOME": str(tmp_path / "home"), "MOODGIF_BT_ALPHA": "lots"}
    res = CliRunner().invoke(cli, ["bt-fit", str(data), "--out", str(tmp_path / "s.csv")], env=env)
    assert res.exit_code == 2
    assert "configuration error: MOODGIF_BT_ALPHA" in res.output
    assert not (tmp_path / "s.csv").exists()


def test_a_database_url_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    for url, code, says in (("not a url", 2, "configuration error: MOODGIF_DATABASE_URL"),
                            ("foo://bar", 2, "configuration error: MOODGIF_DATABASE_URL"),
                            # a driver moodgif does not ship was a ModuleNotFoundError traceback
                            ("mysql://u:sekrit@127.0.0.1/x?sslpassword=sekrit", 2,
                             "sqlite:///PATH or postgresql://... (not mysql://...); got 'mysql://u:***@127.0.0.1/x?sslpassword=***'"),
                            ("u:sekrit@127.0.0.1/x", 2, "got '(hidden: it may hold a password)'"),
                            # what hosted databases hand out is PostgreSQL, not an unknown plugin
                            ("postgres://u:sekrit@127.0.0.1:1/x", 1, "cannot reach postgresql://u:***@127.0.0.1:1/x"),
                            ("postgresql://u:sekrit@127.0.0.1:1/x", 1, "cannot reach postgresql://u:***@127.0.0.1:1/x")):
        res = CliRunner().invoke(cli, ["pool", "list"], env={"MOODGIF_HOME": home, "MOODGIF_DATABASE_URL": url})
        assert res.exit_code == code and says in res.output, res.output
        assert "Traceback" not in res.output and "sekrit" not in res.output


def test_openmp_threads_wait_passively_unless_the_admin_chose(tmp_path: Path) -> None:
    probe = "import os, bot.cli, bot.retrain_worker; print(os.environ['OMP_WAIT_POLICY'])"
    for preset, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        env["PYTHONPATH"] = str(REPO)
        if preset:
            env["OMP_WAIT_POLICY"] = preset
        out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=True)
        assert out.stdout.strip() == expected


def test_a_home_that_cannot_be_a_folder_is_one_line(tmp_path: Path) -> None:
    """A home under a file, or a file itself: a path to fix, said in one line (it was a
    NotADirectoryError or FileExistsError traceback)."""
    (tmp_path / "f").write_text("a file, not a folder")
    for home, says in ((tmp_path / "f", "(File exists)"), (tmp_path / "f" / "sub", "(Not a directory)")):
        res = CliRunner().invoke(cli, ["pool", "list"], env={"MOODGIF_HOME": str(home)})
        assert res.exit_code == 1 and f"cannot use {home} {says}" in res.output, res.output
        assert "Traceback" not in res.output


def test_a_database_that_never_answers_is_one_line_not_a_hang(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A server that accepts and never answers (a firewall, a frozen proxy) hung every command
    silently; now the connection gives up after PG_CONNECT_TIMEOUT_S (1 s here)."""
    import socket

    from scorer import store

    monkeypatch.setattr(store, "PG_CONNECT_TIMEOUT_S", 1)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts nor answers
        port = silent.getsockname()[1]
        res = CliRunner().invoke(cli, ["db", "status"], env={
            "MOODGIF_HOME": str(tmp_path), "MOODGIF_DATABASE_URL": f"postgresql://u@127.0.0.1:{port}/x"})
    assert res.exit_code == 1 and f"cannot reach postgresql://u@127.0.0.1:{port}/x" in res.output, res.output
    assert "timeout" in res.output and "Traceback" not in res.output


def test_a_database_at_a_newer_schema_or_without_rights_is_one_line(tmp_path: Path, pg_url: str) -> None:
    """A host left behind in a rolling upgrade, and a role that may not create tables: each
    was a 100-line traceback."""
    import uuid

    import psycopg
    from sqlalchemy import text

    from scorer.migrate import init_db

    home = tmp_path / "home"
    engine = init_db(f"sqlite:///{home / 'moodgif.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    res = CliRunner().invoke(cli, ["pool", "list"], env={"MOODGIF_HOME": str(home), "MOODGIF_DATABASE_URL": ""})
    assert res.exit_code == 1 and "is at a newer schema than this moodgif knows" in res.output, res.output
    assert "Traceback" not in res.output

    role = f"moodgif_norights_{uuid.uuid4().hex[:8]}"
    admin = pg_url.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, "{role}"')
    try:
        url = admin.replace("postgresql://postgres@", f"postgresql://{role}@")
        res = CliRunner().invoke(cli, ["pool", "list"], env={"MOODGIF_HOME": str(home), "MOODGIF_DATABASE_URL": url})
        assert res.exit_code == 1 and "the database user may not do this in" in res.output, res.output
        assert "Traceback" not in res.output
    finally:
        from scorer.store import dispose_engines

        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_bare_moodgif_shows_the_help_and_succeeds() -> None:
    res = CliRunner().invoke(cli, [])
    assert res.exit_code == 0 and "Commands:" in res.output and "demo" in res.output, res.output


def test_version_is_the_installed_packages() -> None:
    """An admin upgrading must be able to tell which moodgif a host runs."""
    from importlib.metadata import version

    ran = CliRunner().invoke(cli, ["--version"])
    assert ran.exit_code == 0 and ran.output == f"moodgif, version {version('moodgif')}\n"
