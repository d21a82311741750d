"""Slack listeners after slack-bolt's starter template: each listener is a plain async
function (in `commands`, `actions`, `events`) taking a `SlackContext` first; `register` wires
them onto the bolt app, binding the context and a one-line failure log around each."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_listeners import actions, commands, events
from bot.adapters.slack_listeners.context import SlackContext, log

Listener = Callable[..., Awaitable[None]]


def _guarded(name: str, fn: Listener, ctx: SlackContext) -> Listener:
    """`fn` with `ctx` bound; a failure is logged in one line (bolt's own handler would log
    the payload too) and the user, where there is a response_url, told so."""
    bound = functools.partial(fn, ctx)

    async def listener(**kwargs: Any) -> None:
        try:
            await bound(**kwargs)
        except Exception as exc:
            log.exception("slack %s failed: %s", name, type(exc).__name__)
            respond = kwargs.get("respond")
            if respond is not None:
                # The response_url may be gone too; the log has the failure.
                with contextlib.suppress(Exception):
                    await respond(
                        response_type="ephemeral",
                        replace_original=False,
                        text="Sorry, something went wrong on my side. Please try again.",
                    )

    # bolt passes listener arguments by name (it reads the unwrapped signature): the partial's
    # signature is the listener's minus `ctx`.
    listener.__wrapped__ = bound  # type: ignore[attr-defined]
    listener.__name__ = fn.__name__
    return listener


async def _on_error(error: Exception) -> None:
    log.warning("slack request failed: %s", type(error).__name__)


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Wire every listener onto `app`."""
    def g(name: str, fn: Listener) -> Listener:
        return _guarded(name, fn, ctx)

    app.command("/gif")(g("/gif", commands.gif_command))
    app.command("/gif-admin")(g("/gif-admin", commands.admin_command))
    app.shortcut(blocks.FOR_MESSAGE)(g("gif for message", commands.gif_for_message))
    app.action(blocks.SEND)(g("send", actions.send))
    app.action(blocks.SHUFFLE)(g("shuffle", actions.shuffle))
    app.action(blocks.CANCEL)(g("cancel", actions.cancel))
    app.action(blocks.DISMISS)(g("dismiss", actions.dismiss))
    app.action(blocks.UNDO)(g("undo", actions.undo))
    app.action(re.compile(rf"^{blocks.CHOOSE}:"))(g("choose", actions.choose))
    app.action(re.compile(rf"^{blocks.SWITCH}:"))(g("switch", actions.switch))
    app.action(blocks.OTHER)(g("switch", actions.switch))
    app.action(blocks.CHOOSE_OTHER)(g("choose", actions.choose))
    app.action(re.compile(rf"^({blocks.VOTE_UP}|{blocks.VOTE_DOWN})$"))(g("vote", actions.vote))
    app.action(re.compile(rf"^{blocks.POLL}:(left|right|neither)$"))(g("poll", actions.poll_answer))
    app.event("reaction_added")(g("reaction_added", events.reaction_added))
    app.event("reaction_removed")(g("reaction_removed", events.reaction_removed))
    app.event("app_mention")(g("app_mention", events.app_mention))
    app.event("message")(g("message", events.message))
    app.error(_on_error)


__all__ = ["SlackContext", "register"]
