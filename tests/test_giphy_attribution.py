"""Posts of GIPHY GIFs carry "Powered By GIPHY" and the uploader, on every adapter."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from test_core import HAPPY, Env

from bot.adapters import discord_views, slack_blocks
from bot.adapters.web import card_json
from bot.events import credit_line
from scorer.store import Gif, session_scope

GIPHY_URL = "https://media2.giphy.com/media/abc123/giphy.gif"


def test_credit_line() -> None:
    assert credit_line({"provider": "giphy", "username": "someone"}) == "Powered By GIPHY · by @someone"
    assert credit_line({"provider": "giphy", "username": ""}) == "Powered By GIPHY"
    assert credit_line({"provider": "giphy", "username": "<!channel>"}) == "Powered By GIPHY"
    assert credit_line({}) == "" and credit_line(None) == ""
    assert credit_line({"provider": "other", "username": "x"}) == ""


async def test_posts_of_giphy_gifs_carry_the_credit(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    env = Env(sqlite_settings, sqlite_engine)
    best, second = env.best(HAPPY, n=2)
    with session_scope(sqlite_engine) as s:
        s.execute(update(Gif).where(Gif.sha256 == best).values(
            external_id="giphy:abc123", source_url=GIPHY_URL, title="Happy Dance",
            attribution={"provider": "giphy", "username": "someone", "source_url": "",
                         "giphy_url": "https://giphy.com/gifs/happy-dance-abc123"}))
    alice = env.actor()
    r = await env.core.request(alice, "/gif happy")
    assert r.preview.cards[0].sha256 == best
    assert r.preview.cards[0].credit == "Powered By GIPHY · by @someone"
    posted = await env.core.send(alice, r.preview.session_id)
    card = posted.post.card
    assert card.credit == "Powered By GIPHY · by @someone"

    slack = slack_blocks.post_message(posted.post, {"image_url": GIPHY_URL})
    assert slack["blocks"][0]["title"]["text"] == "Happy Dance · Powered By GIPHY · by @someone"
    assert slack["text"].endswith("· Powered By GIPHY · by @someone")
    preview = slack_blocks.preview_message(r.preview, {best: {"image_url": GIPHY_URL}})
    image = next(b for b in preview["blocks"] if b["type"] == "image")
    assert "Powered By GIPHY" in image["title"]["text"]

    msg = discord_views.post_message(posted.post, "", 10 * 1024 * 1024)
    assert msg.embeds[0].footer.text == "Happy Dance · Powered By GIPHY · by @someone"
    assert msg.embeds[0].image.url == GIPHY_URL and not msg.files  # from GIPHY's CDN
    assert card_json(card)["credit"] == "Powered By GIPHY · by @someone"

    # a GIF not from GIPHY carries no credit at all
    plain = env.core.card(second, "happiness")
    assert plain.credit == ""
    block = slack_blocks.image_block(plain, {"image_url": "x"}, "t")
    assert block["title"]["text"] == "t"
    assert "GIPHY" not in (discord_views.card_embed(plain, "https://x/y.gif").footer.text or "")


@pytest.mark.slow  # an admin pool add runs in the worker child (a Python start-up)
async def test_gif_admin_pools_add_giphy(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """`/gif-admin pools add NAME giphy:WORDS` (and the admin page's form, which calls the same
    core command) imports from GIPHY in a background job."""
    import asyncio

    from _h1_gifs import good_gif
    from _h1_server import serve
    from fake_giphy import FakeGif, FakeGiphy

    from bot.core import BotCore
    from bot.events import Actor
    from bot.intent import IntentParser
    from scorer.pool import pool_gifs

    fake = FakeGiphy()
    for i in range(3):
        fake.add(FakeGif(f"mic{i}", f"mic drop {i}", renditions={"original": good_gif(40 + i)}))
    with serve(fake.media_app()) as media_port, serve(fake.api_app()) as api_port:
        fake.media_base = f"http://127.0.0.1:{media_port}"
        s = sqlite_settings.override(giphy__api_key=fake.key, fetch__allow_private_urls=True,
                                     giphy__api_url=f"http://127.0.0.1:{api_port}")
        core = BotCore(s, sqlite_engine, intent_parser=IntentParser(s, use_embeddings=False))
        admin = Actor("test", "T1", "general", "boss", is_admin=True)
        reply = await core.admin(admin, "pools", ["add", "mics", "giphy:mic", "drop"])
        assert reply.kind == "ack" and "giphy:mic drop" in reply.text
        job = core.jobs[-1]
        await asyncio.wait_for(job.task, 120)
        assert job.state == "done", job.detail
        assert "3 added" in job.detail
        assert len(pool_gifs(sqlite_engine, "mics")) == 3
        assert fake.api_calls[0][1]["q"] == "mic drop"
