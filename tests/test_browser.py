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


@contextlib.asynccontextmanager
async def _served(settings, engine) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """The demo pool behind a real server with these settings; yields its URL."""
    pool = ingest_demo(settings, engine, demo_manifest())
    add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    core = BotCore(settings, engine, intent_parser=IntentParser(settings, use_embeddings=False))
    runner = web.AppRunner(build_app(core, settings, engine))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def playground(sqlite_settings, sqlite_engine):  # type: ignore[no-untyped-def]
    settings = sqlite_settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.0)
    async with _served(settings, sqlite_engine) as url:
        yield url, sqlite_engine


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


# ---- keyboard, screen reader and the chat adapters' words


_FOCUSED_JS = """() => {
        const a = document.activeElement;
        return {tag: a.tagName, action: a.dataset?.action ?? null, connected: a.isConnected,
                inPreview: !!a.closest('.msg.preview')};
    }"""


async def _focused(page, action: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What has keyboard focus: its tag, data-action, and whether it is in the preview. With
    `action`, first wait (5 s at most) for a control of that action to hold it: a loaded
    machine may paint the new preview a moment before the focus lands."""
    if action is not None:
        with contextlib.suppress(Exception):  # the comparison below says what it was instead
            await page.wait_for_function(
                "want => document.activeElement?.dataset?.action === want", arg=action, timeout=5000)
    return await page.evaluate(_FOCUSED_JS)


async def test_keyboard_focus_stays_on_the_control_a_rebuild_replaced(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    """Shuffle and "Another feeling" rebuild the preview: the focused button went with the
    old one, and a keyboard user was left on the page's body, at its top."""
    url, _engine = playground
    async with _asked(chromium, url, "/gif ugh") as page:
        preview = await _preview(page)
        img = preview.locator("img.gif")
        before = await img.get_attribute("data-sha")
        await preview.locator("[data-action=shuffle]").focus()
        await page.keyboard.press("Enter")
        await page.wait_for_function(
            "prev => document.querySelector('.msg.preview img.gif')?.dataset.sha !== prev", arg=before)
        assert await _focused(page, "shuffle") == {"tag": "BUTTON", "action": "shuffle", "connected": True,
                                        "inPreview": True}
        shown = await img.get_attribute("data-sha")  # read first: the answer may beat the next line
        await page.keyboard.press("Space")  # and again, without reaching for the mouse
        await page.wait_for_function(
            "prev => document.querySelector('.msg.preview img.gif')?.dataset.sha !== prev", arg=shown)
        assert (await _focused(page, "shuffle"))["action"] == "shuffle"

        menu = preview.locator("select[data-action=other]")
        await menu.focus()
        before = await preview.locator(".reading").inner_text()
        # Arrow keys on the closed menu step through it: Chrome fired "change" on each, and one
        # ArrowDown switched the feeling. Now only Enter picks what the keys reached.
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("End")  # the menu's last feeling ...
        await page.wait_for_timeout(300)  # (a switch would have been asked for by now)
        assert await preview.locator(".reading").inner_text() == before
        assert await menu.evaluate("m => m.value") != ""
        await page.keyboard.press("Enter")  # ... picked from the keyboard
        await page.wait_for_function(
            "() => /you picked/.test(document.querySelector('.msg.preview .reading')?.textContent)")
        assert await _focused(page, "other") == {"tag": "SELECT", "action": "other", "connected": True,
                                        "inPreview": True}

        reading = await preview.locator(".reading").inner_text()
        await preview.locator("[data-action=switch]").first.focus()  # the way back: not offered after it
        await page.keyboard.press("Enter")
        await page.wait_for_function(
            "prev => document.querySelector('.msg.preview .reading')?.textContent !== prev", arg=reading)
        assert await _focused(page, "send") == {"tag": "BUTTON", "action": "send", "connected": True,
                                        "inPreview": True}  # the preview's first button


async def test_another_feeling_picked_from_a_list_an_arrow_key_opened(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    """On a Mac an arrow key opens the menu's list instead of stepping through it: the pick
    made there (a "change" in a later task, no Enter reaching the page) was taken for a step
    and ignored, so a keyboard user's pick did nothing. Played as macOS's Chrome does it: the
    arrow's keydown changes nothing; the list's pick then sets the value and fires "change"."""
    url, _engine = playground
    async with _asked(chromium, url, "/gif ugh") as page:
        preview = await _preview(page)
        menu = preview.locator("select[data-action=other]")
        await menu.focus()
        await menu.evaluate("m => m.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}))")
        await page.wait_for_timeout(50)  # the list is open; the user looks, then picks
        await menu.evaluate("""m => { m.value = m.options[m.options.length - 1].value;
                                      m.dispatchEvent(new Event('change', {bubbles: true})); }""")
        await page.wait_for_function(
            "() => /you picked/.test(document.querySelector('.msg.preview .reading')?.textContent)")


async def test_send_and_cancel_from_the_keyboard_leave_focus_in_the_text_box(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    """Send and Cancel close the preview, and focus fell to the page's body with it: a keyboard
    user had to find the text box again to ask for the next GIF."""
    url, _engine = playground
    focus_on_text = "() => document.activeElement?.id === 'text'"
    async with _asked(chromium, url, "/gif happy") as page:
        preview = await _preview(page)
        await preview.locator("[data-action=send]").focus()
        await page.keyboard.press("Enter")
        await page.locator(".msg.post").wait_for()
        with contextlib.suppress(Exception):  # the assertion says where focus went instead
            await page.wait_for_function(focus_on_text, timeout=5000)
        assert await page.evaluate("() => document.activeElement.id") == "text"

        await page.keyboard.type("/gif ugh")  # straight on, no mouse
        await page.keyboard.press("Enter")
        preview = page.locator(".msg.preview")
        await preview.locator("img.gif").wait_for()
        await preview.locator("[data-action=cancel]").focus()
        await page.keyboard.press("Enter")
        await preview.wait_for(state="detached")
        with contextlib.suppress(Exception):
            await page.wait_for_function(focus_on_text, timeout=5000)
        assert await page.evaluate("() => document.activeElement.id") == "text"


async def test_the_poll_says_left_right_neither_as_slack_and_discord_do(chromium, sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """Its buttons read "This one", "This one", "Neither": two buttons of one name."""
    settings = sqlite_settings.override(chat__cooldown_s=0.0, ranking__poll_share=1.0)
    async with _served(settings, sqlite_engine) as url, _asked(chromium, url, "/gif happy") as page:
        poll = page.locator(".msg.poll")
        await poll.locator("img.gif").first.wait_for()
        assert await poll.get_by_role("button").all_inner_texts() == ["Left", "Right", "Neither"]
        await poll.get_by_role("button", name="Right", exact=True).click()
        await page.wait_for_function(
            "() => document.querySelector('.msg.poll .ack')?.textContent.startsWith('Thanks')")


async def test_three_gifs_say_send_1_2_3_as_slack_and_discord_do(chromium, sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    settings = sqlite_settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.0,
                                        chat__preview_count=3)
    async with _served(settings, sqlite_engine) as url, _asked(chromium, url, "/gif happy") as page:
        preview = page.locator(".msg.preview")
        await preview.locator("img.gif").nth(2).wait_for()
        sends = preview.locator("[data-action=send-this]")
        assert await sends.all_inner_texts() == ["Send #1", "Send #2", "Send #3"]
        second = await preview.locator("img.gif").nth(1).get_attribute("data-sha")
        await preview.get_by_role("button", name="Send #2").click()
        post = page.locator(".msg.post")
        await post.wait_for()
        assert await post.locator("img.gif").get_attribute("data-sha") == second


def _contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours (opaque ones)."""
    import re

    def luminance(css: str) -> float:
        r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def test_buttons_have_a_border_that_can_be_seen(chromium, playground) -> None:  # type: ignore[no-untyped-def]
    """A #ddd border on white (1.4:1) was all that told a white button from the page."""
    url, _engine = playground
    async with _asked(chromium, url, "/gif happy") as page:
        await _preview(page)
        for where in (url, url + "admin/retrains"):  # the playground's preview, an admin form
            if where != url:
                await page.goto(where)
            buttons = await page.evaluate("""() => [...document.querySelectorAll('button')]
                .filter((b) => !b.disabled)
                .map((b) => ({text: b.textContent, border: getComputedStyle(b).borderTopColor,
                              bg: getComputedStyle(b).backgroundColor,
                              page: getComputedStyle(b.closest('.msg') || document.body).backgroundColor}))""")
            assert buttons, where
            for b in buttons:  # against the button's own face and the surface around it
                assert min(_contrast(b["border"], b["bg"]), _contrast(b["border"], b["page"])) >= 3 \
                    or _contrast(b["bg"], b["page"]) >= 3, (where, b)
