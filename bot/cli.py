"""The `moodgif` command. Each area registers its subcommands from bot/commands/, imported
only when one of them runs (see `bot.commands`): start-up is most of a short command's time."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from bot.commands import (
    LOAD_SETTINGS_THEMSELVES,
    SUBCOMMANDS,
    VERBOSE,
    command_settings,
    register_subcommand,
)
from scorer.openmp import prefer_passive_waits

prefer_passive_waits()  # before any subcommand imports torch


class MoodgifGroup(click.Group):
    """Loads a subcommand's module when it is invoked; turns expected errors (bad settings,
    bad input) into one clear line and exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()  # subcommands whose modules have all registered

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(SUBCOMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # Registered by another name's module is not enough: `demo-pool` loads `pool`'s
        # group, but `pool starter` comes from a second module (SUBCOMMANDS says which).
        if cmd_name not in self._loaded and cmd_name in SUBCOMMANDS:
            register_subcommand(self, cmd_name)
            self._loaded.add(cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        name = args[0] if args else ""
        if (name and not name.startswith("-") and not ctx.resilient_parsing
                and self.get_command(ctx, name) is None):
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from `bot.commands.SUBCOMMANDS`: without importing every module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                if not loaded.hidden:
                    rows.append((name, loaded.get_short_help_str(limit)))
            else:  # click's own shortening, on the summary instead of the module's help
                summary = click.Command(name, help=SUBCOMMANDS[name].summary)
                rows.append((name, summary.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        from scorer.settings import SettingsError

        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            click.echo(f"moodgif: configuration error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            unusable = _database_failure(exc, ctx.obj)
            if unusable is not None:
                click.echo(f"moodgif: {unusable[0]}", err=True)
                sys.exit(unusable[1])
            reason = _storage_failure(exc)
            if reason is None:
                raise
            # A full disk or a held lock is not a bug: one line, and what to do.
            click.echo(f"moodgif: {reason}; nothing already stored was lost: fix it and run the "
                       "same command again", err=True)
            sys.exit(1)


def _database_failure(exc: BaseException, settings: Any) -> tuple[str, int] | None:
    """A database URL that names no database moodgif can use (exit 2, like any bad setting),
    or a server that does not answer (exit 1: start it and run again); None for anything else."""
    migrate = sys.modules.get("scorer.migrate")
    if migrate is not None and isinstance(exc, migrate.SchemaHalfApplied):
        return str(exc), 1  # it names the database's state and the way out (a restore)
    sa_exc = sys.modules.get("sqlalchemy.exc")  # not loaded: not SQLAlchemy's error
    if sa_exc is None:
        return None
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return (f"configuration error: MOODGIF_DATABASE_URL (database_url) is no database URL moodgif "
                f"can use: {str(exc).splitlines()[0]}", 2)
    url = getattr(settings, "db_url", "")
    if url:
        from sqlalchemy.engine import make_url

        where = make_url(url).render_as_string(hide_password=True)
    else:
        where = "the database"
    from scorer.store import db_error_line  # SQLAlchemy's error: it is loaded already

    said = str(getattr(exc, "orig", None) or exc).strip()
    first = db_error_line(exc)
    if isinstance(exc, sa_exc.OperationalError) and _storage_failure(exc) is None:
        return f"cannot reach {where} (MOODGIF_DATABASE_URL): {first}", 1
    if isinstance(exc, sa_exc.ProgrammingError) and "permission denied" in said.lower():
        return (f"the database user may not do this in {where}: {first}; the role needs to own "
                "the database, or rights on it and its public schema (docs/deploy.md)", 1)
    alembic_exc = sys.modules.get("alembic.util.exc")
    if alembic_exc is not None and isinstance(exc, alembic_exc.CommandError) \
            and "Can't locate revision" in said:
        # a host left behind in a rolling upgrade: its code is older than the database
        return (f"{where} is at a newer schema than this moodgif knows ({first}): upgrade moodgif "
                "on this host, or restore a backup made by this version", 1)
    return None


def _storage_failure(exc: BaseException) -> str | None:
    import errno

    text = str(getattr(exc, "orig", exc)).lower()
    if "database or disk is full" in text or "disk i/o error" in text:
        return "the database could not be written (disk full or I/O error)"
    if "database is locked" in text:
        return "the database is locked by another process"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"no space left ({exc.strerror})"
    # A home or folder setting that names a file, a read-only place or one not ours: a path
    # to fix, not a bug (a traceback told a new user nothing more).
    if (isinstance(exc, OSError) and exc.filename is not None
            and exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EROFS, errno.EACCES, errno.EISDIR)):
        return f"cannot use {exc.filename} ({exc.strerror})"
    return None


@click.group(cls=MoodgifGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
# from the installed package's metadata: what `pip install` put there, whatever the checkout
@click.version_option(package_name="moodgif", prog_name="moodgif")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """moodgif: GIF suggestions that know what a GIF feels like."""
    if ctx.invoked_subcommand is None:  # a bare `moodgif` asks what there is: help, not an error
        click.echo(ctx.get_help())
        ctx.exit(0)
    # Everything moodgif writes (database, WAL, backups, pool files, the salt) is for its
    # own user only: the ledger and the Slack installations are in there.
    os.umask(0o077)
    ctx.meta[VERBOSE] = verbose
    if ctx.invoked_subcommand not in LOAD_SETTINGS_THEMSELVES:
        ctx.obj = command_settings(ctx)


def main() -> None:
    from bot.sigterm import unwind_on_sigterm

    unwind_on_sigterm()
    cli(prog_name="moodgif")


if __name__ == "__main__":
    main()
