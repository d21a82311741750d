"""Subcommand modules of `moodgif`; each has `register(group)`.

`moodgif` imports a subcommand's module only when that subcommand runs (`bot.cli`'s
`MoodgifGroup`): importing all of them cost ~0.5 s of every command's start-up (SQLAlchemy,
the store, the versions), more than `bt-fit` spends fitting. So the names, the modules that
register them and the one-line help that `moodgif --help` lists are written down here;
tests/test_cli_lazy.py checks them against the modules' own commands.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from scorer.settings import Settings


@dataclass(frozen=True)
class Subcommand:
    modules: tuple[str, ...]  # bot.commands.<module> whose register() adds it, in order
    summary: str  # the first paragraph of its help, on one line: what `--help` lists


SUBCOMMANDS: dict[str, Subcommand] = {
    "backup": Subcommand(("ops",), "Write the database and the data files into one archive "
                         "(safe while the bot runs)."),
    "bt-fit": Subcommand(("bt",), "Fit per-emotion Bradley-Terry scores from FILE "
                         "(metric,left,right,choice; .gz ok)."),
    "config": Subcommand(("config",), "Show the effective settings."),
    "db": Subcommand(("config",), "Database schema: upgrade to the newest migration, or show "
                     "where it stands; prune old retrains' fits and model versions."),
    "demo": Subcommand(("serve",), "Demo pool -> ingest -> score -> simulated votes -> retrain "
                       "-> playground."),
    "demo-pool": Subcommand(("pool",), "Draw COUNT animated cartoon-face GIFs with known "
                            "emotion scores into DIRECTORY."),
    "discord": Subcommand(("discord_cmds",), "Discord setup: command sync and the invite URL."),
    "evaluate": Subcommand(("train",), "The paper's Table 1 (Lin-Reg, Mean-only, FC-MaxPool-2/4, "
                           "RNN-2/4/8) as a Markdown report."),
    "import-votes": Subcommand(("train",), "Add GIFGIF-format comparisons "
                               "(metric,left,right,choice) to the ledger."),
    "intent": Subcommand(("intent",), "Map TEXT to one of the 17 emotions, with a confidence "
                         "and alternatives."),
    # `pool starter` lives in sources (it is a GIPHY source): registered after the group.
    "model": Subcommand(("train",), "Model versions: list them, or make an earlier one rank "
                        "again (a rollback)."),
    "pool": Subcommand(("pool", "sources"), "GIF pools: add files, folders, URL lists or "
                       "manifests; list, show, remove."),
    "pretrain": Subcommand(("sources",), "Train the scorer on a public comparison dataset "
                           "before anyone votes."),
    "restore": Subcommand(("ops",), "Restore a backup made by `moodgif backup` (stop the bot "
                          "and worker first)."),
    "retrain": Subcommand(("train",), "Refit Bradley-Terry from the ledger, retrain the head, "
                          "rescore, activate if not worse."),
    "score": Subcommand(("score",), "Encode the GIFs that have no cached features yet, then "
                        "score them."),
    "serve": Subcommand(("serve",), "Run the playground, the configured Slack/Discord adapters "
                        "and the retrain scheduler."),
    "simulate": Subcommand(("simulate",), "Prove that suggestions get better with use: virtual "
                           "users on a demo pool with known true scores drive the real bot "
                           "core; the real retrain job runs every K requests; the ranking is "
                           "measured against the truth after every retrain, for each strategy."),
    "suggest": Subcommand(("suggest",), "The top GIFs for an emotion or a request text "
                          "(`moodgif suggest i broke prod`)."),
    "train": Subcommand(("train",), "Fit Bradley-Terry on the ledger and train a head on the "
                        "fitted scores."),
}

# Subcommands that load the settings themselves (`command_settings`), later than the
# group does for the others: `bt-fit` starts parsing its file first, so building the
# settings (pydantic, ~0.17 s of one core) overlaps the parse instead of preceding it.
LOAD_SETTINGS_THEMSELVES = frozenset({"bt-fit"})


def register_subcommand(group: click.Group, name: str) -> click.Command | None:
    """Import the modules of subcommand `name` and register their commands on `group`;
    the command, or None when `name` is no subcommand. register() only adds commands, so
    doing it again (another invocation of the same group, in tests) is harmless."""
    entry = SUBCOMMANDS.get(name)
    if entry is None:
        return None
    for module in entry.modules:
        importlib.import_module(f"bot.commands.{module}").register(group)
    return group.commands.get(name)


def register_all(group: click.Group) -> None:
    """Every subcommand, eagerly (what a test compares the lazy listing with)."""
    for name in SUBCOMMANDS:
        register_subcommand(group, name)


VERBOSE = "moodgif.verbose"  # ctx.meta key: `moodgif -v`


def command_settings(ctx: click.Context) -> Settings:
    """The invocation's settings (file and environment), loaded and logging set up on the
    first call; the group calls it before every subcommand except LOAD_SETTINGS_THEMSELVES,
    which call it when they need them. Bad settings raise SettingsError: one line, exit 2."""
    root = ctx.find_root()
    if root.obj is None:
        import logging

        from bot.logs import setup_logging
        from scorer.settings import load_settings

        settings = load_settings()
        setup_logging(settings, level=logging.DEBUG if ctx.meta.get(VERBOSE) else None)
        root.obj = settings
    return root.obj
