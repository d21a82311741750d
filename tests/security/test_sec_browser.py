"""A foreign web page, opened in real headless Chromium, attacks the playground and admin.

The attacker's page is served from another origin (another loopback port); it sends the
cross-site requests a browser allows without asking (no-cors `text/plain` fetches, a JSON
fetch that needs a preflight, auto-submitted forms) and a DNS-rebinding visit (Chromium's
resolver maps `rebind.test` to 127.0.0.1). Nothing may reach the ledger, no pool and no
retrain may start. Skipped when Chromium is absent (as tests/test_browser.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _adapter_core import ledger, make_core, n_sessions
from _sec_server import running
from aiohttp import web
from sqlalchemy import func, select

from scorer.store import Pool, session_scope

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM = os.environ.get("MOODGIF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

ATTACK = """<!doctype html><meta charset=utf-8><title>cute cats</title>
<iframe name=a></iframe><iframe name=b></iframe>
<form id=pool method=post action="TARGET/admin/pools" target=a>
  <input name=name value=stolen><input name=source value="SOURCE"></form>
<form id=retrain method=post action="TARGET/admin/retrain" target=b></form>
<script>
(async () => {
  const out = [];
  for (let i = 0; i < 20; i++) {
    try {
      await fetch("TARGET/api/request", {method: "POST", mode: "no-cors",
        body: JSON.stringify({text: "happy", user: "victim" + i})});
      out.push("sent");
    } catch (e) { out.push("blocked"); }
  }
  try {
    const r = await fetch("TARGET/api/request", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({text: "happy"})});
    out.push("json:" + r.status);
  } catch (e) { out.push("json:blocked"); }
  try {
    const r = await fetch("TARGET/admin/comparisons?format=json");
    out.push("read:" + (await r.text()).length);
  } catch (e) { out.push("read:blocked"); }
  const loaded = (name) => new Promise(res => document.querySelector(`iframe[name=${name}]`).onload = res);
  const la = loaded("a"), lb = loaded("b");
  document.getElementById("pool").submit();
  document.getElementById("retrain").submit();
  await Promise.all([la, lb]);
  window.results = out;
})();
</script>"""


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM}")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    pytest.importorskip("playwright.async_api")
    return CHROMIUM


async def test_foreign_page_in_chromium_changes_nothing(chromium, sqlite_settings, sqlite_engine,
                                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    core, settings, _ = make_core(sqlite_settings, sqlite_engine, cooldown_s=0.0)
    engine = sqlite_engine
    folder = tmp_path / "gifs-on-the-server"
    folder.mkdir()
    with session_scope(engine) as s:
        pools_before = s.scalar(select(func.count()).select_from(Pool))
    async with running(core, settings, engine) as target:
        page_html = ATTACK.replace("TARGET", target).replace("SOURCE", str(folder))

        async def evil(_request: web.Request) -> web.Response:
            return web.Response(text=page_html, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", evil)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        evil_url = f"http://localhost:{runner.addresses[0][1]}/"
        port = int(target.rsplit(":", 1)[1])
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=chromium, headless=True,
                    args=[*ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"])
                try:
                    page = await browser.new_page()
                    await page.goto(evil_url)
                    await page.wait_for_function("() => window.results !== undefined", timeout=60_000)
                    results = await page.evaluate("() => window.results")
                    # DNS rebinding: the attacker's name now points at this machine.
                    rebound = await page.goto(f"http://rebind.test:{port}/admin/comparisons?format=json")
                    assert rebound is not None and rebound.status == 421
                    playground = await page.goto(f"http://rebind.test:{port}/")
                    assert playground is not None and playground.status == 421
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
    # The no-cors fetches were sent (the browser allows that) and were refused by the server.
    assert results[:20] == ["sent"] * 20
    assert results[20] == "json:blocked"  # the preflight is never granted
    assert results[21] == "read:blocked"  # no CORS: the foreign page reads nothing
    assert ledger(engine) == [] and n_sessions(engine) == 0
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Pool)) == pools_before
    assert core.jobs == []
