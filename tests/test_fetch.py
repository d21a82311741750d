"""URL fetching against a real local aiohttp server: timeouts, 404, caps, types, SSRF."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _h1_gifs import good_gif
from _h1_server import serve
from aiohttp import web

from scorer.fetch import address_problem, fetch_urls
from scorer.pool import ingest, pool_gifs
from scorer.settings import Settings

GIFS = {n: good_gif(300 + n) for n in range(4)}
BIG = good_gif(999, size=64, n=10)  # a few KB


def _app(other_port: int | None = None) -> web.Application:
    flaky = {"count": 0}

    async def gif(request: web.Request) -> web.Response:
        return web.Response(body=GIFS[int(request.match_info["n"])], content_type="image/gif")

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=GIFS[0], content_type="image/gif")

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="image/gif")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/gif"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(BIG), 512):
            await resp.write(BIG[i : i + 512])
        await resp.write_eof()
        return resp

    async def png_named_gif(_request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, content_type="image/gif")

    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html><body>not found</body></html>", content_type="text/html")

    async def flaky_gif(_request: web.Request) -> web.Response:
        flaky["count"] += 1
        if flaky["count"] == 1:
            return web.Response(status=503)
        return web.Response(body=GIFS[2], content_type="image/gif")

    async def to_local(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{other_port}/gif/1.gif")

    async def to_self(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/gif/3.gif")

    async def loop(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    app = web.Application()
    app.router.add_get("/gif/{n}.gif", gif)
    app.router.add_get("/slow.gif", slow)
    app.router.add_get("/big.gif", big)
    app.router.add_get("/big-chunked.gif", big_chunked)
    app.router.add_get("/png.gif", png_named_gif)
    app.router.add_get("/page.gif", html)
    app.router.add_get("/flaky.gif", flaky_gif)
    app.router.add_get("/to-local.gif", to_local)
    app.router.add_get("/to-self.gif", to_self)
    app.router.add_get("/loop", loop)
    return app


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int]]:
    """(main port, other port): main's /to-local.gif redirects to the other server."""
    with serve(_app()) as other, serve(_app(other)) as main:
        yield main, other


def _settings(base: Settings, **kw) -> Settings:  # type: ignore[no-untyped-def]
    defaults = {"fetch_timeout_s": 0.5, "fetch_retries": 1, "max_gif_bytes": 2000}
    defaults.update(kw)
    return base.override(**defaults)


def test_fetch_outcomes(sqlite_settings: Settings, servers: tuple[int, int]) -> None:
    port, _ = servers
    s = _settings(sqlite_settings, allow_private_urls=True)
    base = f"http://127.0.0.1:{port}"
    urls = [
        f"{base}/gif/0.gif", f"{base}/slow.gif", f"{base}/missing.gif", f"{base}/big.gif",
        f"{base}/big-chunked.gif", f"{base}/png.gif", f"{base}/page.gif", f"{base}/flaky.gif",
        f"{base}/to-self.gif", f"{base}/loop", "file:///etc/passwd",
    ]
    res = fetch_urls(s, urls, backoff_s=0.01)
    by = {r.url.rsplit("/", 1)[-1]: r for r in res}
    assert [r.url for r in res] == urls
    assert by["0.gif"].data == GIFS[0]
    assert by["slow.gif"].data is None and "timed out" in (by["slow.gif"].error or "")
    assert "after 2 attempts" in (by["slow.gif"].error or "")
    assert by["missing.gif"].error == "HTTP 404 Not Found"
    assert "too large" in (by["big.gif"].error or "") and "bytes (cap 2,000)" in (by["big.gif"].error or "")
    assert "too large: more than 2,000 bytes" in (by["big-chunked.gif"].error or "")
    assert "wrong type" in (by["png.gif"].error or "") and "PNG" in (by["png.gif"].error or "")
    assert "wrong type" in (by["page.gif"].error or "") and "html" in (by["page.gif"].error or "")
    assert by["flaky.gif"].data == GIFS[2]  # 503 first, retried
    assert by["to-self.gif"].data == GIFS[3] and (by["to-self.gif"].final_url or "").endswith("/gif/3.gif")
    assert "too many redirects" in (by["loop"].error or "")
    assert "not an http(s) URL" in (by["passwd"].error or "")


def test_private_addresses_refused_unless_allowed(sqlite_settings: Settings, servers: tuple[int, int]) -> None:
    port, other = servers
    s = _settings(sqlite_settings, allow_private_urls=False)
    trusted = [("127.0.0.1", port)]  # the test server itself; every other address is checked
    urls = [
        f"http://127.0.0.1:{port}/gif/0.gif",
        f"http://127.0.0.1:{port}/to-local.gif",  # redirects to 127.0.0.1:other
        f"http://127.0.0.1:{other}/gif/1.gif",
        f"http://localhost:{other}/gif/1.gif",
        f"http://[::1]:{other}/gif/1.gif",
    ]
    res = fetch_urls(s, urls, trusted=trusted, backoff_s=0.01)
    assert res[0].data == GIFS[0]
    for r in res[1:]:
        assert r.data is None and "loopback" in (r.error or ""), r
    assert "127.0.0.1" in (res[1].error or "")
    # the same redirect is followed when private addresses are allowed
    allowed = fetch_urls(_settings(sqlite_settings, allow_private_urls=True), urls[1:2], backoff_s=0.01)
    assert allowed[0].data == GIFS[1]


def test_every_dns_answer_is_checked(sqlite_settings: Settings) -> None:
    answers = {
        "mixed.example": ["93.184.216.34", "10.1.2.3"],
        "meta.example": ["169.254.169.254"],
        "mapped.example": ["::ffff:127.0.0.1"],
        "ula.example": ["fd12:3456::1"],
    }

    async def lookup(host: str, _port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    s = _settings(sqlite_settings, allow_private_urls=False)
    urls = [f"http://{h}/x.gif" for h in answers] + ["http://nowhere.example/x.gif"]
    res = fetch_urls(s, urls, lookup=lookup, backoff_s=0.01)
    assert "private address 10.1.2.3" in (res[0].error or "")
    assert "link-local" in (res[1].error or "")
    assert "loopback" in (res[2].error or "")
    assert "private" in (res[3].error or "")
    assert "cannot resolve" in (res[4].error or "")


@pytest.mark.parametrize(
    ("ip", "word"),
    [("127.0.0.1", "loopback"), ("10.0.0.1", "private"), ("192.168.1.1", "private"),
     ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"),
     ("100.64.0.1", "non-public"), ("::1", "loopback"), ("fe80::1", "link-local"),
     ("::ffff:10.0.0.1", "private"), ("240.0.0.1", "reserved")],
)
def test_address_problem(ip: str, word: str) -> None:
    assert word in (address_problem(ip) or "")


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(ip: str) -> None:
    assert address_problem(ip) is None


def test_url_ingest(settings: Settings, engine, servers: tuple[int, int], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port, _ = servers
    base = f"http://127.0.0.1:{port}"
    url_file = tmp_path / "urls.txt"
    good = [f"{base}/gif/{n}.gif" for n in range(3)]
    bad = {
        f"{base}/slow.gif": "timed out",
        f"{base}/missing.gif": "HTTP 404",
        f"{base}/big.gif": "too large",
        f"{base}/png.gif": "wrong type",
        f"{base}/to-local.gif": "loopback",
    }
    url_file.write_text("\n".join(good + list(bad)) + "\n")
    s = _settings(settings, allow_private_urls=False, fetch_retries=0)
    report = ingest(s, engine, "web", url_file, trusted_endpoints=[("127.0.0.1", port)])
    assert len(report.added) == 3
    reasons = dict(report.refused)
    assert set(reasons) == set(bad)
    for url, word in bad.items():
        assert word in reasons[url], (url, reasons[url])
    assert len(pool_gifs(engine, "web")) == 3
    again = ingest(s, engine, "web", url_file, trusted_endpoints=[("127.0.0.1", port)])
    assert not again.added and len(again.duplicates) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_url_ingest_progress_counts_every_item(sqlite_settings: Settings, sqlite_engine, servers: tuple[int, int],  # type: ignore[no-untyped-def]
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, the fetch bar counts the URLs and the ingest bar every item, a failed
    fetch included; without `progress` no bar is drawn."""
    port, _ = servers
    base = f"http://127.0.0.1:{port}"
    url_file = tmp_path / "urls.txt"
    url_file.write_text("".join(f"{base}/gif/{n}.gif\n" for n in range(3)) + f"{base}/missing.gif\n")
    s = _settings(sqlite_settings, allow_private_urls=False, fetch_retries=0)
    trusted = [("127.0.0.1", port)]
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    ingest(s, sqlite_engine, "quiet", url_file, trusted_endpoints=trusted)
    assert "%|" not in quiet.getvalue()
    shown = _Terminal()
    monkeypatch.setattr(sys, "stderr", shown)
    report = ingest(s, sqlite_engine, "shown", url_file, trusted_endpoints=trusted, progress=True)
    assert len(report.added) == 3 and len(report.refused) == 1
    out = shown.getvalue()
    assert re.search(r"fetch: 100%\|[^|]*\| 4/4 ", out), out
    assert re.search(r"ingest shown: 100%\|[^|]*\| 4/4 ", out), out


async def test_fetch_urls_inside_a_running_loop(sqlite_settings: Settings, servers: tuple[int, int]) -> None:
    port, _ = servers
    s = _settings(sqlite_settings, allow_private_urls=True)
    res = fetch_urls(s, [f"http://127.0.0.1:{port}/gif/1.gif"])
    assert res[0].data == GIFS[1]


def test_a_list_or_manifest_by_url_is_read_for_its_urls(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A chat admin has no server folder: `pools add NAME https://.../list.txt` (or a .csv /
    .json manifest) is fetched as a list, with a GIF's guards; its rows may name URLs only."""
    texts: dict[str, str] = {}

    async def listed(request: web.Request) -> web.Response:
        return web.Response(text=texts[request.match_info["name"]], content_type="text/plain")

    async def gif(request: web.Request) -> web.Response:
        return web.Response(body=GIFS[int(request.match_info["n"])], content_type="image/gif")

    app = web.Application()
    app.router.add_get("/lists/{name}", listed)
    app.router.add_get("/gif/{n}.gif", gif)
    app.router.add_get("/page.html", lambda _r: web.Response(text="<html>hi</html>", content_type="text/html"))
    with serve(app) as port:
        base = f"http://127.0.0.1:{port}"
        texts["team.txt"] = f"# our GIFs\n{base}/gif/0.gif\n{base}/gif/1.gif\nnot a url\n"
        texts["team.csv"] = (f"url,title,tags\n{base}/gif/2.gif,Happy dance,happy;dance\n"
                             f"{base}/gif/3.gif,Facepalm,\n")
        texts["local.csv"] = "path,title\n/etc/passwd,secrets\n../moodgif.db,db\n"
        trusted = [("127.0.0.1", port)]
        s = _settings(settings, max_gif_bytes=200_000)
        report = ingest(s, engine, "listed", f"{base}/lists/team.txt", trusted_endpoints=trusted)
        assert len(report.added) == 2 and dict(report.refused) == {"line 4": "not an http(s) URL"}
        report = ingest(s, engine, "listed", f"{base}/lists/team.csv", trusted_endpoints=trusted)
        assert len(report.added) == 2 and len(pool_gifs(engine, "listed")) == 4
        # a manifest by URL never reads this server's files
        report = ingest(s, engine, "local", f"{base}/lists/local.csv", trusted_endpoints=trusted)
        assert not report.added and report.pool_dropped
        assert {why for _, why in report.refused} == {"a manifest fetched by URL may name URLs only, not files"}
        # the guards hold for the list itself: private addresses unless trusted, HTML is no list
        with pytest.raises(Exception, match=r"could not be read: .*(private|loopback)"):
            ingest(s, engine, "x", f"{base}/lists/team.txt")
        texts["page.txt"] = "<html><body>a login page</body></html>"
        with pytest.raises(Exception, match="could not be read: wrong type"):
            ingest(s, engine, "x", f"{base}/lists/page.txt", trusted_endpoints=trusted)
        # text as people save it: Excel's BOM, a no-break space, an accent across byte 512
        texts["excel.csv"] = "\ufeffurl,title\n" + f"{base}/gif/0.gif,Caf\u00e9\u00a0time\n"
        report = ingest(s, engine, "bom", f"{base}/lists/excel.csv", trusted_endpoints=trusted)
        assert len(report.added) == 1 and not report.refused
        texts["long.txt"] = "#" + "x" * 510 + "\u00e9 a comment\n" + f"{base}/gif/1.gif\n"
        assert texts["long.txt"].encode()[511:513] == "\u00e9".encode()  # cut by the 512-byte sniff
        report = ingest(s, engine, "cut", f"{base}/lists/long.txt", trusted_endpoints=trusted)
        assert len(report.added) == 1
