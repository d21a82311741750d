"""Event listeners: 👍/👎 reactions on public posts, @-mentions and watched channel messages."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.markup import slack_plain
from bot.adapters.slack_listeners.context import (
    SlackContext,
    event_actor,
    message_ref,
    reaction_vote,
    strip_mentions,
)


async def _reaction(ctx: SlackContext, event: dict[str, Any], body: dict[str, Any], added: bool) -> None:
    if ctx.replayed(body):
        return
    item = event.get("item") or {}
    up = reaction_vote(event.get("reaction", ""))
    if item.get("type") != "message" or up is None or not event.get("user"):
        return
    actor = event_actor(body, str(event["user"]), str(item.get("channel", "")))
    ref = message_ref(actor.channel, str(item.get("ts", "")))
    await ctx.core.vote(actor, message_ref=ref, up=up if added else None, source="reaction")


async def reaction_added(ctx: SlackContext, event: dict[str, Any], body: dict[str, Any]) -> None:
    await _reaction(ctx, event, body, True)


async def reaction_removed(ctx: SlackContext, event: dict[str, Any], body: dict[str, Any]) -> None:
    await _reaction(ctx, event, body, False)


async def app_mention(ctx: SlackContext, event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient) -> None:
    if not event.get("user") or event.get("bot_id"):
        return
    actor = event_actor(body, str(event["user"]), str(event.get("channel", "")))
    reply = await ctx.core.request(actor, slack_plain(strip_mentions(event.get("text", ""))))
    await client.chat_postEphemeral(
        channel=actor.channel, user=actor.user_id, thread_ts=event.get("thread_ts"),
        **await ctx.private(reply, client, actor, dismissible=True),
    )


async def message(ctx: SlackContext, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient,
                  context: Any) -> None:
    # Plain human messages only; a mention of the bot is app_mention's.
    if event.get("subtype") or event.get("bot_id") or not event.get("user"):
        return
    text = event.get("text") or ""
    bot_user = getattr(context, "bot_user_id", None) or (context or {}).get("bot_user_id")
    if bot_user and f"<@{bot_user}" in text:
        return
    actor = event_actor(body, str(event["user"]), str(event.get("channel", "")))
    offer = await ctx.core.watch(actor, slack_plain(text))
    if offer is None:
        return
    await client.chat_postEphemeral(
        channel=actor.channel, user=actor.user_id, thread_ts=event.get("thread_ts"),
        **await ctx.private(offer, client, actor, dismissible=True),
    )
