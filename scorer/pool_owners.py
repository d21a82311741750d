"""Whose a pool is, and who sees it: the one rule every way in uses.

A pool's owner (`pools.owner`) is "" (`OPERATOR`) when the installation's operator added it
(the CLI, the web admin page, the demo) and "<platform>:<workspace>" (`bot.events.Actor.pool_owner`)
when a Slack workspace's or Discord server's admin added it from chat. Every workspace sees
the operator's pools; a workspace's own pools are its alone: another workspace neither ranks
their GIFs, nor lists them, nor names them in a channel's pools, nor adds to them. The
operator sees every pool, and adds to its own.

Plain functions of strings (no database, no heavy import): the chat process's ranking, the
admin commands and the worker's ingest all call these.
"""

from __future__ import annotations

import re

OPERATOR = ""  # pools.owner of the operator's pools: shared by every workspace
# A chat workspace as `Actor.pool_owner` writes it: a Slack team id, a Discord server id.
_CHAT_OWNER = re.compile(r"slack:[A-Z0-9]{1,64}|discord:[0-9]{1,64}")
SHARED = "shared"  # how an operator names OPERATOR


def may_see(viewer: str, owner: str) -> bool:
    """The visibility rule: the operator (`viewer` "") sees every pool; a chat workspace
    ("<platform>:<workspace>") sees the operator's pools and its own, never another's."""
    return viewer == OPERATOR or owner in (OPERATOR, viewer)


def add_refusal(name: str, owner: str, adder: str) -> str:
    """Why `adder` may not add GIFs to pool `name` owned by `owner` ("" when it may): each
    adds to its own pools only. The operator too: a workspace could otherwise take a name
    first (`starter`, `cats`) and have the operator's later add fill its private pool."""
    if owner == adder:
        return ""
    if adder == OPERATOR:
        return (f"pool {name} belongs to the chat workspace {owner} (its admin added it from "
                "chat), so only that workspace would rank these GIFs: choose another name")
    if owner == OPERATOR:
        whose = "is shared by this installation's operator"
    elif owner.split(":")[0] == adder.split(":")[0]:
        whose = "belongs to another workspace"  # Discord says "server"
    else:  # the other platform's: say which, or Discord would call a Slack workspace a server
        whose = "belongs to a Slack workspace" if owner.startswith("slack:") else "belongs to a Discord server"
    return f"pool {name} {whose}: choose another name"


def parse_owner(typed: str) -> str:
    """An owner as an operator types it (`moodgif pool owner`): `shared` for every workspace,
    or one chat workspace, `slack:T0123ABCD` or `discord:123456789012345678`."""
    text = typed.strip()
    if text.lower() == SHARED:
        return OPERATOR
    if _CHAT_OWNER.fullmatch(text):
        return text
    raise ValueError(f"{typed!r} is not an owner: give `{SHARED}` (every workspace sees the pool), "
                     "or one workspace as slack:TEAM_ID or discord:SERVER_ID, as `moodgif pool "
                     "list` shows them")


def owner_label(owner: str) -> str:
    return SHARED if owner == OPERATOR else owner


__all__ = ["OPERATOR", "SHARED", "add_refusal", "may_see", "owner_label", "parse_owner"]
