"""`moodgif serve`: one asyncio process with everything the bot needs.

- the HTTP server (`settings.http.host:http_port`): the web playground and admin pages,
  `/gifs/`, the ops routes (`/healthz`, `/readyz`, `/metrics`) and, when configured, Slack's
  HTTP events, all on one aiohttp application;
- Slack over Socket Mode and Discord, when their tokens are set (skipped cleanly otherwise);
- the retrain scheduler (APScheduler 3, `settings.training.retrain_cron` or `retrain_interval_min`),
  whose job runs in a worker process (started by bot/workers.py), never in this one;
- housekeeping: expire old previews, pick up a newly activated model version.

SIGINT / SIGTERM stop it gracefully: the scheduler and the adapters are closed and the HTTP
server finishes the requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Engine

from bot.adapters.web import build_app
from bot.core import BotCore
from scorer.salt import load_salt
from scorer.settings import Settings

log = logging.getLogger("moodgif.bot.serve")

HOUSEKEEPING_S = 60.0
# After SIGTERM the process is gone within this, even if a worker thread is stuck (a hung
# fetch, a file that never ends): supervisors (systemd, Docker) escalate to SIGKILL later,
# and a half-stopped bot that still holds its port is worse than a prompt exit.
SHUTDOWN_DEADLINE_S = 20.0
# aiohttp closes a connection that has not sent a complete request within its keep-alive
# timeout (armed when the connection opens, and again after each response): that is the
# slow-header limit too. aiohttp's default is an hour, which let 300 half-open connections
# sit; Slack and browsers simply reconnect after 15 s idle.
CONNECTION_IDLE_S = 15.0


def _hard_exit(reason: str) -> None:
    log.error("shutdown: %s; exiting now", reason)
    logging.shutdown()
    os._exit(1)


def _arm_deadline(seconds: float) -> None:
    timer = threading.Timer(seconds, _hard_exit, args=(f"not stopped within {seconds:g} s "
                                                       "(a worker thread is stuck)",))
    timer.daemon = True
    timer.start()


def playground_url(settings: Settings, port: int | None = None) -> str:
    host = settings.http.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":  # IPv6 wildcard: reachable here as ::1 (not always as 127.0.0.1)
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port or settings.http.port}/"


def mount_adapters(app: web.Application, core: BotCore, settings: Settings, engine: Engine) -> list[str]:
    """Add the ops routes and Slack's HTTP routes to `app`; returns what was mounted."""
    from bot.adapters import slack
    from bot.health import add_ops_routes

    add_ops_routes(app, settings, engine)
    mounted = ["playground", "ops"]
    # mount() decides from the credentials (bot token, or OAuth client id/secret).
    if slack.mount(app, core, settings) is not None:
        mounted.append("slack (HTTP events)")
    return mounted


async def _start_platforms(core: BotCore, settings: Settings) -> list[tuple[str, Callable[[], Any]]]:
    """Start Slack Socket Mode and Discord when configured; returns (name, async closer)."""
    from bot.adapters import discord as discord_adapter
    from bot.adapters.slack_setup import slack_setup

    closers: list[tuple[str, Callable[[], Any]]] = []
    if slack_setup(settings.slack).mode == "socket":  # off (and why) was logged at mount
        # Connecting retries for as long as Slack is unreachable: in the background, so the
        # playground, Discord and a stop signal never wait on it.
        connecting = asyncio.create_task(_connect_slack(core, settings), name="slack-socket-mode")
        closers.append(("slack (Socket Mode)", lambda: _close_slack(connecting)))
    client = await discord_adapter.start(core, settings)
    if client is not None:
        closers.append(("discord", client.close))
    return closers


async def _connect_slack(core: BotCore, settings: Settings) -> Any:
    from bot.adapters import slack

    try:
        return await slack.start_socket_mode(core, settings)
    except Exception as exc:  # a platform outage must not stop the playground
        log.error("Slack Socket Mode did not start: %s", type(exc).__name__)
        return None


async def _close_slack(connecting: asyncio.Task[Any]) -> None:
    if not connecting.done():  # still trying to reach Slack: stop trying
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        return
    run = connecting.result()
    if run is not None:
        await run.close()


def _start_scheduler(settings: Settings) -> Any:
    # The job runs in a worker process: torch and the training data never enter this one.
    from bot.workers import make_scheduler

    sched = make_scheduler(settings)
    if sched is None:
        log.info("scheduled retraining is off (empty retrain_cron, no retrain_interval_min)")
        return None
    sched.start()
    job = sched.get_job("moodgif-retrain")
    log.info("retrain scheduled; next run %s", getattr(job, "next_run_time", None))
    return sched


async def _housekeeping(core: BotCore, stop: asyncio.Event) -> None:
    from sqlalchemy.exc import OperationalError

    from bot.session import expire_old_sessions, forget_impressions, forget_old_words, to_datetime
    from scorer.store import db_error_line, is_busy_error

    words_since: dt.datetime | None = None  # the first pass reads every old session
    away = False  # the database did not answer the last pass: said once, not every minute
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_S)
        if stop.is_set():
            return
        try:
            now = to_datetime(core.clock())
            await asyncio.to_thread(expire_old_sessions, core.engine, now)
            keep = dt.timedelta(hours=max(core.settings.ranking.repeat_window_hours, 1.0) * 2)
            await asyncio.to_thread(forget_impressions, core.engine, now - keep)
            words_before = now - words_kept(core.settings)
            await asyncio.to_thread(forget_old_words, core.engine, words_before, words_since)
            words_since = words_before
            await asyncio.to_thread(core.ranker.matrix)  # notices a new model version
        except OperationalError as exc:
            if is_busy_error(exc) or away:
                continue  # a busy database, or an outage already said: the next pass retries
            away = True  # an outage (a restart, a network cut): one line, not a traceback a minute
            log.warning("housekeeping: the database does not answer (%s); retrying every %.0f s",
                        db_error_line(exc), HOUSEKEEPING_S)
        except Exception:
            log.exception("housekeeping failed; will retry")
        else:
            if away:
                away = False
                log.info("housekeeping: the database answers again")


def words_kept(settings: Settings) -> dt.timedelta:
    """How long a closed preview keeps the words it was asked with: as long as a workspace's
    own words read them (`chat.phrase_memory_days`), and at least a day."""
    return dt.timedelta(days=max(settings.chat.phrase_memory_days, 1.0))


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_stop_signals(loop: asyncio.AbstractEventLoop, callback: Callable[..., object],
                     *args: object) -> None:
    for sig in _STOP_SIGNALS:
        # No signal handlers on Windows or off the main thread: `stop` still works there.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, callback, *args)


def _release_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in _STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


def _stop_scheduler(sched: Any) -> None:
    if sched is not None:
        sched.shutdown(wait=False)


async def _listen(app: web.Application, settings: Settings) -> web.AppRunner:
    """Start the HTTP server; if the port is taken, say what to do."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=CONNECTION_IDLE_S)
    await runner.setup()
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise RuntimeError(f"cannot listen on {settings.http.host}:{settings.http.port}: "
                           f"{exc.strerror or exc}; choose a free port (--port N, or MOODGIF_HTTP_PORT)") from None
    return runner


def _announce(settings: Settings, runner: web.AppRunner, mounted: list[str],
              on_ready: Callable[[str], None] | None) -> str:
    """Log what is served where, tell `on_ready`; returns the playground's URL."""
    bound = runner.addresses[0][1] if runner.addresses else None  # port 0 = any free port
    url = playground_url(settings, bound)
    log.info("serving %s on %s", ", ".join(mounted), url)
    if settings.http.host in ("0.0.0.0", "", "::"):
        # The URL above is this machine's own; others reach it through this host's address.
        log.info("listening on every interface (%s, port %s): other machines reach it by a name "
                 "in MOODGIF_ALLOWED_HOSTS (or MOODGIF_PUBLIC_URL's host), with MOODGIF_ADMIN_TOKEN "
                 "for the playground and admin pages", settings.http.host or "0.0.0.0",
                 bound or settings.http.port)
    if on_ready is not None:
        on_ready(url)
    return url


async def _open_in_browser(url: str) -> None:
    import webbrowser

    await asyncio.to_thread(webbrowser.open, url)


@dataclass
class _Running:
    """What `serve` started and must stop, each in its own way."""

    core: BotCore
    sched: Any
    runner: web.AppRunner
    closers: list[tuple[str, Callable[[], Any]]]
    house: asyncio.Task[None]


def _exit_hard_when_stuck(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    """From now on the process ends within `seconds`, and at once on a second signal."""
    _arm_deadline(seconds)
    _on_stop_signals(loop, _hard_exit, "a second signal while stopping")


async def _close_platforms(closers: list[tuple[str, Callable[[], Any]]]) -> None:
    for name, close in closers:
        try:
            await asyncio.wait_for(close(), 10)
        except Exception as exc:  # one platform failing to close must not keep the others open
            log.warning("closing %s: %s", name, exc)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _shut_down(loop: asyncio.AbstractEventLoop, running: _Running,
                     hard_deadline_s: float | None) -> None:
    log.info("shutting down")
    if hard_deadline_s is not None:
        _exit_hard_when_stuck(loop, hard_deadline_s)
    _stop_scheduler(running.sched)
    from bot.workers import stop_workers

    await asyncio.to_thread(stop_workers)  # no retrain may outlive the bot and activate later
    await _close_platforms(running.closers)
    await _cancel(running.house)
    await running.runner.cleanup()
    await running.core.close()
    _release_stop_signals(loop)


async def serve(settings: Settings, engine: Engine, *, open_browser: bool = False,
                core: BotCore | None = None, stop: asyncio.Event | None = None,
                on_ready: Callable[[str], None] | None = None,
                hard_deadline_s: float | None = None) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set). `on_ready(url)` is called once listening.

    `hard_deadline_s` (the CLI's `moodgif serve`): once stopping, the process exits within
    that many seconds whatever is stuck, and a second signal exits at once.
    """
    core = core or BotCore(settings, engine)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    _on_stop_signals(loop, stop.set)

    sched = _start_scheduler(settings)
    try:
        # every vote and Send hashes its person: a host without the ledger's salt (a restore
        # onto a new machine) stops here with the fix, not at each request with a 500
        await asyncio.to_thread(load_salt, engine, settings)
        await core.warm_up()
        app = build_app(core, settings, engine)
        mounted = mount_adapters(app, core, settings, engine)
        runner = await _listen(app, settings)
    except BaseException:
        # Nothing is serving yet, but the warm-up thread and the job queue are: a port that
        # is taken must not leave them running under a caller that goes on (tests, embedders).
        _stop_scheduler(sched)
        await core.close()
        _release_stop_signals(loop)
        raise
    closers = await _start_platforms(core, settings)
    mounted += [name for name, _ in closers]
    house = loop.create_task(_housekeeping(core, stop), name="housekeeping")
    running = _Running(core, sched, runner, closers, house)
    url = _announce(settings, runner, mounted, on_ready)
    if open_browser:
        await _open_in_browser(url)
    try:
        await stop.wait()
    finally:
        await _shut_down(loop, running, hard_deadline_s)


def run_serve(settings: Settings, engine: Engine, *, open_browser: bool = False,
              announce: Callable[[str], None] | None = None) -> None:
    """Blocking entry point for the CLI."""
    def ready(url: str) -> None:
        (announce or (lambda u: print(f"moodgif is up: {u}  (Ctrl-C stops it)", file=sys.stderr)))(url)

    from bot.home_lock import home_lock

    # a restore must not swap the database under a running bot (bot.home_lock)
    with home_lock(settings.home, exclusive=False, doing="serve"):
        asyncio.run(serve(settings, engine, open_browser=open_browser, on_ready=ready,
                          hard_deadline_s=SHUTDOWN_DEADLINE_S))
