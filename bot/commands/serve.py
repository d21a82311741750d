"""`moodgif serve` and `moodgif demo`: run the HTTP server, adapters and scheduler, for a
real home or for the demo's own home (demo pool, simulated votes, a retrain first)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scorer.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
    group.add_command(serve_cmd)


@click.command("demo")
# 600 is bot.demo.DEFAULT_COUNT, not imported here so that --help stays light
@click.option("--count", default=600, show_default=True, type=click.IntRange(20, 100_000),
              help="GIFs in the demo pool")
@click.option("--sessions", default=2500, show_default=True, type=click.IntRange(0, 1_000_000),
              help="requests made by the virtual users")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="stop after the retrain instead of serving")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="HTTP port (default: settings.http.port, 8080)")
@click.option("--open", "open_browser", is_flag=True, help="open the playground in a browser")
@click.option("--home", "demo_home", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="the demo's own home (default: $MOODGIF_HOME/demo)")
@click.pass_obj
def demo_cmd(settings: Settings, count: int, sessions: int, seed: int, no_serve: bool,
             port: int | None, open_browser: bool, demo_home: Path | None) -> None:
    """Demo pool -> ingest -> score -> simulated votes -> retrain -> playground.

    Needs no token and no network. Everything it makes goes into the demo's own home,
    $MOODGIF_HOME/demo with its own SQLite database (never MOODGIF_DATABASE_URL), so the
    synthetic GIFs and the head trained on them never reach a production home (the sentence
    model's ONNX export is shared with every home, in $MOODGIF_HOME/cache).
    A second run reuses what exists and starts the playground within seconds.
    """
    from sqlalchemy.exc import OperationalError

    from bot.demo import run_demo
    from scorer.migrate import init_db
    from scorer.store import is_busy_error

    settings = demo_settings(settings, demo_home)
    if port is not None:
        settings = settings.override(http__port=port)
    if not no_serve:
        _port_free_or_fail(settings.http.host, settings.http.port)
    try:
        engine = init_db(settings.db_url)
    except OperationalError as exc:  # the demo's own file: MOODGIF_DATABASE_URL is not the cause
        if is_busy_error(exc):  # another demo in this home is migrating or writing
            raise click.ClickException(
                f"the demo's database in {settings.home} is busy: another moodgif is using this "
                "home; wait for it, or give this one its own (--home DIR)") from None
        raise click.ClickException(
            f"cannot open the demo's database in {settings.home} ({str(exc.orig).strip()}): the "
            "demo home must be a folder you can write to (--home DIR)") from None
    click.echo(f"moodgif demo in {settings.home} ({settings.db_url.split(':', 1)[0]})", err=True)
    try:
        result = run_demo(settings, engine, count=count, sessions=sessions, seed=seed,
                          serve=not no_serve, open_browser=open_browser)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    if no_serve:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "spearman"}, default=str))


def _port_free_or_fail(host: str, port: int) -> None:
    """A taken port is found before the minutes of work that come before serving, not after."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # "::" serves as it does in `serve`
    shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {shown} ({exc.strerror or exc}): choose a free port with "
            "--port N, or --no-serve") from None


def demo_settings(settings: Settings, home: Path | None = None) -> Settings:
    """The demo's settings: its own home and SQLite file, whatever the production home uses."""
    home = (home or settings.home / "demo").expanduser()
    return settings.override(home=home, database_url="")


@click.command("serve")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="HTTP port (default: settings.http.port)")
@click.option("--host", default=None, help="bind address (default: settings.http.host)")
@click.option("--open", "open_browser", is_flag=True, help="open the playground in a browser")
@click.pass_obj
def serve_cmd(settings: Settings, port: int | None, host: str | None, open_browser: bool) -> None:
    """Run the playground, the configured Slack/Discord adapters and the retrain scheduler."""
    from bot.serve import run_serve
    from scorer.migrate import init_db

    overrides = {k: v for k, v in (("http_port", port), ("http_host", host)) if v is not None}
    settings = settings.override(**overrides)
    engine = init_db(settings.db_url)
    try:
        run_serve(settings, engine, open_browser=open_browser)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
