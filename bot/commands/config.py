"""`moodgif config show` and `moodgif db upgrade|status|prune`."""

from __future__ import annotations

import json

import click

from scorer.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(config_group)
    group.add_command(db_group)


@click.group("config")
def config_group() -> None:
    """Show the effective settings."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def config_show(settings: Settings, as_json: bool) -> None:
    """Print every setting (secrets masked) and where the config file is."""
    values = settings.masked()
    if as_json:
        click.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        click.echo(f"{key:<{width}}  {value}")


@config_group.command("secret-key")
def config_secret_key() -> None:
    """Print a new MOODGIF_SECRET_KEY (it encrypts the Slack workspaces' bot tokens)."""
    from bot.adapters.slack_tokens import new_key

    click.echo(new_key())


@click.group("db")
def db_group() -> None:
    """Database schema: upgrade to the newest migration, or show where it stands; prune old
    retrains' fits and model versions."""


@db_group.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Run the Alembic migrations up to head."""
    from scorer.migrate import upgrade
    from scorer.store import make_engine

    change = upgrade(make_engine(settings.db_url))
    if change.steps:
        click.echo(f"database at revision {change.after} (upgraded from {change.before or 'an empty database'}: "
                   f"{change.steps} migration{'s' if change.steps != 1 else ''})")
    else:
        click.echo(f"database at revision {change.after} (already the newest)")


@db_group.command("status")
@click.pass_obj
def db_status(settings: Settings) -> None:
    """Show the current and newest migration."""
    from scorer.migrate import current_revision, head_revision
    from scorer.store import make_engine

    engine = make_engine(settings.db_url)
    click.echo(f"current: {current_revision(engine)}  head: {head_revision(engine)}")


@db_group.command("prune")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="fits and trained model versions kept whole  [default: MOODGIF_KEEP_VERSIONS]")
@click.option("--dry-run", is_flag=True, help="say what would go; change nothing")
@click.pass_obj
def db_prune(settings: Settings, keep: int | None, dry_run: bool) -> None:
    """Drop old retrains' Bradley-Terry scores, predictions and head files, keeping the
    newest KEEP of each, the active ones and the zero-shot prior (the retrain does this after
    every run; this is for a home that grew before, or to keep fewer)."""
    from bot.home_lock import HomeBusy, home_lock
    from scorer.migrate import init_db
    from training.locks import LockBusy
    from training.prune import prune

    keep = keep or settings.training.keep_versions
    if keep < 1:
        raise click.UsageError("MOODGIF_KEEP_VERSIONS is 0 (keep everything): say how many to keep "
                               "with --keep N")
    engine = init_db(settings.db_url)
    try:
        with home_lock(settings.home, exclusive=False, doing="prune old model versions"):
            report = prune(settings, engine, keep, dry_run=dry_run)
    except LockBusy as exc:
        raise click.ClickException(f"a retrain is {exc}: prune when it has finished") from None
    except HomeBusy as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would drop" if dry_run else "dropped"
    click.echo(f"{verb}: {report.summary()}" if not report.empty else "nothing to prune "
               f"(keeping the newest {keep} fits and model versions whole)")
