"""Cross-site requests, DNS rebinding and plain forwarders against the real web server.

Every attack is a real HTTP request to `moodgif serve`'s application on a loopback port;
what must hold is that nothing lands in the ledger, no pool or retrain is started, and
the refusal is a clear 4xx.
"""

from __future__ import annotations

import base64
import json
import re

import aiohttp
import pytest
from _adapter_core import ledger, make_core, n_sessions
from _sec_server import forwarder, running
from sqlalchemy import func, select

from scorer.store import Pool, RetrainRun, session_scope

TOKEN = "admin-token-for-tests-0123456789"
EVIL = "http://evil.example"


@pytest.fixture
def core_private(sqlite_settings, sqlite_engine):  # type: ignore[no-untyped-def]
    core, settings, _clock = make_core(sqlite_settings, sqlite_engine, cooldown_s=0.0)
    return core, settings, sqlite_engine


def _pools(engine) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).select_from(Pool)) or 0)


def _runs(engine) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).select_from(RetrainRun)) or 0)


async def _csrf(http: aiohttp.ClientSession, url: str, **kw) -> str:  # type: ignore[no-untyped-def]
    async with http.get(url + "/admin", **kw) as r:
        assert r.status == 200
        return re.search(r"name=csrf value='([^']+)'", await r.text()).group(1)  # type: ignore[union-attr]


@pytest.mark.slow  # an admin pool add runs in the worker child (a Python start-up)
async def test_cross_site_posts_change_nothing(core_private, tmp_path) -> None:  # type: ignore[no-untyped-def]
    core, settings, engine = core_private
    folder = tmp_path / "server-folder"
    folder.mkdir()
    pools_before = _pools(engine)
    async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
        # What a foreign page's `fetch(..., {mode: "no-cors", body: text})` sends.
        for i in range(20):
            async with http.post(url + "/api/request", data=json.dumps({"text": "happy", "user": f"u{i}"}),
                                 headers={"Content-Type": "text/plain", "Origin": EVIL,
                                          "Sec-Fetch-Site": "cross-site"}) as r:
                assert r.status == 403
        # Each guard alone is enough: a JSON type from a foreign origin...
        async with http.post(url + "/api/vote", json={"post_id": 1, "up": True},
                             headers={"Origin": EVIL}) as r:
            assert r.status == 403
        # ...a same-site but cross-origin page (another port on this machine)...
        async with http.post(url + "/api/request", json={"text": "happy"},
                             headers={"Sec-Fetch-Site": "same-site"}) as r:
            assert r.status == 403
        # ...and a simple (preflight-free) content type even with no Origin at all.
        async with http.post(url + "/api/request", data='{"text": "happy"}',
                             headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        # Admin forms: cross-site, or without the CSRF token, or with a wrong one.
        csrf = await _csrf(http, url)
        form = {"name": "stolen", "source": str(folder), "csrf": csrf}
        async with http.post(url + "/admin/pools", data=form, headers={"Origin": EVIL},
                             allow_redirects=False) as r:
            assert r.status == 403
        for bad in ({}, {"csrf": "x" * 43}):
            async with http.post(url + "/admin/pools", data={"name": "stolen", "source": str(folder), **bad},
                                 allow_redirects=False) as r:
                assert r.status == 403 and "CSRF" in await r.text()
            async with http.post(url + "/admin/retrain", data=bad, allow_redirects=False) as r:
                assert r.status == 403
        assert ledger(engine) == [] and n_sessions(engine) == 0
        assert _pools(engine) == pools_before and core.jobs == [] and _runs(engine) == 0
        # The same page from the server's own origin works (the playground, the admin form).
        async with http.post(url + "/api/request", json={"text": "happy"},
                             headers={"Origin": url, "Sec-Fetch-Site": "same-origin"}) as r:
            assert r.status == 200 and (await r.json())["kind"] == "preview"
        async with http.post(url + "/admin/retrain", data={"csrf": csrf}, allow_redirects=False,
                             headers={"Origin": url}) as r:
            assert r.status == 303
        assert len(core.jobs) == 1
        await core.close()


async def test_no_page_may_be_framed_by_another_site(core_private) -> None:  # type: ignore[no-untyped-def]
    """A framed admin page's one-click buttons would pass every origin and CSRF check."""
    core, settings, engine = core_private
    async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
        for path in ("/", "/admin", "/admin/pools", "/admin/comparisons", "/no-such-page"):
            async with http.get(url + path) as r:
                assert r.headers.get("X-Frame-Options") == "DENY", (path, r.status)
                assert "frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", ""), path
        async with http.get(url + "/", headers={"Host": "evil.example"}) as r:  # refusals too
            assert r.status == 421 and r.headers.get("X-Frame-Options") == "DENY"
        # a wrong method is a 405, not a "missing CSRF token" 403 (the guard has nothing to guard)
        pools = _pools(engine)
        async with http.put(url + "/admin/pools", data={"name": "x", "source": "giphy:cat"}) as r:
            assert r.status == 405
        assert _pools(engine) == pools


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", "[::2]"])
async def test_foreign_host_names_are_refused(core_private, host) -> None:  # type: ignore[no-untyped-def]
    core, settings, engine = core_private
    async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
        for path in ("/", "/admin/comparisons?format=json", "/admin/retrains?format=json"):
            async with http.get(url + path, headers={"Host": host}) as r:
                assert r.status == 421, path
                assert "retrain" not in await r.text()
        async with http.post(url + "/api/request", json={"text": "happy"}, headers={"Host": host}) as r:
            assert r.status == 421
        # /gifs/ and the ops routes stay public under any name (Slack fetches GIFs by URL).
        async with http.get(url + "/healthz", headers={"Host": host}) as r:
            assert r.status == 200
        assert n_sessions(engine) == 0


async def test_allowed_hosts_setting_and_public_url_host(core_private) -> None:  # type: ignore[no-untyped-def]
    core, settings, engine = core_private
    settings = settings.override(http__allowed_hosts=["gifbox.lan"],
                                 http__public_url="https://gifs.example.org",
                                 http__admin_token=TOKEN)
    core.settings = settings
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
        for host in ("gifbox.lan:8080", "gifs.example.org", "localhost:1"):
            async with http.get(url + "/admin", headers={"Host": host, **auth}) as r:
                assert r.status == 200, host
        async with http.get(url + "/admin", headers={"Host": "other.lan", **auth}) as r:
            assert r.status == 421
        # Behind a TLS proxy the browser's Origin is the public URL: same origin.
        async with http.post(url + "/api/request", json={"text": "happy"},
                             headers={"Host": "gifs.example.org", "Origin": "https://gifs.example.org", **auth}) as r:
            assert r.status == 200


@pytest.mark.parametrize("exposure", [{"http_host": "0.0.0.0"}, {"public_url": "https://gifs.example.org"},
                                      {"http_host": "192.0.2.10"}])
async def test_exposed_server_without_token_turns_admin_off(core_private, exposure, caplog) -> None:  # type: ignore[no-untyped-def]
    core, settings, engine = core_private
    settings = settings.override(http__admin_token="", **exposure)
    with caplog.at_level("WARNING", logger="moodgif.bot.web"):
        async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
            port = int(url.rsplit(":", 1)[1])
            async with forwarder(port) as fport:
                via = f"http://127.0.0.1:{fport}"
                for base in (url, via):  # direct from loopback, and through a header-less forwarder
                    for path in ("/", "/admin", "/admin/comparisons?format=json"):
                        async with http.get(base + path) as r:
                            assert r.status == 403, (base, path)
                            assert "MOODGIF_ADMIN_TOKEN" in await r.text()
                    async with http.post(base + "/api/request", json={"text": "happy"}) as r:
                        assert r.status == 403
                sha = core.ranker.matrix().shas[0]
                async with http.get(f"{via}/gifs/{sha}.gif") as r:
                    assert r.status == 200  # the pool's files stay public
    assert "playground and admin pages are OFF" in caplog.text
    assert n_sessions(engine) == 0


@pytest.mark.slow  # an admin pool add runs in the worker child (a Python start-up)
async def test_exposed_server_needs_the_token_even_from_loopback(core_private) -> None:  # type: ignore[no-untyped-def]
    core, settings, engine = core_private
    settings = settings.override(http__admin_token=TOKEN,
                                 http__public_url="https://gifs.example.org")
    basic = "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode()
    async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
        port = int(url.rsplit(":", 1)[1])
        async with forwarder(port) as fport:
            via = f"http://127.0.0.1:{fport}"
            async with http.get(via + "/admin") as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
            async with http.get(via + "/admin", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.get(via + "/admin", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
            async with http.get(via + "/admin", headers={"Authorization": basic}) as r:
                assert r.status == 200
            # A browser logged in with Basic still needs the CSRF token on forms...
            async with http.post(via + "/admin/retrain", data={}, headers={"Authorization": basic},
                                 allow_redirects=False) as r:
                assert r.status == 403
            csrf = await _csrf(http, via, headers={"Authorization": basic})
            async with http.post(via + "/admin/retrain", data={"csrf": csrf},
                                 headers={"Authorization": basic}, allow_redirects=False) as r:
                assert r.status == 303
            # ...a script with the Bearer header does not (browsers never add that header).
            async with http.post(via + "/admin/retrain", headers={"Authorization": f"Bearer {TOKEN}",
                                                                  "Accept": "application/json"}) as r:
                assert r.status == 200
    await core.close()


async def test_bad_inputs_are_400_not_500(core_private) -> None:  # type: ignore[no-untyped-def]
    core, settings, engine = core_private
    async with running(core, settings, engine) as url, aiohttp.ClientSession() as http:
        for path, body in (("/api/vote", {"post_id": 10**30, "up": True}), ("/api/vote", {"post_id": -1, "up": True}),
                           ("/api/shuffle", {"session_id": 5}), ("/api/request", {"text": "x", "user": ["a"]})):
            async with http.post(url + path, json=body) as r:
                assert r.status == 400, (path, body)
        for raw in (b"[" * 50_000, b"\xff\xfe",  # nested past the recursion limit, not UTF-8
                    b'{"text": "happy \\ud800", "user": "alice"}'):  # a lone surrogate: no database stores it
            async with http.post(url + "/api/request", data=raw, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400
    from bot.events import Actor

    reply = await core.vote(Actor("slack", "T1", "C1", "U1"), post_id=10**30, up=True)
    assert reply.kind == "expired"


@pytest.mark.parametrize(("host", "origin", "ok"), [
    ("127.0.0.1:8080", "http://127.0.0.1:8080", True),
    ("127.0.0.1:8080", "http://127.0.0.1:8000", False),
    ("moodgif.example", "https://moodgif.example", True),  # 443 through a TLS proxy
    ("moodgif.example", "http://moodgif.example", True),
    # a Host with no port was sent to a default port: another app on :8000 of the same host
    # is another site (it was accepted)
    ("localhost", "http://localhost:8000", False),
    ("moodgif.example", "https://moodgif.example:8443", False),
    ("moodgif.example", "https://evil.example", False),
])
def test_same_origin_compares_ports_even_when_the_host_names_none(sqlite_settings, host, origin, ok) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import make_mocked_request

    from bot.adapters.web_guard import Access

    request = make_mocked_request("POST", "/admin/pools", headers={"Host": host, "Origin": origin})
    assert (Access(sqlite_settings).same_origin(request) is None) == ok
