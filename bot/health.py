"""Health, readiness and Prometheus metrics of a moodgif process.

`/healthz` answers "is the process alive" (always 200 while the event loop runs), so a
supervisor restarts only a wedged process. `/readyz` answers "can it serve users right
now": the database answers a real query at the newest schema, the score matrix is loaded,
and every configured chat adapter is connected; a load balancer or compose healthcheck
uses it. Components report their own state through `get_health().set_component(...)`;
the database is checked live on every `/readyz` call.

The metric objects below are the one definition: other modules import them and call
`.inc()` / `.observe()` / `.set()`. They live in their own registry (with the process
and platform collectors added), so tests and embedded uses never collide with another
library's default-registry metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from scorer.settings import Settings

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

REQUESTS = Counter(
    "moodgif_requests_total",
    "GIF requests by platform and the emotion they resolved to ('unknown' if none)",
    ["platform", "emotion"],
    registry=REGISTRY,
)
SUGGEST_LATENCY = Histogram(
    "moodgif_suggest_seconds",
    "Time from a request to its preview being ready (intent + ranking)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
VOTES = Counter(
    "moodgif_votes_total",
    "Feedback signals turned into comparisons, by platform and source (vote, send, poll, ...)",
    ["platform", "source"],
    registry=REGISTRY,
)
SENDS = Counter(
    "moodgif_sends_total",
    "GIFs sent from a preview ('posted'), and Sends taken back because the platform refused "
    "the post ('taken_back'); a Send after no Shuffle makes no comparison, so it is not a vote",
    ["platform", "outcome"],
    registry=REGISTRY,
)
POOL_SIZE = Gauge(
    "moodgif_pool_gifs",
    "GIFs in each pool (refreshed from the database on every scrape)",
    ["pool"],
    registry=REGISTRY,
)
# The retrain job runs in another process (the bot's worker child, or the worker service),
# which serves no /metrics: what it did comes from the database on every scrape instead.
RETRAIN_RUNS = Gauge(
    "moodgif_retrain_runs",
    "Retrain runs recorded in the database, by status",
    ["status"],
    registry=REGISTRY,
)
LAST_RETRAIN = Gauge(
    "moodgif_last_retrain_finished_timestamp_seconds",
    "When the newest finished retrain run ended (Unix time), by status",
    ["status"],
    registry=REGISTRY,
)
LAST_RETRAIN_SECONDS = Gauge(
    "moodgif_last_retrain_seconds",
    "Wall time of the newest finished retrain run (refit + train + rescore + activate), by status",
    ["status"],
    registry=REGISTRY,
)
# A full disk fails every Send and vote (SQLite: "database or disk is full") while /readyz,
# which only reads, stays ready: this is what an operator can alert on before that.
DISK_FREE = Gauge(
    "moodgif_disk_free_bytes",
    "Free bytes on the filesystem of the home (GIFs, features, models) and, on SQLite, of the "
    "database file, for this process's user (refreshed on every scrape)",
    ["volume"],
    registry=REGISTRY,
)

# Components that must be reported ok before /readyz says ready, besides the live DB check.
ALWAYS_REQUIRED = ("scores",)
DB_CHECK_TIMEOUT_S = 5.0


@dataclass
class Component:
    ok: bool
    detail: str
    since: float


class Health:
    """Process-wide component states; thread-safe (adapters report from their own threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._components: dict[str, Component] = {}
        self.started = time.time()

    def set_component(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            old = self._components.get(name)
            since = old.since if old is not None and old.ok == ok else time.time()
            self._components[name] = Component(ok=ok, detail=detail, since=since)

    def remove_component(self, name: str) -> None:
        with self._lock:
            self._components.pop(name, None)

    def reset(self) -> None:
        with self._lock:
            self._components.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            components = {
                name: {"ok": c.ok, "detail": c.detail, "since": _iso(c.since)}
                for name, c in sorted(self._components.items())
            }
        return {
            "status": "ok" if all(c["ok"] for c in components.values()) else "degraded",
            "uptime_s": round(time.time() - self.started, 1),
            "components": components,
        }


_HEALTH = Health()


def get_health() -> Health:
    return _HEALTH


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def required_components(settings: Settings) -> list[str]:
    """What must be ok for this process to be ready: scores, plus each configured adapter."""
    names = list(ALWAYS_REQUIRED)
    slack = settings.slack
    # Any Slack credential means Slack is wanted: a half-configured one reports why it is off.
    if slack.socket_mode or any((slack.bot_token, slack.app_token, slack.signing_secret,
                                 slack.client_id, slack.client_secret)):
        names.append("slack")
    if settings.discord.token:
        names.append("discord")
    return names


def check_database(engine: Engine) -> tuple[bool, str]:
    """A real round trip: read the schema revision and compare it with the code's head."""
    from scorer.migrate import head_revision, is_known_revision
    from scorer.store import is_busy_error, request_path

    try:
        with request_path(), engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except Exception as exc:  # any driver error means "not reachable / not usable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "alembic_version" in first:
            return False, "schema not initialised: run `moodgif db upgrade`"
        if is_busy_error(exc):
            return False, "busy: the database is locked by another process"
        # /readyz is public: the full message (host, port, database name) goes to the log.
        log.warning("readiness: database check failed: %s", first[:500])
        return False, f"{type(exc).__name__}: {redact(first)[:200]}"
    current = rows[0][0] if rows else None
    head = head_revision(engine)
    if current != head and current is not None and not is_known_revision(engine, current):
        # an old process left running through an upgrade: `db upgrade` is done already
        return False, (f"schema at {current}, newer than this process's code ({head}): restart it "
                       "on the new install")
    if current != head:
        return False, f"schema at {current}, code expects {head}: run `moodgif db upgrade`"
    return True, f"revision {current}"


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\[?[0-9a-f]*:[0-9a-f:]+\]?|\bport \d+|"
                      r"\b(?:host|dbname|user|password)=\S+", re.IGNORECASE)


def redact(message: str) -> str:
    """A driver error without names, addresses and ports (it is shown on a public route)."""
    return _ADDRESS.sub("…", _QUOTED.sub('"…"', message))


# Ops routes get their own threads: a request path stuck on a database lock must never
# leave /healthz, /readyz or /metrics waiting for a worker.
_OPS_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="moodgif-ops")


async def _ops_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_OPS_POOL, fn, *args)


def refresh_db_gauges(engine: Engine) -> None:
    """Set the database-derived gauges (pool sizes, retrain runs); errors leave them as they were."""
    from scorer.pool import list_pools
    from scorer.store import RetrainRun

    pools = [(p["name"], p["gifs"]) for p in list_pools(engine)]  # the one pool count
    with engine.connect() as conn:
        runs = conn.execute(
            select(RetrainRun.status, func.count(), func.max(RetrainRun.finished_at)).group_by(
                RetrainRun.status
            )
        ).all()
        took = {status: conn.execute(  # the newest run of each status: a handful of statuses
            select(RetrainRun.started_at).where(RetrainRun.status == status, RetrainRun.finished_at == finished)
            .limit(1)).scalar() for status, _, finished in runs if finished is not None}
    POOL_SIZE.clear()
    for name, n in pools:
        POOL_SIZE.labels(pool=name).set(n)
    RETRAIN_RUNS.clear()
    LAST_RETRAIN.clear()
    LAST_RETRAIN_SECONDS.clear()
    for status, n, finished in runs:
        RETRAIN_RUNS.labels(status=status).set(n)
        if finished is not None:
            LAST_RETRAIN.labels(status=status).set(finished.replace(tzinfo=dt.UTC).timestamp())
            if took.get(status) is not None:
                LAST_RETRAIN_SECONDS.labels(status=status).set((finished - took[status]).total_seconds())


def disk_volumes(settings: Settings) -> dict[str, Path]:
    """The folders whose filesystem moodgif writes to: the home, and a SQLite file's folder."""
    from sqlalchemy.engine import make_url

    volumes = {"home": settings.home}
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        volumes["database"] = Path(url.database).expanduser().parent
    return volumes


def refresh_disk_gauges(settings: Settings) -> None:
    """Set `moodgif_disk_free_bytes`; a folder that cannot be read is left out."""
    DISK_FREE.clear()
    for volume, folder in disk_volumes(settings).items():
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        DISK_FREE.labels(volume=volume).set(st.f_bavail * st.f_frsize)


def _short(fn: Any) -> Any:
    def run(*args: Any) -> Any:
        from scorer.store import request_path

        with request_path():
            return fn(*args)

    return run


def failing_components(components: dict[str, dict[str, Any]], required: list[str]) -> dict[str, str]:
    """Why each part keeps this process from being ready: a required one that has not
    reported or is not ok, and anything else that reported itself broken (the database)."""
    failing: dict[str, str] = {}
    for name in required:
        c = components.get(name)
        if c is None:
            failing[name] = "not reported yet"
        elif not c["ok"]:
            failing[name] = c["detail"] or "not ok"
    for name, c in components.items():
        if not c["ok"] and name not in failing:
            failing[name] = c["detail"] or "not ok"
    return failing


def add_ops_routes(app: web.Application, settings: Settings, engine: Engine) -> None:
    """Mount GET /healthz, /readyz and /metrics on an aiohttp application."""
    health = get_health()

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        try:
            ok, detail = await asyncio.wait_for(
                _ops_thread(check_database, engine), timeout=DB_CHECK_TIMEOUT_S
            )
        except TimeoutError:
            ok, detail = False, f"no answer within {DB_CHECK_TIMEOUT_S:.0f} s"
        health.set_component("database", ok, detail)
        snap = health.snapshot()
        components = snap["components"]
        failing = failing_components(components, required_components(settings))
        body = {
            "status": "ready" if not failing else "not ready",
            "failing": failing,
            "components": components,
            "uptime_s": snap["uptime_s"],
        }
        return web.json_response(body, status=200 if not failing else 503)

    async def metrics(_request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(_ops_thread(_short(refresh_db_gauges), engine), DB_CHECK_TIMEOUT_S)
        except Exception as exc:  # a scrape must still answer with the in-process metrics
            log.debug("metrics: database gauges not refreshed: %s", exc)
        try:  # a hung network home (NFS) must not hang the scrape with it
            await asyncio.wait_for(_ops_thread(refresh_disk_gauges, settings), DB_CHECK_TIMEOUT_S)
        except Exception as exc:
            log.debug("metrics: disk gauges not refreshed: %s", exc)
        payload = await _ops_thread(generate_latest, REGISTRY)
        response = web.Response(body=payload)
        # CONTENT_TYPE_LATEST carries a charset, which aiohttp wants set apart.
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
