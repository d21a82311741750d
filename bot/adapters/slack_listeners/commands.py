"""Slash command listeners, /gif and /gif-admin, and the message shortcut "GIF for this
message" (a /gif with someone's message as the words). Plain async functions of the context
and bolt's arguments, so a test can call one with a fake `ack` / `respond`."""

from __future__ import annotations

import shlex
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.adapters.markup import slack_plain
from bot.adapters.slack_listeners.context import (
    SlackContext,
    action_actor,
    command_actor,
    log,
    strip_mentions,
)
from bot.events import reply_text
from bot.flows.admin import parse_admin


async def gif_command(ctx: SlackContext, ack: Any, command: dict[str, Any], respond: Any,
                      client: AsyncWebClient) -> None:
    await ack()
    actor = command_actor(command)
    # The whole answer: the preview and, now and then, a "which is more X?" poll after it.
    answer = await ctx.core.request_with_poll(actor, slack_plain(command.get("text")))
    await respond(response_type="ephemeral", **await ctx.private(answer.reply, client, actor))
    if answer.poll is not None:
        await respond(response_type="ephemeral", replace_original=False,
                      **await ctx.private(answer.poll, client, actor))


async def gif_for_message(ctx: SlackContext, ack: Any, shortcut: dict[str, Any], respond: Any,
                          client: AsyncWebClient) -> None:
    """A message's ⋮ menu -> "GIF for this message": its words read as a /gif request, so
    answering someone takes no typing; the preview is private to the clicker."""
    await ack()
    actor = action_actor(shortcut)
    message = shortcut.get("message") or {}
    reply = await ctx.core.request(actor, slack_plain(strip_mentions(str(message.get("text") or ""))))
    private = await ctx.private(reply, client, actor)
    if thread := message.get("thread_ts"):  # a reply in a thread: the preview (and its post) stay there
        try:
            await client.chat_postEphemeral(channel=actor.channel, user=actor.user_id, thread_ts=thread, **private)
            return
        except SlackApiError as exc:  # not a member of the channel: the response_url still works
            log.info("slack preview in a thread failed (%s); answering in the channel",
                     exc.response.get("error") if exc.response is not None else "error")
    await respond(response_type="ephemeral", **private)


async def admin_command(ctx: SlackContext, ack: Any, command: dict[str, Any], respond: Any,
                        client: AsyncWebClient) -> None:
    await ack()
    is_admin = await ctx.is_workspace_admin(client, str(command.get("user_id")),
                                            str(command.get("team_id") or ""))
    actor = command_actor(command, is_admin=is_admin)
    text = command.get("text") or ""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    reply = await ctx.core.run_admin(actor, parse_admin(words[0] if words else "help", words[1:]))
    await respond(response_type="ephemeral", text=blocks.esc(reply_text(reply)))
