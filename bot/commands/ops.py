"""Subcommands (being built)."""

import click


def register(group: click.Group) -> None:
    pass
