"""GIPHY import against a local fake of GIPHY's API and a local media server.

The renditions come through the real SSRF-safe fetcher: only the media server's exact
(127.0.0.1, port) is trusted, as tests/test_fetch.py does, so every other address
(a redirect to the API server's loopback port, say) is still refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from _h1_gifs import good_gif
from _h1_server import serve
from fake_giphy import FakeGif, FakeGiphy
from sqlalchemy import select

from scorer.giphy import GiphyError, GiphyKeyError, clean_text, map_rating, parse_gif
from scorer.giphy_import import GiphyEmpty, parse_giphy_source
from scorer.migrate import init_db
from scorer.pool import ingest, pool_gifs
from scorer.settings import Settings
from scorer.store import Gif, Refusal, session_scope


@dataclass
class Env:
    fake: FakeGiphy
    settings: Settings
    api_port: int
    media_port: int

    @property
    def trusted(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.media_port)]

    def ingest(self, engine, pool: str, source: str, **kw):  # type: ignore[no-untyped-def]
        return ingest(self.settings, engine, pool, source, trusted_endpoints=self.trusted,
                      backoff_s=0.01, **kw)


@pytest.fixture
def env(settings: Settings) -> Iterator[Env]:
    fake = FakeGiphy()
    with serve(fake.media_app()) as media_port, serve(fake.api_app()) as api_port:
        fake.media_base = f"http://127.0.0.1:{media_port}"
        s = settings.override(giphy__api_key=fake.key,
                              giphy__api_url=f"http://127.0.0.1:{api_port}", fetch__retries=2,
                              fetch__timeout_s=5.0, fetch__max_gif_bytes=4000,
                              fetch__allow_private_urls=False)
        yield Env(fake, s, api_port, media_port)


@pytest.fixture
def engine(env: Env):  # type: ignore[no-untyped-def]
    return init_db(env.settings.db_url)


def _gif(gid: str, title: str, seed: int, **kw) -> FakeGif:  # type: ignore[no-untyped-def]
    return FakeGif(id=gid, title=title, renditions={"original": good_gif(seed),
                                                     "fixed_height": good_gif(seed + 5000)}, **kw)


def _rows(engine) -> dict[str, Gif]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return {g.external_id: g for g in s.scalars(select(Gif))}


def test_search_pages_and_keeps_the_words(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    env.fake.page_max = 20
    for i in range(60):
        env.fake.add(_gif(f"happy{i:03d}", f"Happy Dance {i} GIF by Someone", seed=i,
                          username="someone" if i % 2 else "", alt_text=f"a person dancing {i}",
                          source="https://example.org/clip" if i == 1 else ""))
    env.fake.add(_gif("sad001", "Sad Rain GIF", seed=900))
    report = env.ingest(engine, "giphy-happy", "giphy:happy dance", limit=45)
    assert report.ok and len(report.added) == 45
    searches = [q for p, q in env.fake.api_calls if p == "/v1/gifs/search"]
    assert [q["offset"] for q in searches] == ["0", "20", "40"]
    assert all(q["q"] == "happy dance" and q["rating"] == "pg-13" for q in searches)
    rows = _rows(engine)
    g = rows["giphy:happy001"]
    assert g.title == "Happy Dance 1 GIF by Someone" and g.slug == "happy-dance-1-by-someone"
    assert g.alt_text == "a person dancing 1" and g.rating == "g" and g.rating_source == "giphy"
    assert g.attribution == {"provider": "giphy", "username": "someone",
                             "source_url": "https://example.org/clip",
                             "giphy_url": "https://giphy.com/gifs/happy-dance-1-by-someone-happy001"}
    assert g.source_url and "/media/happy001/original.gif" in g.source_url
    assert "giphy:sad001" not in rows
    assert len(pool_gifs(engine, "giphy-happy")) == 45


def test_paging_stops_on_an_api_that_ignores_offset(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    env.fake.page_max, env.fake.broken_paging = 5, True
    for i in range(12):
        env.fake.add(_gif(f"loop{i}", f"loop {i}", seed=1000 + i))
    report = env.ingest(engine, "loops", "giphy:loop", limit=12)
    assert len(report.added) == 5 and len(env.fake.api_calls) == 2


def test_resume_and_dedupe_by_id_and_sha(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        env.fake.add(_gif(f"clap{i}", f"slow clap {i}", seed=100 + i))
    twin = env.fake.add(_gif("clapdup", "slow clap again", seed=100))  # same bytes as clap0
    first = env.ingest(engine, "claps", "giphy:slow clap")
    assert len(first.added) == 5 and len(first.duplicates) == 1
    assert first.sources[first.duplicates[0]] in {"giphy:clap0", "giphy:clapdup"}
    downloads = sum(env.fake.downloads.values())
    assert downloads == 6
    again = env.ingest(engine, "claps", "giphy:slow clap")
    assert not again.added and len(again.duplicates) == 6 and again.ok
    # the rendition of a GIPHY id already stored is never downloaded again
    other = env.ingest(engine, "other", "giphy:id:clap1,clap2")
    assert len(other.added) == 2
    assert sum(env.fake.downloads.values()) == downloads + 1  # only clapdup (same sha as clap0)
    # the twin's bytes made one GIF row, under one of the two external ids
    rows = _rows(engine)
    assert ("giphy:clap0" in rows) != (f"giphy:{twin.id}" in rows)
    assert len(rows) == 5


def test_rating_mapping_and_ceiling(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    assert [map_rating(r) for r in ("y", "g", "pg", "PG-13", "r", "", "nc-17", None)] == \
        ["g", "g", "pg", "pg-13", "r", None, None, None]
    for i, rating in enumerate(["y", "g", "pg", "pg-13", "r", ""]):
        env.fake.add(_gif(f"rate{i}", f"rated {rating or 'none'}", seed=200 + i, rating=rating))
    ids = ",".join(f"rate{i}" for i in range(6))
    report = env.ingest(engine, "rated", f"giphy:id:{ids}", rating="pg")
    reasons = dict(report.refused)
    assert set(reasons) == {"giphy:rate3", "giphy:rate4"}
    assert reasons["giphy:rate4"] == "rated r by GIPHY, above the ceiling pg"
    rows = _rows(engine)
    assert {k: rows[k].rating for k in rows} == {"giphy:rate0": "g", "giphy:rate1": "g",
                                                 "giphy:rate2": "pg", "giphy:rate5": None}
    # search passes the ceiling to GIPHY, which filters on its side
    env.fake.add(_gif("rratedsearch", "rated wild", seed=300, rating="r"))
    with pytest.raises(GiphyEmpty, match="found no GIFs at or below rating pg-13"):
        env.ingest(engine, "wild", "giphy:wild")
    assert env.ingest(engine, "wild", "giphy:wild", rating="r").added


def test_giphys_stricter_rating_wins_over_one_stored_before(env: Env, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same bytes added first from a manifest that said "g": GIPHY's "r" once left it g,
    offered in a g-only workspace."""
    local = tmp_path / "eyeroll.gif"
    local.write_bytes(good_gif(400))
    (tmp_path / "m.csv").write_text("path,title,rating\neyeroll.gif,eye roll,g\n")
    assert env.ingest(engine, "team", str(tmp_path / "m.csv")).added
    env.fake.add(FakeGif(id="roll", title="eye roll", rating="r",
                         renditions={"original": good_gif(400), "fixed_height": good_gif(400)}))
    env.ingest(engine, "gip", "giphy:id:roll", rating="r")
    with session_scope(engine) as s:
        (row,) = s.scalars(select(Gif)).all()
        assert (row.rating, row.rating_source) == ("r", "giphy")
    env.fake.add(FakeGif(id="mild", title="eye roll", rating="g",
                         renditions={"original": good_gif(400), "fixed_height": good_gif(400)}))
    env.ingest(engine, "gip2", "giphy:id:mild")  # a milder rating never lowers it
    with session_scope(engine) as s:
        assert s.scalars(select(Gif.rating)).one() == "r"


def test_an_unknown_ceiling_is_refused_before_anything_is_stored(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    from scorer.giphy_import import import_gifs

    gifs = [parse_gif(env.fake._entry(env.fake.add(_gif("ceil0", "any", seed=500))))]
    with pytest.raises(GiphyError, match="unknown rating ceiling 'nc-17'"):
        import_gifs(env.settings, engine, "ceil", gifs, ceiling="nc-17")
    with session_scope(engine) as s:
        from scorer.store import Pool

        assert s.scalar(select(Pool).where(Pool.name == "ceil")) is None


def test_429_backoff_then_success_and_quota_errors(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    env.fake.add(_gif("phew1", "phew relief", seed=400))
    env.fake.fail_429 = 2
    report = env.ingest(engine, "relief", "giphy:phew")
    assert len(report.added) == 1 and len(env.fake.api_calls) == 3
    env.fake.fail_5xx = 1
    assert env.ingest(engine, "relief", "giphy:phew").duplicates
    env.fake.fail_429 = 10
    with pytest.raises(GiphyError, match=r"rate limit reached \(HTTP 429\) after 3 attempts") as exc:
        env.ingest(engine, "later", "giphy:phew")
    assert "\n" not in str(exc.value) and "resumes" in str(exc.value)
    env.fake.fail_429, env.fake.retry_after = 1, "3600"
    with pytest.raises(GiphyError, match="asks to wait 3600 s"):
        env.ingest(engine, "later", "giphy:phew")
    with session_scope(engine) as s:  # nothing half-written: no pool, no rows for "later"
        from scorer.store import Pool

        assert s.scalar(select(Pool).where(Pool.name == "later")) is None


def test_bad_or_missing_key(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    env.fake.add(_gif("k1", "anything", seed=500))
    bad = env.settings.override(giphy__api_key="wrong-key-123")
    with pytest.raises(GiphyKeyError, match=r"GIPHY refused the API key \(HTTP 403\)") as exc:
        ingest(bad, engine, "k", "giphy:anything", trusted_endpoints=env.trusted)
    assert "wrong-key-123" not in str(exc.value)
    none = env.settings.override(giphy__api_key="")
    with pytest.raises(GiphyKeyError, match="GIPHY_API_KEY is not set"):
        ingest(none, engine, "k", "giphy:anything")
    assert env.fake.api_calls == [("/v1/gifs/search", env.fake.api_calls[0][1])]  # one call, refused


def test_hostile_words_are_cleaned(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    env.fake.add(_gif("evil1", "<script>alert(1)</script>Happy\x00\x1b[31m dance\u202e &amp; fun "
                      + "x" * 500, seed=600, username="<!channel>",
                      alt_text="<img src=x onerror=alert(1)>line\nbreak\u200b"))
    report = env.ingest(engine, "clean", "giphy:id:evil1")
    assert report.ok
    g = _rows(engine)["giphy:evil1"]
    assert "<" not in g.title and "\x00" not in g.title and "\x1b" not in g.title
    # scorer.words.clean_text, the one cleaner: a script's body goes with its tags, and a
    # title over 300 characters is cut at a word (the 500-x run is not a word worth half of)
    assert g.title == "Happy [31m dance & fun"
    assert g.alt_text == "line break"
    assert g.attribution["username"] == ""  # not a GIPHY user name: dropped, never rendered
    assert clean_text("👨\u200d👩\u200d👧 family", 50) == "👨\u200d👩\u200d👧 family"
    assert clean_text(None, 10) == "" and clean_text(42, 10) == "42"  # a number is its digits


def test_oversized_renditions(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    big = good_gif(700, size=64, n=10)  # over the 4,000-byte cap
    assert len(big) > env.settings.fetch.max_gif_bytes
    env.fake.add(FakeGif("fits", "big original", renditions={
        "original": big, "downsized": good_gif(701), "fixed_height": good_gif(702)}))
    env.fake.add(FakeGif("nofit", "all big", renditions={"original": big, "downsized": big}))
    env.fake.add(FakeGif("liar", "lies about size", renditions={"original": big},
                         stated_sizes={"original": 100}))
    report = env.ingest(engine, "sized", "giphy:id:fits,nofit,liar")
    reasons = dict(report.refused)
    assert len(report.added) == 1 and set(reasons) == {"giphy:nofit", "giphy:liar"}
    assert reasons["giphy:nofit"].startswith("too large: every GIF rendition is over the size cap")
    assert "cap 4,000" in reasons["giphy:nofit"]
    assert reasons["giphy:liar"].startswith("too large")
    assert "/media/fits/downsized.gif" in (_rows(engine)["giphy:fits"].source_url or "")
    assert env.fake.downloads["fits/original"] == 0
    with session_scope(engine) as s:
        assert {r.source_ref for r in s.scalars(select(Refusal))} == {"giphy:nofit", "giphy:liar"}


def test_redirect_to_private_address_refused(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    env.fake.redirect_to = f"http://127.0.0.1:{env.api_port}/v1/gifs"  # loopback, not trusted
    env.fake.add(FakeGif("sneaky", "redirects", renditions={"original": good_gif(800)},
                         url_override={"original": f"{env.fake.media_base}/redirect/sneaky/original.gif"}))
    env.fake.add(FakeGif("direct", "private host", renditions={"original": good_gif(801)},
                         url_override={"original": "http://10.1.2.3/x.gif"}))
    env.fake.add(_gif("fine", "fine", seed=802))
    report = env.ingest(engine, "ssrf", "giphy:id:sneaky,direct,fine")
    reasons = dict(report.refused)
    assert len(report.added) == 1
    assert "loopback address 127.0.0.1" in reasons["giphy:sneaky"]
    assert "private address 10.1.2.3" in reasons["giphy:direct"]


def test_trending_ids_and_empty(env: Env, engine) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        env.fake.add(_gif(f"trend{i}", f"trend {i}", seed=900 + i))
    assert len(env.ingest(engine, "hot", "giphy:trending", limit=2).added) == 2
    report = env.ingest(engine, "ids", "giphy:id:trend2, nosuchid")
    assert len(report.added) == 1
    assert dict(report.refused)["giphy:nosuchid"].startswith("GIPHY has no GIF with this id")
    with pytest.raises(GiphyEmpty, match="GIPHY search 'zebra unicorn' found no GIFs"):
        env.ingest(engine, "none", "giphy:zebra unicorn")


@pytest.mark.parametrize(("source", "word"), [
    ("giphy:", "needs search words"), ("giphy:id:", "at least one id"),
    ("giphy:id:abc,../etc", "not a GIPHY id"), ("giphy:" + "a" * 51, "at most 50"),
])
def test_bad_sources(source: str, word: str) -> None:
    with pytest.raises(GiphyError, match=word):
        parse_giphy_source(source)


def test_parse_gif_skips_junk() -> None:
    assert parse_gif({"id": ""}) is None and parse_gif("x") is None
    g = parse_gif({"id": "abc", "images": {"original": {"url": "javascript:alert(1)", "size": "5"},
                                           "fixed_height": {"url": "https://m/x.gif", "size": "bad"}}})
    assert g is not None and [r.name for r in g.renditions] == ["fixed_height"]
    assert g.renditions[0].size is None and g.pick(10) == g.renditions[0]
