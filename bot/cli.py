"""The `moodgif` command. Each area registers its subcommands from bot/commands/."""

from __future__ import annotations

import logging
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


@click.group(cls=MoodgifGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """moodgif: GIF suggestions that know what a GIF feels like."""
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
