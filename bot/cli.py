"""The `moodgif` command. Each area registers its subcommands from bot/commands/."""

from __future__ import annotations

import logging
import os
import sys

import click

from bot.commands import COMMAND_MODULES
from scorer.settings import SettingsError, load_settings


class MoodgifGroup(click.Group):
    """Turns expected errors (bad settings, bad input) into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            click.echo(f"moodgif: configuration error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            reason = _storage_failure(exc)
            if reason is None:
                raise
            # A full disk or a held lock is not a bug: one line, and what to do.
            click.echo(f"moodgif: {reason}; nothing already stored was lost: fix it and run the "
                       "same command again", err=True)
            sys.exit(1)


def _storage_failure(exc: BaseException) -> str | None:
    import errno

    text = str(getattr(exc, "orig", exc)).lower()
    if "database or disk is full" in text or "disk i/o error" in text:
        return "the database could not be written (disk full or I/O error)"
    if "database is locked" in text:
        return "the database is locked by another process"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"no space left ({exc.strerror})"
    return None


@click.group(cls=MoodgifGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """moodgif: GIF suggestions that know what a GIF feels like."""
    # Everything moodgif writes (database, WAL, backups, pool files, the salt) is for its
    # own user only: the ledger and the Slack installations are in there.
    os.umask(0o077)
    settings = load_settings()
    from bot.logs import setup_logging

    setup_logging(settings, level=logging.DEBUG if verbose else None)
    ctx.obj = settings


for _module in COMMAND_MODULES:
    _module.register(cli)


def main() -> None:
    cli(prog_name="moodgif")


if __name__ == "__main__":
    main()
