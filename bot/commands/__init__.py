"""Subcommand modules of `moodgif`; each has `register(group)`."""

from bot.commands import (
    bt,
    config,
    discord_cmds,
    intent,
    ops,
    pool,
    score,
    serve,
    simulate,
    sources,
    suggest,
    train,
)

COMMAND_MODULES = (config, pool, sources, score, train, suggest, serve, discord_cmds, ops, bt, intent, simulate)
