"""Reaching Discord at start: log in and connect, and while Discord cannot be reached (a
network or DNS failure, a 5xx, no gateway), try again with growing waits.

discord.py's own reconnect loop covers an established connection, but not the login nor a
sharded bot's gateway lookup, so a network blip at boot left Discord off for good while the
process, serving everything else, looked alive to its supervisor. A refused token or
privileged intent is no such failure: it stops at once, saying which setting to fix.
`/readyz` (the `discord` component) says which of these is happening.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import discord

from bot.health import get_health, redact

log = logging.getLogger("bot.adapters.discord")

# Where the privileged intent is allowed: without it there, Discord refuses every login that
# asks for it (close code 4014), in every server at once.
INTENT_SETTING = ("discord.com/developers/applications → your app → Bot → Privileged Gateway "
                  "Intents → Message Content Intent")


class GatewayBot(Protocol):
    """What `run` needs of the bot: a discord.Client (sharded or not) that says while it is
    inside the gateway (`bot.adapters.discord.MoodgifBot`)."""

    in_gateway: bool
    http: Any

    async def login(self, token: str) -> None: ...
    async def connect(self) -> None: ...
    def is_closed(self) -> bool: ...


@dataclass(frozen=True)
class Retry:
    """Waits between tries to reach Discord at start: doubling from `first_s` up to `max_s`,
    each drawn from its top fifth down, so many bots cut off together do not retry in step."""

    first_s: float = 5.0
    max_s: float = 300.0

    def waits(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay * random.uniform(0.8, 1.0)
            delay = min(delay * 2, self.max_s)


# What a network or Discord outage raises before the gateway is up. LoginFailure and
# PrivilegedIntentsRequired are no such errors: retrying cannot fix them.
UNREACHABLE = (OSError, aiohttp.ClientError, TimeoutError, discord.GatewayNotFound,
               discord.DiscordServerError)


_DNS_ERROR = getattr(aiohttp, "ClientConnectorDNSError", ())  # aiohttp 3.10+; before, a gaierror inside


def unreachable_reason(exc: BaseException) -> str:
    """The failure in words for the log and /readyz: "DNS: ...", "network: ...", "Discord answered 503"."""
    cause = exc.__cause__ if isinstance(exc, discord.GatewayNotFound) else None
    if isinstance(cause, discord.HTTPException):
        return f"gateway lookup: Discord answered {cause.status}"
    if isinstance(exc, discord.GatewayNotFound):
        return "gateway lookup failed"
    if isinstance(exc, discord.HTTPException):
        return f"Discord answered {exc.status}"
    if isinstance(exc, TimeoutError):
        return "network: timed out"
    os_error = getattr(exc, "os_error", exc)  # aiohttp's connector errors wrap the OSError
    detail = getattr(os_error, "strerror", None) or str(exc) or type(exc).__name__
    dns = isinstance(os_error, socket.gaierror) or isinstance(exc, _DNS_ERROR)
    kind = "DNS" if dns else "network"
    return f"{kind}: {type(exc).__name__}: {detail}"


async def _forget_session(bot: GatewayBot) -> None:
    """A failed login leaves discord.py's HTTP session open: close it (which closes its
    connector too) and let the next login open both anew."""
    await bot.http.close()
    bot.http.connector = discord.utils.MISSING


def _stopped(detail: str) -> None:
    get_health().set_component("discord", False, f"stopped: {detail}")


async def run(bot: GatewayBot, token: str, retry: Retry) -> None:
    """Log in and stay connected; an unreachable Discord is tried again, forever, with growing
    waits (the process serves everything else meanwhile, so no supervisor would restart it)."""
    health = get_health()
    waits = retry.waits()
    logged_in = False
    while True:
        try:
            if not logged_in:
                await bot.login(token)
                logged_in = True
            health.set_component("discord", False, "connecting to the gateway")
            bot.in_gateway = True
            await bot.connect()
            _stopped("closed")
            return
        except discord.LoginFailure:
            log.error("Discord: the token was refused; check DISCORD_TOKEN")
            _stopped("the token was refused")
            return
        except discord.PrivilegedIntentsRequired:
            # /gif-admin cannot answer while Discord refuses us: the way out is the operator's.
            log.error("Discord refused the connection: a channel watches messages "
                      "(/gif-admin channel key:watch value:on), so the bot asks for the privileged "
                      "Message Content intent, which the application does not have. Enable it in "
                      "the Developer Portal (%s), or set MOODGIF_DISCORD_WATCH=off to connect "
                      "without it (watching then waits), then restart moodgif", INTENT_SETTING)
            _stopped("the Message Content intent is not enabled in the Developer Portal")
            return
        except UNREACHABLE as exc:
            bot.in_gateway = False
            if bot.is_closed():  # shutting down: the close broke the connection
                return
            reason, wait = unreachable_reason(exc), next(waits)
            log.warning("Discord: cannot reach Discord (%s); retrying in %.1f s", reason, wait)
            health.set_component("discord", False,
                                 f"cannot reach Discord ({redact(reason)[:200]}); retrying in {wait:.0f} s")
            if not logged_in:
                await _forget_session(bot)
            await asyncio.sleep(wait)
        except Exception as exc:
            if bot.is_closed():  # shutting down meanwhile
                return
            log.error("Discord stopped: %s", type(exc).__name__)
            _stopped(type(exc).__name__)
            return
