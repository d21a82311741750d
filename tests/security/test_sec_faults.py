"""Faults: kill -9 during ingest, a lock held by another process, clock skew, a full disk.

Each asserts that nothing is lost: every source file ends up in the pool once its ingest
is rerun, every vote recorded before the fault is still there, the database passes its
integrity check, and the error a person sees is one clear line.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest
from _adapter_core import ledger, make_core
from _bot_pool import demo_manifest
from _sec_server import running
from sqlalchemy import select

from bot.core import BUSY_TEXT, BotCore
from bot.dbclock import DbClock
from bot.intent import IntentParser
from scorer.migrate import init_db
from scorer.settings import load_settings
from scorer.store import Gif, dispose_engines, session_scope

REPO = Path(__file__).resolve().parents[2]
MOODGIF = [sys.executable, "-m", "bot.cli"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "MOODGIF_HOME": str(home), "PYTHONPATH": str(REPO), "MOODGIF_LOG_LEVEL": "WARNING"}


def _many_gifs(folder: Path, n: int) -> list[bytes]:
    """n distinct GIFs: the demo files with a different tail after the trailer."""
    folder.mkdir()
    base = [p.read_bytes() for p in sorted(demo_manifest().parent.rglob("*.gif"))]
    out = []
    for i in range(n):
        data = base[i % len(base)] + f"#{i}".encode()
        (folder / f"g{i:04d}.gif").write_bytes(data)
        out.append(data)
    return out


def _pool_shas(db: Path, pool: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute(
            "SELECT gif_sha FROM pool_gifs JOIN pools ON pools.id = pool_gifs.pool_id WHERE pools.name = ?",
            (pool,))}


def _stored_files_ok(home: Path, shas: set[str]) -> None:
    for sha in shas:
        path = home / "gifs" / sha[:2] / f"{sha}.gif"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha  # never half a file


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_kill_9_during_ingest_loses_nothing(tmp_path) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "src"
    datas = _many_gifs(folder, 400)
    want = {hashlib.sha256(d).hexdigest() for d in datas}
    env = _env(home)
    subprocess.run([*MOODGIF, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    killed = 0
    for _attempt in range(3):  # bounded: kill at three points of the run
        proc = subprocess.Popen([*MOODGIF, "pool", "add", "big", str(folder)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gifs = home / "gifs"
        deadline = time.monotonic() + 90
        # wait until it is storing files, then kill it without warning
        while time.monotonic() < deadline and proc.poll() is None:
            stored = sum(1 for _ in gifs.rglob("*.gif")) if gifs.exists() else 0
            if stored >= 40 * (killed + 1):
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(30)
    assert killed >= 1
    done = subprocess.run([*MOODGIF, "pool", "add", "big", str(folder)], env=env, capture_output=True,
                          text=True, timeout=200)
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-2000:]
    db = home / "moodgif.db"
    assert _pool_shas(db, "big") == want
    _stored_files_ok(home, want)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM gifs").fetchone()[0] == len(want)


HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=20)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, held (a long job in another process)
    conn.execute("INSERT INTO meta(key, value) VALUES ('lock-holder', 'x')")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
""")


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_lock_held_by_another_process_gets_busy_replies_not_stalls(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    core, settings, _ = make_core(sqlite_settings, sqlite_engine, cooldown_s=0.0)
    async with running(core, settings, sqlite_engine) as url:
        timeout = aiohttp.ClientTimeout(total=20)  # the old wait was 30 s per statement
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(url + "/api/request", json={"text": "happy"}) as r:
                preview = await r.json()
            async with http.post(url + "/api/send", json={"session_id": preview["preview"]["session_id"]}) as r:
                post = (await r.json())["post"]
            async with http.post(url + "/api/vote", json={"post_id": post["post_id"], "up": True}) as r:
                assert (await r.json())["kind"] == "ack"
            before = ledger(sqlite_engine)
            assert before
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(settings.db_url.split("///", 1)[1])],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
                async with http.post(url + "/api/vote", json={"post_id": post["post_id"], "up": True,
                                                              "user": "bob"}) as r:
                    assert r.status == 200 and (await r.json())["text"] == BUSY_TEXT
                async with http.post(url + "/api/request", json={"text": "sad"}) as r:
                    assert r.status == 200 and (await r.json())["text"] == BUSY_TEXT
                # read-only pages and the ops routes do not wait for the writer (WAL)
                async with http.get(url + "/admin/comparisons") as r:
                    assert r.status == 200
                async with http.get(url + "/healthz") as r:
                    assert r.status == 200
                async with http.get(url + "/readyz") as r:
                    assert "database" not in (await r.json())["failing"]
            finally:
                holder.communicate("go\n", timeout=10)
            # the lock is gone: the same vote now counts, and nothing from before was lost
            async with http.post(url + "/api/vote", json={"post_id": post["post_id"], "up": True,
                                                          "user": "bob"}) as r:
                assert (await r.json())["kind"] == "ack"
    after = ledger(sqlite_engine)
    assert after[: len(before)] == before and len(after) == len(before) + 1


@pytest.mark.postgres
async def test_hosts_with_skewed_clocks_agree_on_sessions(pg_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.session import expire_old_sessions, to_datetime

    settings = load_settings(env={}, home=str(tmp_path / "h"), database_url=pg_url)
    engine = init_db(pg_url)
    try:
        core_a, settings, _ = make_core(settings, engine, cooldown_s=0.0)
        core_a.clock = DbClock(engine)
        # Host B's own clock is 20 minutes fast; its core follows the database's clock.
        fast = DbClock(engine, local=lambda: time.time() + 1200)
        core_b = BotCore(settings, engine, intent_parser=IntentParser(settings, use_embeddings=False),
                         clock=fast)
        from bot.events import Actor

        alice = Actor("slack", "T1", "C1", "U0ALICE")
        preview = await core_a.request(alice, "happy")
        assert preview.kind == "preview" and preview.preview is not None
        # B runs its housekeeping, then handles Alice's click on A's preview.
        expire_old_sessions(engine, to_datetime(core_b.clock()))
        sent = await core_b.send(alice, preview.preview.session_id)
        assert sent.kind == "posted", sent
        assert abs(fast() - time.time()) < 5  # B's session times are the database's
        # Without the database clock, B would have expired it (the failure this prevents).
        preview2 = await core_a.request(alice, "sad")
        skewed = settings.override()
        core_c = BotCore(skewed, engine, intent_parser=IntentParser(skewed, use_embeddings=False),
                         clock=lambda: time.time() + 1200)
        expire_old_sessions(engine, to_datetime(core_c.clock()))
        assert (await core_a.send(alice, preview2.preview.session_id)).kind == "expired"  # type: ignore[union-attr]
    finally:
        dispose_engines()


def _limit_file_size(limit: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_disk_full_on_backup_and_ingest_is_a_clear_error_and_loses_nothing(tmp_path) -> None:
    """A size-limited file (RLIMIT_FSIZE) stands for a full disk: writes fail with EFBIG."""
    home = tmp_path / "home"
    folder = tmp_path / "src"
    datas = _many_gifs(folder, 30)
    env = _env(home)
    first = subprocess.run([*MOODGIF, "pool", "add", "p", str(folder)], env=env, capture_output=True,
                           text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    db = home / "moodgif.db"
    with sqlite3.connect(db) as conn:
        n_before = conn.execute("SELECT count(*) FROM pool_gifs").fetchone()[0]
    size_before = db.stat().st_size
    # backup: the archive cannot grow past 64 kB
    out = tmp_path / "b.tar.gz"
    bk = subprocess.run([*MOODGIF, "backup", str(out)], env=env, capture_output=True, text=True,
                        timeout=120, preexec_fn=_limit_file_size(64 * 1024))
    assert bk.returncode != 0 and "Traceback" not in bk.stderr, bk.stderr[-2000:]
    assert "no space left" in bk.stderr or "disk full" in bk.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    # ingest: new pool files cannot be written (each GIF is > 1 kB) -> refusals, not a crash
    more = tmp_path / "more"
    more_datas = _many_gifs(more, 5)
    for i, d in enumerate(more_datas):
        (more / f"g{i:04d}.gif").write_bytes(d + b"new")
    ing = subprocess.run([*MOODGIF, "pool", "add", "q", str(more)], env=env, capture_output=True,
                         text=True, timeout=120, preexec_fn=_limit_file_size(1024))
    assert "Traceback" not in ing.stderr, ing.stderr[-2000:]
    # nothing that was there is lost, and the same command later adds everything
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM pool_gifs").fetchone()[0] >= n_before
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.stat().st_size >= size_before
    again = subprocess.run([*MOODGIF, "pool", "add", "q", str(more)], env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    assert len(_pool_shas(db, "q")) == 5 and len(_pool_shas(db, "p")) == len(datas)
    ok = subprocess.run([*MOODGIF, "backup", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and out.exists()
    assert (out.stat().st_mode & 0o777) == 0o600
    # restore on a full disk blames the disk, not the archive, and changes nothing
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM pool_gifs").fetchone()[0]
    rs = subprocess.run([*MOODGIF, "restore", str(out), "--force"], env=env, capture_output=True,
                        text=True, timeout=120, preexec_fn=_limit_file_size(4096))
    assert rs.returncode != 0 and "Traceback" not in rs.stderr, rs.stderr[-2000:]
    assert "damaged" not in rs.stderr and ("no space left" in rs.stderr or "disk full" in rs.stderr)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM pool_gifs").fetchone()[0] == rows
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_file_modes_are_owner_only(tmp_path) -> None:
    home = tmp_path / "home"
    env = _env(home)
    folder = tmp_path / "src"
    _many_gifs(folder, 3)
    old = os.umask(0o022)  # a permissive umask, as a default shell has
    try:
        r = subprocess.run([*MOODGIF, "pool", "add", "p", str(folder)], env=env, capture_output=True,
                           text=True, timeout=120)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr[-2000:]
    for path in [home / "moodgif.db", *home.glob("moodgif.db-*"), *(home / "gifs").rglob("*"),
                 home / "user_hash_salt"]:
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    with session_scope(init_db(f"sqlite:///{home / 'moodgif.db'}")) as s:
        assert len(s.scalars(select(Gif)).all()) == 3
    dispose_engines()
    shutil.rmtree(home)
