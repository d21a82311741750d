"""The playground in a real headless Chromium: what a person does, and what lands in the ledger.

Debian's `/usr/bin/chromium` driven by Playwright for Python (never `playwright install`).
Skipped when Chromium is absent, except under CI=true, where that is a failure. The
screenshot goes to test-artifacts/playground.png.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo
from aiohttp import web
from sqlalchemy import select

from bot.adapters.web import build_app
from bot.core import BotCore
from bot.intent import IntentParser
from scorer.emotions import INDEX
from scorer.store import Comparison, Post, session_scope
from training.comparisons import reference_id

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM = os.environ.get("MOODGIF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM} (scripts/browser installs it)")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    pytest.importorskip("playwright.async_api")
    return CHROMIUM


@pytest.fixture
async def playground(sqlite_settings, sqlite_engine):  # type: ignore[no-untyped-def]
    settings = sqlite_settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.0)
    pool = ingest_demo(settings, sqlite_engine, demo_manifest())
    add_model_version(sqlite_engine, pool.shas, designed_scores(len(pool.shas)))
    core = BotCore(settings, sqlite_engine,
                   intent_parser=IntentParser(settings, use_embeddings=False))
    runner = web.AppRunner(build_app(core, settings, sqlite_engine))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/", sqlite_engine
    await runner.cleanup()


@contextlib.asynccontextmanager
async def _asked(chromium: str, url: str, text: str) -> AsyncIterator[Any]:
    """A headless page of the playground at `url` after typing `text`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 900})
            await page.goto(url)
            await page.fill("#text", text)
            await page.press("#text", "Enter")
            yield page
        finally:
            await browser.close()


async def _preview(page):  # type: ignore[no-untyped-def]
    """The page's private preview, once its GIF is shown."""
    preview = page.locator(".msg.preview")
    await preview.locator("img.gif").wait_for()
    return preview


async def _shuffled(page, preview) -> str:  # type: ignore[no-untyped-def]
    """Shuffle the preview once and wait for the new GIF; returns its SHA-256."""
    img = preview.locator("img.gif")
    before = await img.get_attribute("data-sha")
    await preview.locator("[data-action=shuffle]").click()
    await page.wait_for_function(
        "prev => document.querySelector('.msg.preview img.gif')?.dataset.sha !== prev", arg=before)
    return await img.get_attribute("data-sha")


async def test_gif_happy_shuffle_twice_send_and_thumbs_up(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    url, engine = playground
    async with _asked(chromium, url, "/gif happy") as page:
        preview = await _preview(page)
        img = preview.locator("img.gif")
        seen = [await img.get_attribute("data-sha")]
        for _ in range(2):
            seen.append(await _shuffled(page, preview))
        # the browser really loaded the GIF from /gifs/<sha>.gif
        assert await img.evaluate("el => el.complete && el.naturalWidth > 0")
        await preview.locator("[data-action=send]").click()
        post = page.locator(".msg.post")
        await post.wait_for()
        assert await post.locator("img.gif").get_attribute("data-sha") == seen[-1]
        assert "requested by" in await post.inner_text()
        await post.locator("[data-action=up]").click()
        await page.wait_for_function(
            "() => document.querySelector('.msg.post .ack')?.textContent.startsWith('Thanks')")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)

    assert len(set(seen)) == 3
    with session_scope(engine) as s:
        rows = [(c.source, c.winner, c.loser, c.tie, c.platform, c.emotion)
                for c in s.scalars(select(Comparison).order_by(Comparison.id))]
    happy = INDEX["happiness"]
    assert sorted(rows) == sorted([
        ("send", seen[2], seen[0], False, "web", happy),
        ("send", seen[2], seen[1], False, "web", happy),
        ("vote", seen[2], reference_id(happy), False, "web", happy),
    ])


async def test_an_unsure_reading_switches_feeling_in_the_page(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    url, engine = playground
    async with _asked(chromium, url, "/gif ugh") as page:
        preview = await _preview(page)
        switches = preview.locator("[data-action=switch]")
        assert await switches.all_inner_texts() == ["contempt", "disgust", "sadness"]
        await preview.locator("[data-action=switch][data-emotion=contempt]").click()
        await page.wait_for_function(
            "() => document.querySelector('.msg.preview .reading')?.textContent"
            ".endsWith('you picked contempt')")
        assert "contempt" in await preview.locator(".only-you").inner_text()
        assert (await switches.all_inner_texts())[0] == "anger"  # the way back
        sha = await preview.locator("img.gif").get_attribute("data-sha")
        await preview.locator("[data-action=send]").click()
        await page.locator(".msg.post").wait_for()

    with session_scope(engine) as s:
        posts = [p.gif_sha for p in s.scalars(select(Post))]
    assert posts == [sha]


async def test_a_did_you_mean_pick_is_remembered_in_the_page(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    url, engine = playground
    async with _asked(chromium, url, "/gif welp") as page:
        choices = page.locator(".msg.did_you_mean [data-action=choice]")
        await choices.first.wait_for()
        assert await choices.all_inner_texts() == ["sadness", "embarrassment", "contempt"]
        menu = page.locator(".msg.did_you_mean select[data-action=choice-other] option")
        assert "fear" in await menu.all_inner_texts()  # every other feeling, one pick away
        await page.locator(".msg.did_you_mean [data-action=choice]", has_text="embarrassment").click()
        preview = await _preview(page)
        assert await preview.locator(".reading").inner_text() == "You picked embarrassment"
        await preview.locator("[data-action=send]").click()
        await page.locator(".msg.post").wait_for()
        await page.fill("#text", "/gif welp")  # the same words again: no question this time
        await page.press("#text", "Enter")
        await page.wait_for_function(
            "() => document.querySelectorAll('.msg.preview').length === 1"
            " && document.querySelector('.msg.preview .reading')?.textContent.includes('your last pick')")
        assert "embarrassment" in await page.locator(".msg.preview .only-you").inner_text()

    with session_scope(engine) as s:
        assert len(list(s.scalars(select(Post)))) == 1


async def test_another_feeling_is_one_pick_away_in_the_page(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    url, _engine = playground
    async with _asked(chromium, url, "/gif ugh") as page:
        preview = await _preview(page)
        menu = preview.locator("select[data-action=other]")
        options = await menu.locator("option").all_inner_texts()
        assert options[0] == "Another feeling…" and "fear" in options and "anger" not in options
        await menu.select_option("fear")
        await page.wait_for_function(
            "() => document.querySelector('.msg.preview .reading')?.textContent.endsWith('you picked fear')")
        assert "fear" in await preview.locator(".only-you").inner_text()


async def test_undo_takes_a_send_back_in_the_page(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    url, engine = playground
    async with _asked(chromium, url, "/gif relief") as page:
        preview = await _preview(page)
        await _shuffled(page, preview)  # one GIF passed over: a Send's comparison
        await preview.locator("[data-action=send]").click()
        post = page.locator(".msg.post")
        await post.wait_for()
        with session_scope(engine) as s:
            assert s.query(Comparison).filter(Comparison.source == "send").count() >= 1
        await post.locator("[data-action=undo]").click()
        await post.wait_for(state="detached")  # the GIF is gone from the "channel"
    with session_scope(engine) as s:
        assert s.query(Comparison).filter(Comparison.source == "send").count() == 0


async def test_a_huge_paste_gets_the_cores_answer_not_the_servers_limit(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    url, _ = playground
    async with _asked(chromium, url, "happy " * 15_000) as page:  # 90 kB, over the 64 kB body limit
        answer = page.locator(".msg.bot.error")
        await answer.wait_for()
        assert "a lot of text for a GIF request" in await answer.inner_text()
        assert "Maximum request body size" not in await page.locator("#log").inner_text()


async def test_the_page_shows_how_the_words_will_be_read_while_typing(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    """Discord's autocomplete showed the reading while typing; the playground never asked
    its own /api/emotions for it."""
    from playwright.async_api import async_playwright

    url, _engine = playground
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 900})
            await page.goto(url)
            await page.type("#text", "/gif so happy", delay=20)
            await page.wait_for_function(
                "() => document.getElementById('hint').textContent.startsWith('→ happiness')")
            await page.press("#text", "Enter")  # sent: the hint goes with the words
            await _preview(page)
            assert await page.locator("#hint").inner_text() == ""
        finally:
            await browser.close()
