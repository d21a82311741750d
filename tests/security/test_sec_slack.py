"""The real bolt app: mention/link injection from GIF titles, forged requests and their logs."""

from __future__ import annotations

import json
import logging
from typing import Any

from _sec_slack import slack_stack
from sqlalchemy import update

from bot.adapters import slack_blocks as blocks
from scorer.store import Gif, session_scope

HOSTILE = "<!channel> <https://evil.example|click me> & <@U0BOSS> <!here>"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


async def test_hostile_titles_never_become_mentions_or_links(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        with session_scope(sqlite_engine) as s:  # as a manifest or provider could title them
            s.execute(update(Gif).values(title=HOSTILE))
        assert await stack.command("happy", user="U0ALICE", command="/gif") == 200
        preview = (await stack.fake.wait_for("webhook", 1))[0].data
        send = next(e["value"] for b in preview["blocks"] if b["type"] == "actions"
                    for e in b["elements"] if e["action_id"] == blocks.SEND)
        assert await stack.click(blocks.SEND, send) == 200
        posted = (await stack.fake.wait_for("chat.postMessage", 1))[0].data
    for payload in (preview, posted):
        payload = {k: json.loads(v) if k == "blocks" and isinstance(v, str) else v for k, v in payload.items()}
        texts = _strings(payload)
        joined = "\n".join(texts)
        for bad in ("<!channel>", "<!here>", "<https://evil", "<@U0BOSS>"):
            assert bad not in joined, (bad, joined[:500])
        assert "&lt;!channel&gt;" in joined and "&amp;" in joined
    # our own mention of the requester is still a real mention
    assert "<@U0ALICE>" in json.dumps(posted)


async def test_forged_requests_are_401_and_their_bodies_are_not_logged(sqlite_settings, sqlite_engine,
                                                                       caplog) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        body = "command=/gif-admin&text=pools+add+x+/etc&user_id=U0ADMIN&FAKE-LOG-LINE\nERROR forged" + "A" * 50_000
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "slack_bolt.RequestVerification"):
            async with aiohttp.ClientSession() as http:
                for headers in ({}, {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"}):
                    async with http.post(stack.url + "/slack/events", data=body, headers={
                            "Content-Type": "application/x-www-form-urlencoded", **headers}) as r:
                        assert r.status == 401
        assert "FAKE-LOG-LINE" not in caplog.text and "AAAAAAAAAA" not in caplog.text
        assert stack.core.jobs == []


async def test_unsigned_bodies_bolt_cannot_parse_are_401_not_500(sqlite_settings, sqlite_engine,
                                                                  caplog) -> None:  # type: ignore[no-untyped-def]
    """Bolt parses a body before it checks the signature: forged bad JSON, a list, a body that
    is no UTF-8 or a timestamp that is no number each raised a 500 with a logged traceback."""
    import aiohttp

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        (b"command=/gif&text=hi&response_url=https://x", form),
        (b"payload=%7Bnot-json", form), (b"payload=%5B1%5D", form), (b"payload=null", form),
        (b'{"type":', {"Content-Type": "application/json"}), (b"[1]", {"Content-Type": "application/json"}),
        (b"command=/gif&text=\xff", form),
    ] + [(b"command=/gif&text=hi", {**form, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=00"})
         for ts in ("abc", "", "1796029688.5", "\u0661\u0662".encode().decode("latin-1"))]
    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        with caplog.at_level(logging.INFO):
            async with aiohttp.ClientSession() as http:
                for body, headers in cases:
                    async with http.post(stack.url + "/slack/events", data=body, headers=headers) as r:
                        assert r.status == 401, (body, headers)
        assert "Traceback" not in caplog.text and "Error handling request" not in caplog.text
        assert "without a valid signature (HTTP 401)" in caplog.text
        assert stack.core.jobs == []  # and Slack heard nothing but the startup check of the token
        assert [c.path for c in stack.fake.calls if c.path != "auth.test"] == []


async def _alice_sends_happy(stack: Any) -> Any:
    """Alice's `/gif happy`, sent: the fake's chat.postMessage call."""
    await stack.command("happy", user="U0ALICE", command="/gif")
    preview = (await stack.fake.wait_for("webhook", 1))[0].data
    send = next(e["value"] for b in preview["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == blocks.SEND)
    await stack.click(blocks.SEND, send)
    return (await stack.fake.wait_for("chat.postMessage", 1))[0]


async def test_a_replayed_reaction_cannot_restore_a_withdrawn_vote(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    from _adapter_core import ledger
    from _sec_slack import CHANNEL

    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        posted = await _alice_sends_happy(stack)
        await stack.fake.wait_for("webhook", 2)
        assert posted.data["channel"] == CHANNEL
        item = {"type": "message", "channel": CHANNEL, "ts": "1700000001.000100"}  # the fake's first ts

        def body(kind: str, event_id: str) -> str:
            return json.dumps({"token": "legacy", "team_id": "T0001", "api_app_id": "A0MOOD",
                               "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
                               "event": {"type": kind, "user": "U0BOB", "reaction": "+1", "item": item}})

        added = body("reaction_added", "Ev-add-1")
        assert await stack.post(added, content_type="application/json") == 200
        for _ in range(100):
            if len(ledger(sqlite_engine)) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(ledger(sqlite_engine)) == 1
        assert await stack.post(body("reaction_removed", "Ev-rm-1"), content_type="application/json") == 200
        for _ in range(100):
            if not ledger(sqlite_engine):
                break
            await asyncio.sleep(0.05)
        assert ledger(sqlite_engine) == []
        # the captured reaction_added, signed again within the 5-minute window: ignored
        assert await stack.post(added, content_type="application/json") == 200
        await asyncio.sleep(0.5)
        assert ledger(sqlite_engine) == []


async def test_a_replayed_click_or_command_does_nothing(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """Slack gives every command and click its own trigger_id: the same one again, signed
    within the 5-minute window, is a captured request replayed (it restored a changed vote)."""
    import asyncio
    import urllib.parse

    from _adapter_core import ledger
    from _sec_slack import CHANNEL

    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        posted = await _alice_sends_happy(stack)
        shown = posted.data["blocks"]
        post_id = next(e["value"] for b in (json.loads(shown) if isinstance(shown, str) else shown)
                       if b["type"] == "actions"
                       for e in b["elements"] if e["action_id"] == blocks.VOTE_UP)

        def vote(action_id: str, trigger: str) -> str:
            return "payload=" + urllib.parse.quote(json.dumps({
                "type": "block_actions", "api_app_id": "A0MOOD", "token": "legacy", "trigger_id": trigger,
                "team": {"id": "T0001"}, "user": {"id": "U0BOB", "username": "bob", "team_id": "T0001"},
                "container": {"type": "message", "channel_id": CHANNEL, "is_ephemeral": False},
                "channel": {"id": CHANNEL}, "response_url": stack.hook(),
                "actions": [{"action_id": action_id, "block_id": "b", "value": post_id, "type": "button"}]}))

        async def settled(rows: int) -> list:
            for _ in range(100):
                if len(got := [r for r in ledger(sqlite_engine) if r[0] == "vote"]) == rows:
                    return got
                await asyncio.sleep(0.05)
            return got

        up = vote(blocks.VOTE_UP, "77.1")
        assert await stack.post(up) == 200
        (before,) = await settled(1)
        assert await stack.post(vote(blocks.VOTE_DOWN, "77.2")) == 200
        await asyncio.sleep(0.3)
        (changed,) = await settled(1)
        assert changed[1:3] == before[2:0:-1]  # 👎: the winner and loser swapped
        assert await stack.post(up) == 200  # the captured 👍, sent again
        await asyncio.sleep(0.5)
        assert await settled(1) == [changed]
        n_hooks = len(stack.fake.calls_to("webhook"))
        body = urllib.parse.urlencode({"team_id": "T0001", "channel_id": CHANNEL, "user_id": "U0ALICE",
                                       "command": "/gif", "text": "sad", "response_url": stack.hook(),
                                       "trigger_id": "77.3"})
        assert await stack.post(body) == 200 and await stack.post(body) == 200
        await asyncio.sleep(0.5)
        assert len(stack.fake.calls_to("webhook")) == n_hooks + 1  # one preview, not two


async def test_a_click_from_another_workspace_or_channel_posts_nothing(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import urllib.parse

    from _sec_slack import CHANNEL

    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        await stack.command("happy", user="U0ALICE", command="/gif")
        preview = (await stack.fake.wait_for("webhook", 1))[0].data
        send = next(e["value"] for b in preview["blocks"] if b["type"] == "actions"
                    for e in b["elements"] if e["action_id"] == blocks.SEND)
        for team, channel in (("T0OTHER", CHANNEL), ("T0001", "C0ELSEWHERE")):
            payload = {
                "type": "block_actions", "api_app_id": "A0MOOD", "token": "legacy", "trigger_id": f"{team}.{channel}",
                "team": {"id": team}, "user": {"id": "U0ALICE", "username": "alice", "team_id": team},
                "container": {"type": "message", "channel_id": channel, "is_ephemeral": True},
                "channel": {"id": channel}, "response_url": stack.hook(),
                "actions": [{"action_id": blocks.SEND, "block_id": "b", "value": send, "type": "button"}],
            }
            assert await stack.post("payload=" + urllib.parse.quote(json.dumps(payload))) == 200
        answers = await stack.fake.wait_for("webhook", 3)
        assert all("someone else" in a.data.get("text", "") or "someone else" in json.dumps(a.data)
                   for a in answers[1:])
        assert stack.fake.calls_to("chat.postMessage") == []
