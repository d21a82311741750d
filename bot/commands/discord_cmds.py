"""`moodgif discord ...`: register the slash commands, print the invite URL."""

from __future__ import annotations

import asyncio

import click

from scorer.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(discord_group)


@click.group("discord")
def discord_group() -> None:
    """Discord setup: command sync and the invite URL."""


@discord_group.command("sync")
@click.option("--guild", "guild_id", type=int, default=None,
              help="copy the commands into this server only (shows up at once; global takes up to an hour)")
@click.pass_obj
def sync(settings: Settings, guild_id: int | None) -> None:
    """Register /gif and /gif-admin with Discord (run once, and after upgrades; not at every start)."""
    if not settings.discord.token:
        raise click.ClickException("DISCORD_TOKEN is not set")
    from bot.adapters.discord import DiscordSetupError, sync_commands

    try:
        names = asyncio.run(sync_commands(settings, guild_id))
    except DiscordSetupError as exc:
        raise click.ClickException(str(exc)) from None
    where = f"server {guild_id}" if guild_id else "every server (global; may take up to an hour)"
    click.echo(f"synced {len(names)} commands to {where}: {', '.join('/' + n for n in names)}")


@discord_group.command("invite-url")
@click.option("--client-id", type=int, default=None,
              help="the application id (default: read from DISCORD_TOKEN)")
@click.pass_obj
def invite(settings: Settings, client_id: int | None) -> None:
    """Print the URL that adds the bot to a server with exactly the permissions it uses."""
    from bot.adapters.discord import INVITE_PERMISSIONS, client_id_from_token, invite_url

    cid = client_id or (client_id_from_token(settings.discord.token) if settings.discord.token else None)
    if cid is None and settings.discord.token:
        raise click.ClickException("DISCORD_TOKEN does not look like a bot token (its first part names "
                                   "the application): check it, or give --client-id (the Application "
                                   "ID in the Developer Portal)")
    if cid is None:
        raise click.ClickException("give --client-id (the Application ID in the Developer Portal) or set DISCORD_TOKEN")
    click.echo(invite_url(cid))
    perms = [name for name, on in INVITE_PERMISSIONS if on]
    click.echo(f"permissions ({INVITE_PERMISSIONS.value}): {', '.join(perms)}", err=True)
