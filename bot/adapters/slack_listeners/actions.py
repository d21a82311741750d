"""Button listeners: the private preview's buttons (choose, shuffle, cancel, send, dismiss)
and the public post's feedback (vote, poll answers)."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_listeners.context import SlackContext, action_actor, log, message_ref
from bot.events import PostView


async def choose(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                 client: AsyncWebClient) -> None:
    await ack()
    actor = action_actor(body)
    ask_id, sep, emotion = _value(action).rpartition("|")
    if sep:  # a "did you mean" button: the words asked about, as that feeling
        reply = await ctx.core.choose(actor, ask_id, emotion)
    else:  # the help's list: the feeling's name as a request
        reply = await ctx.core.request(actor, emotion)
    await ctx.answer_click(reply, respond, client, actor)


async def shuffle(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                  client: AsyncWebClient) -> None:
    await ack()
    actor = action_actor(body)
    reply = await ctx.core.shuffle(actor, action["value"])
    await ctx.answer_click(reply, respond, client, actor)


async def switch(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                 client: AsyncWebClient) -> None:
    """A switch button, or the "Another feeling…" menu (its option carries the same value)."""
    await ack()
    actor = action_actor(body)
    session_id, _, emotion = _value(action).partition("|")
    reply = await ctx.core.switch(actor, session_id, emotion)
    await ctx.answer_click(reply, respond, client, actor)


async def cancel(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                 client: AsyncWebClient) -> None:
    await ack()
    actor = action_actor(body)
    reply = await ctx.core.cancel(actor, action["value"])
    await ctx.answer_click(reply, respond, client, actor)


async def send(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
               client: AsyncWebClient) -> None:
    await ack()
    actor = action_actor(body)
    session_id, sha = blocks.parse_send_value(action["value"])
    # A preview shown in a thread (a mention there, "GIF for this message" on a reply) posts
    # its GIF in that thread, not in the channel: Slack names the thread in the click.
    thread = {"thread_ts": ts} if (ts := (body.get("container") or {}).get("thread_ts")) else {}

    refused: list[str] = []

    async def publish(post: PostView) -> str | None:  # the core keeps the ref for reactions
        ref = await ctx.images.ref(post.card, client, actor.workspace)
        try:
            result = await client.chat_postMessage(channel=actor.channel, **thread, **blocks.post_message(post, ref))
        except SlackApiError as exc:
            error = exc.response.get("error", "error") if exc.response is not None else "error"
            log.warning("slack chat.postMessage failed in %s: %s", actor.channel, error)
            refused.append(error)
            return None
        return message_ref(str(result["channel"]), str(result["ts"]))

    sent = await ctx.core.send_and_publish(actor, session_id, sha, publish)
    if sent.reply.kind == "not_posted":  # the preview is still open
        # Said only now, once the core has taken the Send back: a second click at once
        # would otherwise meet "already sent" for a GIF that was never posted.
        await respond(response_type="ephemeral", replace_original=False,
                      text=_not_posted(refused[0] if refused else "error"))
        return
    if sent.reply.kind != "posted":
        await ctx.answer_click(sent.reply, respond, client, actor)
    elif sent.message_ref is not None and sent.reply.post is not None:
        await respond(replace_original=True, **blocks.sent_message(sent.reply.post.post_id))


def _not_posted(error: str) -> str:
    """Why a Send did not reach the channel, with what to do about that error, not another."""
    if error in ("not_in_channel", "channel_not_found"):
        advice = "I'm not in it: invite me (`/invite` and my name), then press Send again."
    elif error == "is_archived":
        advice = "It is archived, so nothing can be posted there."
    elif error in ("restricted_action", "restricted_action_read_only_channel",
                   "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel"):
        advice = "Its settings don't let apps post there; a workspace admin can change that."
    else:
        advice = f"Slack said {blocks.esc(error)}; the preview is still open, so you can try again."
    return f"I couldn't post in this channel. {advice}"


async def undo(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
               client: AsyncWebClient) -> None:
    """The sender's Undo: the core takes the Send back, then the public post is deleted."""
    await ack()
    try:
        post_id = int(action["value"])
    except (KeyError, ValueError):
        post_id = 0  # the core answers a forged value
    reply = await ctx.core.undo(action_actor(body), post_id)
    if reply.kind != "undone":
        await respond(response_type="ephemeral", replace_original=False, **blocks.render(reply, {}))
        return
    channel, _, ts = reply.message_ref.partition(":")
    if ts:
        try:
            await client.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:  # deleted meanwhile: the Send is taken back all the same
            log.info("slack chat.delete of a taken-back post failed: %s",
                     exc.response.get("error") if exc.response is not None else "error")
    await respond(replace_original=True, **blocks.text_message(reply.text, dismissible=True))


async def dismiss(ctx: SlackContext, ack: Any, respond: Any) -> None:
    await ack()
    await respond(delete_original=True)


async def vote(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
    await ack()
    actor = action_actor(body)
    try:
        post_id = int(action["value"])
    except (KeyError, ValueError):
        log.info("slack vote with a bad post id ignored")
        return
    reply = await ctx.core.vote(actor, post_id=post_id, up=action["action_id"] == blocks.VOTE_UP)
    if reply.kind != "ack" or reply.text:
        await respond(response_type="ephemeral", replace_original=False, **blocks.render(reply, {}))


async def poll_answer(ctx: SlackContext, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                      client: AsyncWebClient) -> None:
    await ack()
    actor = action_actor(body)
    answer = action["action_id"].split(":", 1)[1]
    reply = await ctx.core.answer_poll(actor, action["value"], answer)
    if reply.kind == "ack":
        await respond(replace_original=True, **blocks.text_message(reply.text or "Thanks for voting!"))
    else:
        await ctx.answer_click(reply, respond, client, actor)


def _value(action: dict[str, Any]) -> str:
    """A button's value, or the value of the option picked in an "Another feeling…" menu."""
    return action.get("value") or (action.get("selected_option") or {}).get("value") or ""
