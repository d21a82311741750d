"""`moodgif backup PATH` and `moodgif restore PATH [--force]` (see bot/backup.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scorer.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(backup_cmd)
    group.add_command(restore_cmd)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _summary(manifest: dict) -> str:
    tables = manifest["counts"]["tables"]
    files = manifest["counts"]["files"]
    main = ", ".join(f"{tables.get(t, 0)} {t}" for t in ("gifs", "pools", "comparisons", "model_versions"))
    parts = ", ".join(f"{n} {p} files" for p, n in files.items())
    return f"revision {manifest['revision']}, {manifest['dialect']}: {main}; {parts}"


@click.command("backup")
@click.argument("path", type=click.Path())
@click.option(
    "--no-features",
    is_flag=True,
    help="leave out the feature cache (it is recomputed from the GIFs when needed)",
)
@click.pass_obj
def backup_cmd(settings: Settings, path: str, no_features: bool) -> None:
    """Write the database and the data files into one archive (safe while the bot runs).

    PATH is a new archive file (.tar.gz or .tgz; an existing one is never overwritten), or a
    folder (any other name; made if missing) to put a dated
    moodgif-backup-YYYYmmdd-HHMMSS.tar.gz in.
    """
    from bot.backup import BackupError, create_backup

    try:
        dest, manifest = create_backup(
            settings, Path(path), include_features=not no_features, progress=sys.stderr.isatty()
        )
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written: {dest} ({_size(dest.stat().st_size)})")
    click.echo(_summary(manifest))


@click.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="replace the data this installation already holds")
@click.option("--check", "check_only", is_flag=True, help="only verify the archive; change nothing")
@click.option("--new-salt", is_flag=True, help="the old host's user_hash_salt is lost for good: start "
              "a new one (votes stay; earlier voters are not recognised as the same people)")
@click.pass_obj
def restore_cmd(settings: Settings, path: Path, force: bool, check_only: bool, new_salt: bool) -> None:
    """Restore a backup made by `moodgif backup` (stop the bot and worker first).

    Every checksum is verified before anything is changed; on any failure the current data
    stays as it was. A backup from an older schema is upgraded to this version's. A backup
    never holds the user-hash salt: copy `user_hash_salt` from the old host, or, when it is
    lost, restore with --new-salt.
    """
    if new_salt and check_only:
        raise click.UsageError("--new-salt changes the restored data: not with --check")
    from bot.backup import BackupError, read_archive, restore_backup

    try:
        if check_only:
            manifest = read_archive(path, None, progress=sys.stderr.isatty())
            click.echo(f"backup ok: {path}")
        else:
            manifest = restore_backup(settings, path, force=force, progress=sys.stderr.isatty())
            click.echo(f"restored: {path}")
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_summary(manifest))
    if not check_only:
        _check_salt(settings, new_salt)


def _check_salt(settings: Settings, new_salt: bool) -> None:
    """A backup never holds the user-hash salt (docs/deploy.md): say now, not at the first /gif,
    that this host lacks the one the restored votes were hashed with; or, asked to, start anew."""
    from scorer.migrate import init_db
    from scorer.salt import salt_problem, start_new_salt

    engine = init_db(settings.db_url)
    problem = salt_problem(engine, settings)
    if not problem:
        if new_salt:
            click.echo("--new-salt: not needed, this host has the salt the votes were hashed with; "
                       "nothing changed", err=True)
        return
    if not new_salt:
        click.echo(f"warning: {problem}. Until then moodgif serve will not start (lost for good? "
                   "restore again with --new-salt).", err=True)
        return
    start_new_salt(engine, settings)
    click.echo("new user-hash salt: the votes are kept and count, but earlier voters are no "
               "longer recognised as the same people (their next votes count as a new person's)")
