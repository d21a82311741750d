"""/healthz, /readyz and /metrics on a real aiohttp app and a real SQLite database; and
secrets kept out of the logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import create_engine

from bot.health import (
    POOL_SIZE,
    REGISTRY,
    REQUESTS,
    SUGGEST_LATENCY,
    VOTES,
    add_ops_routes,
    get_health,
)
from scorer.migrate import init_db
from scorer.settings import Settings, load_settings
from scorer.store import Gif, Pool, PoolGif, RetrainRun, dispose_engines, session_scope


@pytest.fixture(autouse=True)
def fresh_health() -> None:
    get_health().reset()


async def _client(settings: Settings, engine) -> TestClient:  # type: ignore[no-untyped-def]
    app = web.Application()
    add_ops_routes(app, settings, engine)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(sqlite_settings: Settings, sqlite_engine) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    c = await _client(sqlite_settings, sqlite_engine)
    yield c
    await c.close()


async def test_healthz_is_ok_while_the_process_runs(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_needs_scores_then_is_ready(client: TestClient) -> None:
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["status"] == "not ready"
    assert set(body["failing"]) == {"scores"}
    assert body["components"]["database"]["ok"] is True

    get_health().set_component("scores", True, "1234 GIFs, model v3")
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "ready" and body["failing"] == {}
    assert body["components"]["scores"]["detail"] == "1234 GIFs, model v3"

    # any component that reports itself broken makes the process not ready
    get_health().set_component("retrain-listener", False, "lost its connection")
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["failing"] == {"retrain-listener": "lost its connection"}


async def test_readyz_waits_for_each_configured_adapter(tmp_path: Path) -> None:
    settings = load_settings(
        env={"SLACK_BOT_TOKEN": "xoxb-1-abc", "DISCORD_TOKEN": "discord-secret-token"},
        home=str(tmp_path / "home"),
    )
    engine = init_db(settings.db_url)
    client = await _client(settings, engine)
    try:
        get_health().set_component("scores", True)
        get_health().set_component("slack", True, "HTTP events")
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["failing"] == {"discord": "not reported yet"}
        get_health().set_component("discord", False, "gateway reconnecting")
        resp = await client.get("/readyz")
        assert (await resp.json())["failing"] == {"discord": "gateway reconnecting"}
        get_health().set_component("discord", True, "shard 0 connected")
        resp = await client.get("/readyz")
        assert resp.status == 200
    finally:
        await client.close()
        dispose_engines()


async def test_readyz_503_when_the_database_is_unreachable(sqlite_settings: Settings, tmp_path: Path) -> None:
    # A SQLite file in a folder that does not exist: every connection attempt fails.
    engine = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'moodgif.db'}")
    client = await _client(sqlite_settings, engine)
    try:
        get_health().set_component("scores", True)
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        assert set(body["failing"]) == {"database"}
        assert "unable to open database file" in body["failing"]["database"]
        # liveness is not readiness: the process is still alive
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()
        engine.dispose()


async def test_readyz_503_on_a_database_without_schema(sqlite_settings: Settings, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    client = await _client(sqlite_settings, engine)
    try:
        get_health().set_component("scores", True)
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert "moodgif db upgrade" in (await resp.json())["failing"]["database"]
    finally:
        await client.close()
        engine.dispose()


@pytest.mark.postgres
async def test_readyz_503_when_postgres_refuses(sqlite_settings: Settings) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    engine = create_engine("postgresql+psycopg://moodgif@127.0.0.1:1/moodgif", pool_pre_ping=True)
    client = await _client(sqlite_settings, engine)
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503 and "database" in body["failing"]
        assert "OperationalError" in body["failing"]["database"]
    finally:
        await client.close()
        engine.dispose()


async def test_metrics_exposes_every_metric(client: TestClient, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sqlite_engine) as s:
        s.add(Pool(id=1, name="reactions"))
        s.add(Pool(id=2, name="empty-pool"))
        s.add(Gif(sha256="a" * 64, bytes=1, width=1, height=1, n_frames=1))
        s.flush()
        s.add(PoolGif(pool_id=1, gif_sha="a" * 64))
        import datetime as _dt

        began = _dt.datetime(2026, 11, 30, 3, 17)
        s.add(RetrainRun(trigger="schedule", status="activated", started_at=began,
                         finished_at=began + _dt.timedelta(seconds=321)))
        s.add(RetrainRun(trigger="schedule", status="failed", started_at=began - _dt.timedelta(days=1)))
    REQUESTS.labels(platform="slack", emotion="happiness").inc()
    SUGGEST_LATENCY.observe(0.042)
    VOTES.labels(platform="discord", source="vote").inc(2)

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    body = await resp.text()
    for name in (
        "moodgif_requests_total",
        "moodgif_suggest_seconds_bucket",
        "moodgif_votes_total",
        "moodgif_last_retrain_seconds",
        "moodgif_pool_gifs",
        "moodgif_retrain_runs",
        "process_resident_memory_bytes",
    ):
        assert name in body, name
    assert 'moodgif_requests_total{emotion="happiness",platform="slack"}' in body
    # pool sizes come from the database at scrape time
    assert 'moodgif_pool_gifs{pool="reactions"} 1.0' in body
    assert 'moodgif_pool_gifs{pool="empty-pool"} 0.0' in body
    assert 'moodgif_retrain_runs{status="activated"} 1.0' in body
    # what the worker's runs took, from the database (the worker serves no /metrics)
    assert 'moodgif_last_retrain_seconds{status="activated"} 321.0' in body
    assert 'moodgif_last_retrain_seconds{status="failed"}' not in body  # never finished
    assert REGISTRY.get_sample_value("moodgif_pool_gifs", {"pool": "reactions"}) == 1.0
    assert POOL_SIZE is not None


def test_health_snapshot_is_plain_data() -> None:
    h = get_health()
    h.set_component("slack", True, "socket mode")
    h.set_component("discord", False, "login failed")
    snap = h.snapshot()
    assert snap["status"] == "degraded"
    assert snap["components"]["slack"] == {"ok": True, "detail": "socket mode", "since": snap["components"]["slack"]["since"]}
    json.dumps(snap)  # serialisable as is


# ---------------------------------------------------------------------------------------
# secrets never reach the logs


SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-abcdefSECRET",
    "SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543",
    "DISCORD_TOKEN": "MTIzNDU2Nzg5.discord.SECRETSECRET",
    "MOODGIF_ADMIN_TOKEN": "admin-token-do-not-leak",
}
DB_PASSWORD = "pg-pass-w0rd-42"


@pytest.mark.parametrize("log_json", [False, True], ids=["plain", "json"])
def test_secrets_are_scrubbed_from_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str], log_json: bool) -> None:
    from bot.logs import setup_logging

    db_url = f"postgresql://moodgif:{DB_PASSWORD}@db.internal:5432/moodgif"
    settings = load_settings(
        env={**SECRETS, "MOODGIF_LOG_JSON": str(log_json), "MOODGIF_DATABASE_URL": db_url}, home=str(tmp_path)
    )
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging(settings)
        log = logging.getLogger("moodgif.test")
        log.info("connecting with %s", SECRETS["SLACK_BOT_TOKEN"])
        log.warning("signature %s did not match", SECRETS["SLACK_SIGNING_SECRET"])
        log.error(f"discord login with {SECRETS['DISCORD_TOKEN']} failed")
        log.warning("cannot reach %s", db_url)
        try:
            raise RuntimeError(f"admin token {SECRETS['MOODGIF_ADMIN_TOKEN']} rejected")
        except RuntimeError:
            log.exception("request failed")
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "connecting with ***" in err
    assert "request failed" in err and "RuntimeError" in err
    for value in (*SECRETS.values(), DB_PASSWORD):
        assert value not in err
    assert "postgresql://moodgif:***@db.internal" in err
    if log_json:
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert {rec["level"] for rec in lines} >= {"INFO", "WARNING", "ERROR"}


async def test_readyz_scores_follow_every_snapshot_the_ranker_loads(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """Not only the start-up one: a newer model version (or fit) picked up later shows too."""
    from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo

    from bot.core import BotCore
    from bot.intent import IntentParser
    from bot.ranking import Ranker

    pool = ingest_demo(sqlite_settings, sqlite_engine, demo_manifest())
    n = len(pool.shas)
    first = add_model_version(sqlite_engine, pool.shas, designed_scores(n))
    ranker = Ranker(sqlite_engine, stamp_interval_s=0.0)  # checks the stamp on every read
    core = BotCore(sqlite_settings, sqlite_engine, ranker=ranker,
                   intent_parser=IntentParser(sqlite_settings, use_embeddings=False))
    await core.warm_up()  # what `moodgif serve` does at start
    scores = get_health().snapshot()["components"]["scores"]
    assert scores["ok"] and scores["detail"] == f"{n} GIFs, model version {first}, fit None"
    newer = add_model_version(sqlite_engine, pool.shas, designed_scores(n)[::-1].copy())
    assert core.ranker.matrix().model_version_id == newer  # the stamp moved: reloaded
    detail = get_health().snapshot()["components"]["scores"]["detail"]
    assert detail == f"{n} GIFs, model version {newer}, fit None"


async def test_readyz_of_a_process_older_than_the_schema_says_restart_it(sqlite_settings: Settings) -> None:
    """An old bot kept serving through an upgrade told the admin to run `db upgrade`, already done."""
    from sqlalchemy import text

    engine = init_db(sqlite_settings.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_from_a_newer_moodgif'"))
    client = await _client(sqlite_settings, engine)
    try:
        get_health().set_component("scores", True)
        resp = await client.get("/readyz")
        said = (await resp.json())["failing"]["database"]
        assert resp.status == 503 and "restart it on the new install" in said and "db upgrade" not in said
    finally:
        await client.close()
        dispose_engines()


async def test_readyz_waits_for_the_sentence_model_loaded_at_start(sqlite_settings: Settings, sqlite_engine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A busy workspace's first sentences after a start waited 12 s for the sentence model,
    which loads in the background, while /readyz already said ready."""
    import threading

    from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo

    from bot import intent as intent_mod
    from bot.core import BotCore
    from bot.intent import IntentParser

    pool = ingest_demo(sqlite_settings, sqlite_engine, demo_manifest())
    add_model_version(sqlite_engine, pool.shas, designed_scores(len(pool.shas)))
    embedder, release = intent_mod._Embedder(), threading.Event()
    real_load = embedder.load

    def slow_load() -> bool:  # the ONNX session and the bank's vectors, on a busy machine
        release.wait(60)
        return real_load()

    monkeypatch.setattr(embedder, "load", slow_load)
    monkeypatch.setattr(intent_mod, "_EMBEDDER", embedder)
    parser = IntentParser(sqlite_settings)
    core = BotCore(sqlite_settings, sqlite_engine, intent_parser=parser)
    client = await _client(sqlite_settings, sqlite_engine)
    try:
        await core.warm_up()
        loading = await client.get("/readyz")
        assert loading.status == 503
        assert (await loading.json())["failing"] == {"intent": "loading the sentence model"}
        release.set()
        parser._warm_thread.join(120)
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 200, body
        assert body["components"]["intent"]["detail"].startswith("sentence model loaded")
    finally:
        release.set()
        await client.close()
        await core.close()


async def test_metrics_say_how_much_disk_is_left(client: TestClient, sqlite_settings: Settings) -> None:
    """A full disk failed every request ("database or disk is full") while /readyz, which
    only reads, said ready: the free space is a metric to alert on before it runs out."""
    import os

    body = await (await client.get("/metrics")).text()
    values = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
              for line in body.splitlines() if line.startswith("moodgif_disk_free_bytes{")}
    st = os.statvfs(sqlite_settings.home)
    assert set(values) == {'volume="home"', 'volume="database"'}
    assert 0 < values['volume="home"'] <= st.f_blocks * st.f_frsize


async def test_a_hung_home_does_not_hang_the_scrape(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """statvfs on a network home that stopped answering (NFS) blocks: the scrape answers
    without the disk gauge rather than wait with it."""
    import threading

    import bot.health as health

    release = threading.Event()
    real = health.os.statvfs

    def hung(path):  # type: ignore[no-untyped-def]
        release.wait(30)
        return real(path)

    monkeypatch.setattr(health, "DB_CHECK_TIMEOUT_S", 0.5)
    monkeypatch.setattr(health.os, "statvfs", hung)
    try:  # without the limit the scrape waits for the hung call (30 s here): a hang, not a time
        resp = await asyncio.wait_for(client.get("/metrics"), 20)
        assert resp.status == 200 and "moodgif_requests" in await resp.text()
    finally:
        release.set()


def test_the_schedulers_routine_lines_stay_out_of_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The worker's minute job poll wrote "Running job ..." and "executed successfully" lines
    for good (2-4 a minute); a missed run or a failed job still shows."""
    from bot.logs import setup_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging(load_settings(env={}, home=str(tmp_path)))
        executor = logging.getLogger("apscheduler.executors.default")
        executor.info('Running job "moodgif admin jobs" (scheduled at now)')
        executor.warning('Run time of job "moodgif retrain" was missed by 0:01:00')
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "was missed" in err and "Running job" not in err
