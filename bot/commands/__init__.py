"""Subcommand modules of `moodgif`; each has `register(group)`."""

from bot.commands import bt, chat, config, discord_cmds, intent, ops, pool, score, simulate, train

COMMAND_MODULES = (config, pool, score, train, chat, discord_cmds, ops, bt, intent, simulate)
