"""Subcommand modules of `moodgif`; each has `register(group)`."""

from bot.commands import (
    bt,
    chat,
    config,
    discord_cmds,
    intent,
    ops,
    pool,
    score,
    simulate,
    sources,
    train,
)

COMMAND_MODULES = (config, pool, sources, score, train, chat, discord_cmds, ops, bt, intent, simulate)
