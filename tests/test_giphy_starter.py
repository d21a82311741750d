"""`moodgif pool starter` and the GIPHY CLI against the local fake of GIPHY's API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _h1_gifs import good_gif
from _h1_server import serve
from click.testing import CliRunner
from fake_giphy import FakeGif, FakeGiphy
from sqlalchemy import select

from bot.cli import cli
from scorer.emotions import NAMES
from scorer.giphy import GiphyError
from scorer.giphy_starter import build_starter, plan_path
from scorer.migrate import init_db
from scorer.pool import pool_gifs
from scorer.settings import Settings, load_settings
from scorer.starter_phrases import PHRASES
from scorer.store import Gif, session_scope


def test_phrases_cover_every_emotion_with_reactions() -> None:
    assert list(PHRASES) == list(NAMES)
    for emotion, phrases in PHRASES.items():
        assert len(phrases) >= 4 and len(set(phrases)) == len(phrases)
        assert all(0 < len(p) <= 50 for p in phrases)
        assert any(emotion not in p for p in phrases)  # not the emotion's name alone
    assert {"facepalm", "mic drop", "phew", "slow clap"} <= {p for ps in PHRASES.values() for p in ps}


def _fill(fake: FakeGiphy, per_phrase: int = 3) -> None:
    seed = 0
    for phrases in PHRASES.values():
        for phrase in phrases:
            for k in range(per_phrase):
                seed += 1
                fake.add(FakeGif(id=f"g{seed:05d}", title=f"{phrase} reaction {k}",
                                 renditions={"original": good_gif(10_000 + seed)}))


@pytest.fixture
def served() -> Iterator[tuple[FakeGiphy, int, int]]:
    fake = FakeGiphy()
    _fill(fake)
    with serve(fake.media_app()) as media_port, serve(fake.api_app()) as api_port:
        fake.media_base = f"http://127.0.0.1:{media_port}"
        yield fake, api_port, media_port


def test_starter_is_deduplicated_and_resumable(sqlite_settings: Settings, served) -> None:  # type: ignore[no-untyped-def]
    fake, api_port, media_port = served
    s = sqlite_settings.override(giphy__api_key=fake.key, fetch__retries=1,
                                 giphy__api_url=f"http://127.0.0.1:{api_port}")
    engine = init_db(s.db_url)
    trusted = [("127.0.0.1", media_port)]
    done: list[str] = []

    def quota_after_five(emotion: str, _n: int) -> None:
        done.append(emotion)
        if len(done) == 5:
            fake.fail_429 = 1000  # the hourly quota runs out mid-plan

    with pytest.raises(GiphyError, match="rate limit"):
        build_starter(s, engine, "starter", per_emotion=3, trusted_endpoints=trusted,
                      backoff_s=0.001, on_emotion=quota_after_five)
    saved = json.loads(plan_path(s, "starter").read_text())
    assert list(saved["emotions"]) == list(NAMES[:5])
    fake.fail_429 = 0
    calls_before = len(fake.api_calls)
    report, counts = build_starter(s, engine, "starter", per_emotion=3, trusted_endpoints=trusted,
                                   backoff_s=0.001)
    # resumed: only the 12 emotions left were searched, 3 phrases each
    assert len(fake.api_calls) - calls_before == 12 * 3
    assert counts == dict.fromkeys(NAMES, 3)
    assert report.ok and len(report.added) == 51 and not report.duplicates
    assert len(set(pool_gifs(engine, "starter"))) == 51
    with session_scope(engine) as sess:
        rows = list(sess.scalars(select(Gif)))
    assert len({g.external_id for g in rows}) == 51
    queries = {g.attribution["query"] for g in rows}
    assert "facepalm" in queries and all(g.tags == [] for g in rows)
    # a third run asks GIPHY nothing and downloads nothing
    calls, downloads = len(fake.api_calls), sum(fake.downloads.values())
    again, _ = build_starter(s, engine, "starter", per_emotion=3, trusted_endpoints=trusted)
    assert not again.added and len(again.duplicates) == 51
    assert (len(fake.api_calls), sum(fake.downloads.values())) == (calls, downloads)


def test_cli_pool_add_giphy_starter_and_masked_key(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    fake, api_port, _media_port = served
    env = {"MOODGIF_HOME": str(tmp_path / "home"), "GIPHY_API_KEY": fake.key,
           "MOODGIF_GIPHY_API_URL": f"http://127.0.0.1:{api_port}",
           "MOODGIF_ALLOW_PRIVATE_URLS": "true", "MOODGIF_FETCH_RETRIES": "0"}
    runner = CliRunner()
    res = runner.invoke(cli, ["pool", "add", "hands", "giphy:facepalm", "--limit", "2"], env=env)
    assert res.exit_code == 0, res.output
    assert "pool hands: 2 added, 0 duplicates, 0 refused" in res.output
    res = runner.invoke(cli, ["pool", "starter", "--per-emotion", "1", "--json"], env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["counts"]["added"] == 17 and out["planned_per_emotion"] == dict.fromkeys(NAMES, 1)
    res = runner.invoke(cli, ["pool", "add", "x", "giphy:phew"], env={**env, "GIPHY_API_KEY": "nope"})
    assert res.exit_code == 1 and "GIPHY refused the API key (HTTP 403)" in res.output
    assert "nope" not in res.output.replace("GIPHY", "")
    res = runner.invoke(cli, ["pool", "add", "x", "some/folder", "--limit", "3"], env=env)
    assert res.exit_code == 2 and "apply to giphy: sources only" in res.output
    res = runner.invoke(cli, ["config", "show"], env=env)
    assert fake.key not in res.output and "giphy.api_key" in res.output
    settings = load_settings(env=env)
    assert fake.key in settings.secret_values()
