"""`moodgif serve` (the real CLI) stops on SIGTERM even while a worker thread is stuck."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.serve import SHUTDOWN_DEADLINE_S, playground_url
from scorer.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def _collect(proc: subprocess.Popen) -> list[str]:
    """stderr lines of `proc`, read by a thread as they come."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for_url(proc: subprocess.Popen, lines: list[str], limit_s: float) -> str:
    """The URL `moodgif serve` announces once listening."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        for line in list(lines):
            m = re.search(r"moodgif is up: (http://\S+)", line)
            if m:
                return m.group(1)
        time.sleep(0.2)
    raise AssertionError(f"serve did not come up: {''.join(lines)[-2000:]}")


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_sigterm_with_a_hung_admin_job_exits_within_the_deadline(tmp_path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers: a fetch hangs until its timeout
    port = silent.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "MOODGIF_HOME": str(tmp_path / "home"),
           "MOODGIF_HTTP_PORT": "0", "MOODGIF_ALLOW_PRIVATE_URLS": "true",
           "MOODGIF_FETCH_TIMEOUT_S": "600", "MOODGIF_FETCH_RETRIES": "0"}  # the bot runs its jobs
    subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=120)
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines = _collect(proc)
        url = _wait_for_url(proc, lines, 180)
        with urllib.request.urlopen(url + "admin", timeout=30) as r:
            csrf = re.search(r"name=csrf value='([^']+)'", r.read().decode()).group(1)  # type: ignore[union-attr]
        form = f"name=hang&source=http://127.0.0.1:{port}/list.txt&csrf={csrf}".encode()
        req = urllib.request.Request(url + "admin/pools", data=form, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert b'"ack"' in r.read()
        silent.settimeout(60)
        conn, _ = silent.accept()  # the job's fetch is now hanging on us
        proc.send_signal(signal.SIGTERM)
        # Bounded by the deadline plus slack for the interpreter to go; the hung fetch alone
        # would keep it for 600 s, the old shutdown waited for it.
        proc.wait(timeout=SHUTDOWN_DEADLINE_S + 60)
        time.sleep(0.5)  # the reader thread drains the pipe
        rest = "".join(lines)
        assert "shutting down" in rest, rest[-2000:]
        # It was the deadline that ended it: the stuck fetch would have kept it alive.
        assert "not stopped within" in rest and proc.returncode == 1, rest[-2000:]
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        silent.close()


def test_ipv6_wildcard_prints_a_url_that_reaches_it() -> None:
    s = load_settings(env={}, http__host="::", http__port=8080)
    assert playground_url(s) == "http://[::1]:8080/"
    assert playground_url(load_settings(env={}, http__host="0.0.0.0"), 9) == "http://127.0.0.1:9/"


def test_a_wildcard_bind_says_other_machines_use_this_hosts_address(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    from types import SimpleNamespace

    from bot.serve import _announce

    runner = SimpleNamespace(addresses=[("0.0.0.0", 8123)])
    with caplog.at_level(logging.INFO, logger="moodgif"):
        url = _announce(load_settings(env={}, http__host="0.0.0.0"), runner, ["playground"], None)  # type: ignore[arg-type]
    assert url == "http://127.0.0.1:8123/"
    assert "every interface (0.0.0.0, port 8123)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="moodgif"):
        _announce(load_settings(env={}, http__host="127.0.0.1"), runner, ["playground"], None)  # type: ignore[arg-type]
    assert "serving playground" in caplog.text and "every interface" not in caplog.text


@contextlib.asynccontextmanager
async def _serving(settings: Any, engine: Any) -> AsyncIterator[str]:
    """`serve` running in this loop on a free port; yields the URL it announced (None when
    it never did), and stops it, bounded, whatever the test did."""
    import asyncio

    from bot import serve as serve_mod
    from bot.core import BotCore
    from bot.intent import IntentParser

    settings = settings.override(http__port=0, training__retrain_cron="")
    core = BotCore(settings, engine, intent_parser=IntentParser(settings, use_embeddings=False))
    stop = asyncio.Event()
    urls: list[str] = []
    task = asyncio.create_task(serve_mod.serve(settings, engine, core=core, stop=stop, on_ready=urls.append))
    try:
        for _ in range(400):
            if urls or task.done():
                break
            await asyncio.sleep(0.05)
        yield urls[0] if urls else ""
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)  # stops, whatever the test left hanging


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


async def test_slow_request_headers_are_cut_off(sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from bot import serve as serve_mod

    monkeypatch.setattr(serve_mod, "CONNECTION_IDLE_S", 1.0)
    async with _serving(sqlite_settings, sqlite_engine) as url:
        conns = []
        for _ in range(20):  # half-open connections, headers trickling in
            reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
            await writer.drain()
            conns.append((reader, writer))
        for reader, writer in conns:
            # the server hangs up (an hour, before); bounded wait, no timing asserted
            assert await asyncio.wait_for(reader.read(), 30) == b""
            writer.close()


async def test_slow_or_oversized_request_bodies_are_cut_off(sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Headers complete, then a body dripping a byte at a time: once held open for good."""
    import asyncio

    from bot.adapters import web_guard

    monkeypatch.setattr(web_guard, "BODY_READ_S", 1.0)
    async with _serving(sqlite_settings, sqlite_engine) as url:

        async def send(length: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
            writer.write(b"POST /api/request HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n{" % length)
            await writer.drain()
            try:  # the server answers at once (and hangs up after aiohttp's bounded linger)
                return await asyncio.wait_for(reader.read(200), 30)
            finally:
                writer.close()

        slow = await send(60_000)
        assert slow.startswith(b"HTTP/1.1 408") and b"Connection: close" in slow
        huge = await send(10**12)
        assert huge.startswith(b"HTTP/1.1 413") and b"Connection: close" in huge


async def test_an_unreachable_slack_in_socket_mode_delays_nothing_and_stop_still_stops(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """Socket Mode retries for as long as Slack is unreachable: serve once awaited that before
    announcing itself, never started Discord, and ignored SIGTERM (QA, 2026-11-30)."""
    from aiohttp import ClientSession

    with socket.socket() as closed:  # a port nobody listens on: every connect is refused
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    settings = sqlite_settings.override(
        slack__socket_mode=True, slack__app_token="xapp-1-test", slack__bot_token="xoxb-test",
        slack__api_url=f"http://127.0.0.1:{dead}/api/")
    async with _serving(settings, sqlite_engine) as url:  # and it stops although Slack never answered
        assert url, "serve never announced itself while Slack was unreachable"
        async with ClientSession() as http, http.get(url + "healthz") as resp:
            assert resp.status == 200
