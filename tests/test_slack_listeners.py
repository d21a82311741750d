"""The point of bolt's starter-template layout: a listener is a plain async function, so it
can be called without bolt or HTTP. Here /gif runs on the real bot core and a real SQLite
database, with `ack` and `respond` played by recorders."""

from __future__ import annotations

from typing import Any

from _adapter_core import make_core

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack import SlackContext
from bot.adapters.slack_listeners import commands


class Recorder:
    """Stands in for bolt's `ack` / `respond`: records each call's keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


async def test_gif_command_is_a_plain_function_that_acks_then_responds(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    core, settings, _ = make_core(sqlite_settings, sqlite_engine, public_url="https://gifs.example.org")
    ctx = SlackContext.create(core, settings)
    ack, respond = Recorder(), Recorder()
    command = {"team_id": "T0FAKE", "channel_id": "C0GENERAL", "user_id": "U0ALICE",
               "user_name": "alice", "text": "happy"}

    # client is only needed to upload a GIF without a public URL; public_url is set here.
    await commands.gif_command(ctx, ack=ack, command=command, respond=respond, client=None)  # type: ignore[arg-type]

    assert ack.calls == [{}]
    preview = respond.calls[0]
    assert preview["response_type"] == "ephemeral"
    images = [b for b in preview["blocks"] if b["type"] == "image"]
    assert len(images) == 1 and images[0]["image_url"].startswith("https://gifs.example.org/gifs/")
    buttons = {e["action_id"] for b in preview["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert buttons == {blocks.SEND, blocks.SHUFFLE, blocks.CANCEL}
